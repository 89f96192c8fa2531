// `pathtrace merge`: two hosts' traces of the same time, side by side. Each packet one host sent to the
// other is found in the other's trace by its content (TCP seq/ack/flags/length, else IP id and length: the
// same through a NAT on the path), and its whole trip told: dropped on the sender (where), lost on the path
// (left the sender's device, never reached the receiver's), dropped on the receiver (where), or delivered.
// Either host may be a forwarder (a router, a NAT gateway): a packet it forwarded toward the other was sent by
// it, one it forwarded from the other was received by it, with the tuple it left with (after its NAT) and the
// one it came with. The two clocks differ: their offset is bounded from the packets both saw, one way and the
// other. Pure.
import { atDeviceRx, atDeviceTx } from '../correlate/points.js';
import { insnsOf, packetFromFields } from '../trace/expression.js';
import { filterTakes, type TracePacket, type TraceFilter } from './compare.js';
import type { PacketRecord, PathVerdict } from '../output/records.js';

/** A packet record as merge reads it: compare's fields, and its steps for the device times (a --write file's
 *  records have none). */
export type HostPacket = TracePacket & Partial<Pick<PacketRecord, 'steps' | 'flow' | 'nat'>>;

export interface HostTrace {
  name: string;
  packets: HostPacket[];
  filter: TraceFilter | null;
  /** µs on its clock: when it traced (its ready and summary), else the span of its packets. */
  traced: { from: number; to: number } | null;
  /** Its namespace's addresses (the ready record's), else those its packets show. */
  addresses: Set<string>;
  lostEvents: number | null;
}

export interface Trip {
  from: 0 | 1; // the host that sent it (0: the first)
  sent: HostPacket | null;
  received: HostPacket | null;
  path: PathVerdict;
  /** µs on the first host's clock: when it left the sender's device, when it reached the receiver's. */
  leftAt: number | null;
  arrivedAt: number | null;
  /** µs on the first host's clock: when the trip began as its traces show it (the device, else the record). */
  at: number;
}

export interface Clock {
  /** The second host's clock minus the first's, µs; null when no packet was seen by both. */
  offsetUs: number | null;
  /** ± µs around it; null with a one-sided bound only (the one-way delay is unknown). */
  uncertaintyUs: number | null;
  /** Bounds: from packets the second sent (lower) and the first sent (upper). */
  lowerUs: number | null;
  upperUs: number | null;
  pairs: number;
  /** The bounds contradict each other (lower > upper): a clock stepped, or drifted, during the traces. */
  inconsistent: boolean;
}

export interface Connection {
  /** The flow as the first host names it (or the second, for one the first never saw). */
  flow: string;
  trips: Trip[];
  verdict: string;
}

export interface Merged {
  hosts: [string, string];
  clock: Clock;
  connections: Connection[];
  /** Packets each host sent to, or received from, addresses the other does not have: not part of the merge. */
  elsewhere: [number, number];
}

/** The longest a packet is taken to be in flight between the two devices. */
const MAX_TRANSIT_US = 3_000_000;
/** Added to the clock's uncertainty when matching: a receiver's time may precede the corrected departure by this. */
const SLACK_US = 1000;

/** The µs time of the packet at a device (its last TX step, or its first RX step), on its host's clock.
 *  A --write file's records have no steps: there the journey's start stands for it (an arriving packet's
 *  is its device; a departing one's is where it was made, microseconds before it left) where tcpdump saw it. */
export function deviceTime(p: HostPacket, tx: boolean): number | null {
  if (!p.steps) return p.tcpdump ? p.time_us : null;
  const t0 = p.steps[0]?.t_ns;
  const s = deviceStep(p, tx);
  return s?.t_ns !== undefined && t0 !== undefined ? p.time_us + (s.t_ns - t0) / 1000 : null;
}

/** The packet's step at a device: its last TX step, or its first RX step. */
export function deviceStep(p: HostPacket, tx: boolean): NonNullable<HostPacket['steps']>[number] | undefined {
  const at = (p.steps ?? []).filter((s) => (tx ? atDeviceTx : atDeviceRx)(s.point));
  return tx ? at.at(-1) : at[0];
}

const tuple = (p: { src: string; dst: string; sport: number | null; dport: number | null }) =>
  `${p.src} ${p.sport ?? 0} ${p.dst} ${p.dport ?? 0}`;

