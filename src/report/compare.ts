// `pathtrace compare`: a tcpdump capture beside pathtrace's record of the same
// time. Each captured frame is matched to its journey (tuple, TCP seq/ack/flags/
// length, else IP id and length, and time) to say what happened after the
// capture point; then what the kernel handled that the capture lacks, and
// the frames nothing matched, with the likely reason. Pure.
import type { Frame } from '../capture/read.js';
import { parseIp, type PacketHeaders } from '../capture/packet.js';
import { flagLetters } from '../correlate/journey.js';
import { IPPROTO, PROTO_NAMES } from '../trace/record.js';
import { clock } from './clock.js';
import { expressionTakes, insnsOf, type Insn } from '../trace/expression.js';
import type { FilterRecord, PacketRecord } from '../output/records.js';

/** What compare and merge read of a packet record (--json output, or a --write file's comment, which has no
 *  steps). */
export type TracePacket = Pick<
  PacketRecord,
  | 'id'
  | 'time_us'
  | 'family'
  | 'proto'
  | 'src'
  | 'dst'
  | 'sport'
  | 'dport'
  | 'tcp_flags'
  | 'seq'
  | 'ack'
  | 'len'
  | 'ip_id'
  | 'direction'
  | 'fate'
  | 'drop'
  | 'tcpdump'
  | 'tcpdump_devices'
  | 'translated'
>;

/** The trace's filter from its ready record: the options, and the expression with its classic BPF (a file
 *  without one is read as having none). */
export type TraceFilter = Omit<FilterRecord, 'netns' | 'expression'> & { expression?: FilterRecord['expression'] };

export interface FrameRow {
  frame: Frame;
  headers: PacketHeaders | null;
  packet: TracePacket | null;
  reason?: string;
}

export interface Comparison {
  rows: FrameRow[];
  /** Handled by the kernel, never captured: tcpdump could not see them, or missing from this capture. */
  missing: TracePacket[];
  window: { from: number; to: number } | null; // µs, the capture's time span
}

const MAX_SKEW_US = 2_000_000;

/** Frames compared at most (and packets kept for --with-tcpdump, frames it captures): memory stays bounded
 *  on a busy port or a huge file; past it the comparison says so. */
export const MAX_COMPARED = 200_000;

type Tuple = { src: string; dst: string; sport: number | null; dport: number | null };
/** ICMP has no ports (null in a trace, 0 in a frame's headers). */
const tupleKey = (t: Tuple) => `${t.src} ${t.sport ?? 0} ${t.dst} ${t.dport ?? 0}`;

/** The tuples a packet is known by: its own and the one NAT gave it (a capture may be on either side). */
export function packetTuples(p: Pick<TracePacket, 'src' | 'dst' | 'sport' | 'dport' | 'translated'>): string[] {
  const own = tupleKey(p);
  return p.translated && tupleKey(p.translated) !== own ? [own, tupleKey(p.translated)] : [own];
}

/** The time (µs) in which a traced packet can match one of these frames or be missing from them. */
export function matchableTime(frames: Frame[]): { from: number; to: number } | null {
  const w = span(frames.map(frameUs));
  return w && { from: w.from - MAX_SKEW_US, to: w.to + MAX_SKEW_US };
}

/** The tuples of the IP frames. */
export function frameTuples(frames: Frame[]): Set<string> {
  const out = new Set<string>();
  for (const f of frames) {
    const h = f.data && parseIp(f.data);
    if (h) out.add(tupleKey(h));
  }
  return out;
}

/** What a trace read in part adds: the span of all its packets, and which frame tuples any of its packets
 *  had (those outside the span kept). */
export interface CompareOptions {
  stats?: { candidates: number };
  traced?: { from: number; to: number } | null;
  flows?: Set<string>;
}

/** A frame's time in µs, pathtrace's unit for packets. */
export const frameUs = (f: Frame) => Number(f.timeNs / 1000n);

/** Same packet: the tuple was checked by the index; TCP seq/ack/flags and length, else length and IP id. */
function sameContent(h: PacketHeaders, p: TracePacket): boolean {
  if (PROTO_NAMES[h.proto] !== p.proto) return false;
  if (h.proto === IPPROTO.TCP)
    return h.seq === p.seq && h.ack === p.ack && flagLetters(h.flags) === p.tcp_flags && h.len === p.len;
  return h.len === p.len && (h.family === 6 || p.ip_id === undefined || h.ipId === p.ip_id);
}

/** What a trace's filter reads of a packet: its protocol's name (tcp, udp, icmp, icmpv6), ports and addresses. */
export interface FilterFields {
  proto: string | undefined;
  sport: number;
  dport: number;
  src: string;
  dst: string;
}

/** Whether a trace's filter takes a packet: its protocols, ports and hosts, then its expression on the packet's
 *  bytes from the IP header (a frame's, or headers made from a record's fields; asked for only then). */