/** The packet with the tuple it left its host with: the one its NAT gave it, if any. */
export const asSent = (p: HostPacket): HostPacket => (p.translated ? { ...p, ...p.translated } : p);

/** Which way a packet goes between a host and the other one: sent toward it (made here, or forwarded by this host
 *  to it, or at least not from it), received from it (delivered here, or forwarded from it, or at least not to it).
 *  A forwarded packet between two third parties is both, to be matched either way; so is one from the other host
 *  back to it (a hairpin NAT). */
function goes(p: HostPacket, other: HostTrace, dir: 'in' | 'out'): boolean {
  if (p.direction !== 'forward') return p.direction === dir;
  const from = other.addresses.has(p.src),
    to = other.addresses.has(asSent(p).dst);
  return dir === 'out' ? to || !from : from || !to;
}

/** The flow, direction-free: the trace's own name for it. */
export const flowOf = (p: HostPacket) =>
  p.flow ?? [tuple(p), tuple({ src: p.dst, dst: p.src, sport: p.dport, dport: p.sport })].sort().join(' | ');

/** What identifies a packet across hosts. TCP's 32-bit sequence and acknowledgement numbers do whatever a
 *  NAT did to the addresses; an IPv4 datagram's IP id and length do within the transit time; an IPv6
 *  datagram's length alone does not: its addresses are part of its key, as they were between the two (the
 *  sender's after its NAT, the receiver's before its own). */
function contentKey(p: HostPacket, sent: boolean): string {
  if (p.proto === 'tcp') return `tcp ${p.seq} ${p.ack} ${p.tcp_flags} ${p.len}`;
  return p.ip_id !== undefined
    ? `${p.proto} ${p.len} ${p.ip_id}`
    : `${p.proto} ${p.len} ${tuple(sent ? asSent(p) : p)}`;
}

interface Timed {
  p: HostPacket;
  t: number;
  /** Its content key, as sent or as received. */
  key: string;
}

function byKey(list: Timed[]): Map<string, Timed[]> {
  const m = new Map<string, Timed[]>();
  for (const x of list) {
    const k = x.key;
    const l = m.get(k);
    if (l) l.push(x);
    else m.set(k, [x]);
  }
  return m;
}

/** The second host's clock minus the first's. A packet the first sent and the second received bounds it
 *  from above (arrival − departure = delay + offset ≥ offset); one the other way, from below. Evidence:
 *  TCP packets whose content occurs once on each side. */
export function estimateClock(ab: [number, number][], ba: [number, number][]): Clock {
  // Loops, not Math.min(...): a spread of 200 000 arguments overflows the stack.
  let upper: number | null = null,
    lower: number | null = null;
  for (const [left, arrived] of ab) upper = upper === null ? arrived - left : Math.min(upper, arrived - left);
  for (const [left, arrived] of ba) lower = lower === null ? left - arrived : Math.max(lower, left - arrived);
  const pairs = ab.length + ba.length;
  if (upper !== null && lower !== null) {
    return {
      offsetUs: (lower + upper) / 2,
      uncertaintyUs: Math.abs(upper - lower) / 2,
      lowerUs: lower,
      upperUs: upper,
      pairs,
      inconsistent: lower > upper,
    };
  }
  return { offsetUs: upper ?? lower, uncertaintyUs: null, lowerUs: lower, upperUs: upper, pairs, inconsistent: false };
}

/** [departure, arrival] times of TCP packets both saw, each on its host's clock: those whose content occurs
 *  as many times on each side (a SYN and its retransmissions that all arrived), paired in time order. */
function evidence(out: Timed[], inn: Timed[]): [number, number][] {
  const a = byKey(out.filter((x) => x.p.proto === 'tcp')),
    b = byKey(inn.filter((x) => x.p.proto === 'tcp'));
  const pairs: [number, number][] = [];
  for (const [k, l] of a) {
    const r = b.get(k);
    if (!r || r.length !== l.length) continue;
    const [ls, rs] = [[...l].sort((x, y) => x.t - y.t), [...r].sort((x, y) => x.t - y.t)];
    ls.forEach((x, i) => pairs.push([x.t, rs[i]!.t]));
  }
  return pairs;
}

/** What a host's filter takes of the packets another host sent, judged on the sender's record (headers, no
 *  payload); its expression decoded once. */
function filterTest(f: TraceFilter | null): (p: HostPacket) => boolean {
  if (!f) return () => true;
  const insns = f.expression ? insnsOf(f.expression.bpf) : null;
  // A packet its expression does not take is outside that trace, never lost on the path. It is judged as it
  // left the sender: after the sender's NAT.
  return (sent) => {
    const p = asSent(sent);
    return filterTakes(f, insns, { ...p, sport: p.sport ?? -1, dport: p.dport ?? -1 }, () => packetFromFields(p));
  };
}

/** Whether a host's trace would have had this packet: its filter takes it and it was tracing then. */
function covers(h: HostTrace, takes: (p: HostPacket) => boolean, p: HostPacket, at: number | null): boolean {
  // at is when it left: it would have arrived within MAX_TRANSIT_US of that.
  return takes(p) && h.traced !== null && at !== null && at + MAX_TRANSIT_US >= h.traced.from && at <= h.traced.to;
}

/** The packets a host sent to the other (out) or received from it (in), with their times at the device. */
const timed = (h: HostTrace, other: HostTrace, dir: 'in' | 'out'): Timed[] =>
  h.packets
    .filter((p) => goes(p, other, dir))
    .flatMap((p) => {
      const t = deviceTime(p, dir === 'out');
      return t === null ? [] : [{ p, t, key: contentKey(p, dir === 'out') }];
    });

/** The packets one host sent matched with those the other received. A receiver's packet belongs to the
 *  last departure before it: departures are taken latest first, each the earliest arrival after it
 *  (retransmissions share their content, and the first copies may be those lost). shift: sender's clock → receiver's. */
function match(sent: Timed[], received: Timed[], shift: number, tolerance: number): Map<HostPacket, Timed> {
  const arrivals = byKey(received);
  for (const l of arrivals.values()) l.sort((x, y) => x.t - y.t);
  const used = new Set<HostPacket>();
  const matched = new Map<HostPacket, Timed>();
  for (const s of [...sent].sort((x, y) => y.t - x.t)) {
    const at = s.t + shift;
    const r = arrivals.get(s.key)?.find((x) => !used.has(x.p) && x.t >= at - tolerance && x.t <= at + MAX_TRANSIT_US);
    if (r) {
      used.add(r.p);
      matched.set(s.p, r);
    }
  }
  return matched;
}

/** Each trip from one host to the other. paired: flows (by the sender's name) some packet of which reached
 *  the other side: a packet of theirs sent to an address the other does not have (a NAT on the path) is
 *  still one of its own. */
function trips(
  hosts: [HostTrace, HostTrace],
  from: 0 | 1,
  offset: number,
  tolerance: number,
  paired: Set<string>,
): { trips: Trip[]; elsewhere: number } {
  const to = (1 - from) as 0 | 1;
  const toFirst = (host: 0 | 1, t: number) => (host === 0 ? t : t - offset);
  const shift = from === 0 ? offset : -offset;
  const matched = match(timed(hosts[from], hosts[to], 'out'), timed(hosts[to], hosts[from], 'in'), shift, tolerance);
  const receiverTakes = filterTest(hosts[to].filter);
  const out: Trip[] = [];
  let elsewhere = 0;
  for (const p of hosts[from].packets) {
    if (!goes(p, hosts[to], 'out')) continue;
    const r = matched.get(p);
    if (!r && !hosts[to].addresses.has(asSent(p).dst) && !paired.has(`${from} ${flowOf(p)}`)) {
      elsewhere++;
      continue;
    }
    const t = deviceTime(p, true);
    let path: PathVerdict;
    if (r) path = r.p.fate === 'dropped' ? 'dropped-at-receiver' : r.p.fate === 'delivered' ? 'delivered' : 'arrived';
    else if (p.fate === 'dropped') path = 'dropped-at-sender';
    else if (t === null) path = 'not-sent';
    else path = covers(hosts[to], receiverTakes, p, t + shift) ? 'lost-on-path' : 'receiver-blind';
    out.push({
      from,
      sent: p,
      received: r?.p ?? null,
      path,
      leftAt: t === null ? null : toFirst(from, t),
      arrivedAt: r ? toFirst(to, r.t) : null,
      at: toFirst(from, t ?? p.time_us),
    });
  }
  const got = new Set([...matched.values()].map((r) => r.p));
  // The receiver's flows some packet of which came from the sender: through a forwarder, from a third host's address.
  const reached = new Set([...matched.values()].map((r) => flowOf(r.p)));
  for (const p of hosts[to].packets) {
    if (!goes(p, hosts[from], 'in') || got.has(p)) continue;
    if (!hosts[from].addresses.has(p.src) && !reached.has(flowOf(p))) continue; // from a third host
    const t = deviceTime(p, false);
    out.push({
      from,
      sent: null,
      received: p,
      path: 'sender-unseen',
      leftAt: null,
      arrivedAt: t === null ? null : toFirst(to, t),
      at: toFirst(to, t ?? p.time_us),
    });
  }
  return { trips: out, elsewhere };
}