export function filterTakes(
  f: TraceFilter,
  expression: Insn[] | null,
  p: FilterFields,
  bytes: () => Uint8Array,
): boolean {
  if (p.proto === undefined || !(f.protos as readonly string[]).includes(p.proto === 'icmpv6' ? 'icmp' : p.proto))
    return false;
  if (f.ports && !f.ports.includes(p.sport) && !f.ports.includes(p.dport)) return false;
  if (f.hosts.length && !f.hosts.includes(p.src) && !f.hosts.includes(p.dst)) return false;
  return !expression || expressionTakes(expression, bytes());
}

function span(values: number[]): { from: number; to: number } | null {
  if (!values.length) return null;
  let from = Infinity,
    to = -Infinity;
  for (const v of values) {
    if (v < from) from = v;
    if (v > to) to = v;
  }
  return { from, to };
}

/** What sameContent compares, as a key: TCP's seq, ack, flags and length; else the length (and the IP id,
 *  when one is given: only IPv4 packets carry one). */
function contentKey(
  tuple: string,
  proto: string,
  tcp: { seq?: number; ack?: number; flags: string | null } | null,
  len: number,
  ipId?: number,
): string {
  return tcp ? `${tuple}|${tcp.seq}|${tcp.ack}|${tcp.flags}|${len}` : `${tuple}|${proto}|${len}|${ipId ?? ''}`;
}

/** Packets of one content key, in time order; per interface, how many at the start are used there (frames
 *  come mostly in time order: the walk left of a frame's time stops at them). */
interface Candidates {
  list: TracePacket[];
  usedBelow: Map<string, number>;
}

/** The unused candidate nearest to t (µs) within the skew, or null: a binary search, then
 *  outwards. Linear overall: the walk left stops at the used prefix, the walk right at the first fit. */
function nearest(c: Candidates, t: number, iface: string, ok: (p: TracePacket) => boolean): TracePacket | null {
  const l = c.list;
  let lo = 0,
    hi = l.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (l[mid]!.time_us < t) lo = mid + 1;
    else hi = mid;
  }
  const floor = c.usedBelow.get(iface) ?? 0;
  let left: TracePacket | null = null;
  for (let i = lo - 1; i >= floor; i--) {
    const p = l[i];
    if (p === undefined || t - p.time_us > MAX_SKEW_US) break;
    if (ok(p)) {
      left = p;
      break;
    }
  }
  for (let i = lo; i < l.length; i++) {
    const p = l[i]!;
    if (p.time_us - t > MAX_SKEW_US) break;
    if (left && p.time_us - t >= t - left.time_us) break; // no nearer one on this side
    if (ok(p)) return p;
  }
  return left;
}

/** stats.candidates counts the traced packets looked at for a frame: what makes the comparison linear or not. */
export function compare(
  frames: Frame[],
  packets: TracePacket[],
  filter: TraceFilter | null,
  opts: CompareOptions = {},
): Comparison {
  const { stats } = opts;
  // Packets by content, under their tuple and the tuple NAT gave them (a capture may be on either side of
  // the NAT); flows by tuple, to say why a frame has no match.
  const byContent = new Map<string, Candidates>();
  const flows = new Set<string>();
  const expression = filter?.expression ? insnsOf(filter.expression.bpf) : null;
  const index = (tuple: string, p: TracePacket) => {
    flows.add(tuple);
    const k = contentKey(
      tuple,
      p.proto,
      p.proto === 'tcp' ? { seq: p.seq, ack: p.ack, flags: p.tcp_flags } : null,
      p.len,
      p.family === 'ipv4' ? p.ip_id : undefined,
    );
    const c = byContent.get(k);
    if (c) c.list.push(p);
    else byContent.set(k, { list: [p], usedBelow: new Map() });
  };
  for (const p of packets) for (const t of packetTuples(p)) index(t, p);
  for (const c of byContent.values()) c.list.sort((x, y) => x.time_us - y.time_us);
  const used = new Set<string>(); // packet id @ interface: a packet may pass two taps (forwarded)
  const rows: FrameRow[] = [];
  const traced = opts.traced !== undefined ? opts.traced : span(packets.map((p) => p.time_us));
  for (const frame of frames) {
    const headers = frame.data ? parseIp(frame.data) : null;
    if (!headers) {
      rows.push({ frame, headers, packet: null, reason: 'not an IP packet' });
      continue;
    }
    const t = frameUs(frame);
    const tuple = tupleKey(headers);
    const proto = PROTO_NAMES[headers.proto] ?? '';
    const tcp =
      headers.proto === IPPROTO.TCP ? { seq: headers.seq, ack: headers.ack, flags: flagLetters(headers.flags) } : null;
    const iface = frame.ifname ?? '';
    const ok = (p: TracePacket) =>
      (stats && stats.candidates++, sameContent(headers, p)) &&
      !(frame.ifname && p.tcpdump_devices.length && !p.tcpdump_devices.includes(frame.ifname)) &&
      !used.has(`${p.id}@${iface}`);
    // With its IP id, else among packets traced without one.
    const ids = headers.family === 4 && !tcp ? [headers.ipId, undefined] : [undefined];
    let best: { c: Candidates; packet: TracePacket } | null = null;
    for (const id of ids) {
      const c = byContent.get(contentKey(tuple, proto, tcp, headers.len, id));
      const packet = c ? nearest(c, t, iface, ok) : null;
      if (c && packet && (!best || Math.abs(packet.time_us - t) < Math.abs(best.packet.time_us - t)))
        best = { c, packet };
    }
    if (best) {
      const { c, packet } = best;
      used.add(`${packet.id}@${iface}`);
      let below = c.usedBelow.get(iface) ?? 0;
      while (below < c.list.length && used.has(`${c.list[below]!.id}@${iface}`)) below++;
      c.usedBelow.set(iface, below);
      rows.push({ frame, headers, packet });
      continue;
    }
    let reason: string;
    // data: the frame from its IP header (its first bytes: an expression testing bytes beyond them fails).
    const data = frame.data!;
    if (filter && !filterTakes(filter, expression, { ...headers, proto: PROTO_NAMES[headers.proto] }, () => data))
      reason = "outside pathtrace's filter";
    else if (traced && (t < traced.from - MAX_SKEW_US || t > traced.to + MAX_SKEW_US))
      reason = 'outside the time pathtrace traced';
    else if (flows.has(tuple) || opts.flows?.has(tuple))
      reason = 'its flow was traced but not this packet (were events lost? see lost_events)';
    else reason = 'no such flow was traced: captured on another host, interface or namespace';
    rows.push({ frame, headers, packet: null, reason });
  }
  const window = span(frames.map(frameUs));
  const matched = new Set(rows.filter((r) => r.packet).map((r) => r.packet!.id));
  const missing = packets.filter(
    (p) =>
      !matched.has(p.id) &&
      (!window || (p.time_us >= window.from - MAX_SKEW_US && p.time_us <= window.to + MAX_SKEW_US)),
  );
  return { rows, missing, window };
}

// ---- text ------------------------------------------------------------------

function headerText(h: PacketHeaders): string {
  const a = (addr: string, port: number) =>
    h.proto === IPPROTO.TCP || h.proto === IPPROTO.UDP ? `${addr}.${port}` : addr;
  const what =
    h.proto === IPPROTO.TCP
      ? `[${flagLetters(h.flags)}] seq ${h.seq}`
      : `${PROTO_NAMES[h.proto] ?? `proto ${h.proto}`} len ${h.len}`;
  return `${a(h.src, h.sport)} > ${a(h.dst, h.dport)} ${what}`;
}

export function afterCapture(p: TracePacket): string {
  if (p.drop) {
    const where = p.drop.hook ? `at ${p.drop.hook}` : `in ${p.drop.layer}`;
    const rule = p.drop.rule
      ? ` by ${p.drop.table}/${p.drop.chain}: ${p.drop.rule.text}`
      : p.drop.table
        ? ` in ${p.drop.table}/${p.drop.chain}`
        : '';
    return `dropped ${where} (${p.drop.reason ?? 'no reason'}, ${p.drop.location})${rule}`;
  }
  return p.fate;
}

function packetText(p: TracePacket): string {
  const kind = p.tcp_flags ? `[${p.tcp_flags}]` : p.proto;
  const at = (addr: string, port: number | null) => (port === null ? addr : `${addr}:${port}`);
  return `#${p.id} ${clock(p.time_us)} ${p.direction} ${kind} ${at(p.src, p.sport)} → ${at(p.dst, p.dport)}`;
}

export function formatComparison(c: Comparison, captureName: string, traceName: string, traced: number): string {
  const lines = [`${c.rows.length} frames in ${captureName}, ${traced} packets in ${traceName}`, ''];
  lines.push('frame  time             captured                                          after the capture point');
  for (const r of c.rows) {
    const t = clock(frameUs(r.frame));
    const cap = r.headers ? headerText(r.headers) : '(not IP)';
    const after = r.packet ? `${afterCapture(r.packet)} (pathtrace #${r.packet.id})` : `? ${r.reason}`;
    lines.push(`${String(r.frame.index).padStart(5)}  ${t}  ${cap.padEnd(50)} ${after}`);
  }
  lines.push('', `Handled by the kernel but not in the capture (${c.missing.length}):`);
  for (const p of c.missing) {
    const xdp = p.drop?.device?.hook === 'xdp' ? p.drop.device : null;
    const why = p.tcpdump
      ? `tcpdump on ${p.tcpdump_devices.join(', ')} would have seen it: not captured here (another interface, or the capture started late)`
      : xdp
        ? `XDP on ${xdp.dev} dropped it before the capture point`
        : 'it never reached a capture point';
    lines.push(`  ${packetText(p)}: ${afterCapture(p)}; ${why}`);
  }
  const unmatched = c.rows.filter((r) => !r.packet);
  lines.push('', `Frames pathtrace could not match (${unmatched.length}):`);
  for (const r of unmatched)
    lines.push(`  frame ${r.frame.index}: ${r.headers ? headerText(r.headers) : '(not IP)'}: ${r.reason}`);
  return lines.join('\n');
}