export const PATH_WORDS: Record<PathVerdict, string> = {
  delivered: 'delivered',
  arrived: 'arrived',
  'dropped-at-receiver': 'dropped at the receiver',
  'lost-on-path': 'lost on the path',
  'dropped-at-sender': 'dropped at the sender',
  'not-sent': 'not seen leaving the sender',
  'receiver-blind': "outside the receiver's trace",
  'sender-unseen': 'not seen leaving the sender',
};

/** "[S] ×3 lost on the path (client → server); [SA] delivered (server → client)". Pure. */
export function connectionVerdict(trips: Trip[], hosts: [string, string]): string {
  const groups = new Map<string, { kind: string; n: number; words: string }>();
  for (const t of trips) {
    const p = t.sent ?? t.received!;
    const kind = p.tcp_flags ? `[${p.tcp_flags}]` : p.proto;
    const words = `${PATH_WORDS[t.path]} (${hosts[t.from]} → ${hosts[1 - t.from]})`;
    const g = groups.get(`${kind} ${words}`);
    if (g) g.n++;
    else groups.set(`${kind} ${words}`, { kind, n: 1, words });
  }
  return [...groups.values()].map((g) => `${g.kind}${g.n > 1 ? ` ×${g.n}` : ''} ${g.words}`).join('; ');
}

export function merge(first: HostTrace, second: HostTrace): Merged {
  const hosts: [HostTrace, HostTrace] = [first, second];
  const clock = estimateClock(
    evidence(timed(first, second, 'out'), timed(second, first, 'in')),
    evidence(timed(second, first, 'out'), timed(first, second, 'in')),
  );
  const offset = clock.offsetUs ?? 0;
  const tolerance = (clock.uncertaintyUs ?? 0) + SLACK_US;
  // First without, then with the flows known to reach the other side.
  const paired = new Set<string>();
  for (const from of [0, 1] as const) {
    for (const t of trips(hosts, from, offset, tolerance, paired).trips)
      if (t.sent && t.received) paired.add(`${from} ${flowOf(t.sent)}`);
  }
  const both = [trips(hosts, 0, offset, tolerance, paired), trips(hosts, 1, offset, tolerance, paired)] as const;
  const all = both.flatMap((b) => b.trips);
  // One connection per flow as the first host names it; the second's name where the first never saw it.
  const firstName = new Map<string, string>();
  for (const t of all) {
    if (!t.sent || !t.received) continue;
    const [a, b] = t.from === 0 ? [t.sent, t.received] : [t.received, t.sent];
    firstName.set(flowOf(b), flowOf(a));
  }
  const byFlow = new Map<string, Trip[]>();
  for (const t of all) {
    const onFirst = t.from === 0 ? t.sent : t.received;
    const onSecond = (t.from === 0 ? t.received : t.sent)!;
    const name = onFirst ? flowOf(onFirst) : (firstName.get(flowOf(onSecond)) ?? flowOf(onSecond));
    const l = byFlow.get(name);
    if (l) l.push(t);
    else byFlow.set(name, [t]);
  }
  const time = (t: Trip) => t.at;
  const connections = [...byFlow]
    .map(([flow, ts]) => {
      ts.sort((x, y) => time(x) - time(y));
      return { flow, trips: ts, verdict: connectionVerdict(ts, [first.name, second.name]) };
    })
    .sort((x, y) => time(x.trips[0]!) - time(y.trips[0]!));
  return { hosts: [first.name, second.name], clock, connections, elsewhere: [both[0].elsewhere, both[1].elsewhere] };
}
