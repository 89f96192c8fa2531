// A connection as a ladder (Wireshark's flow graph): client on the left, this host's stages in the middle, the
// server on the right; a rung per packet, its arrow going as far as the packet went, ✗ where it died,
// retransmissions told. Pure: the terminal view and the HTML report draw it.
import type { PacketRecord } from '../output/records.js';
import { packetPath, wrap, type PacketPath } from './path.js';

export interface Rung {
  id: number;
  /** Seconds since the connection's first packet. */
  t: number;
  /** right: from the client (towards the server); left: from the server. */
  dir: 'right' | 'left';
  label: string;
  /** How far it went, 0 (the near end) to 1 (the far end): where it died on the way through this host. */
  reach: number;
  died: boolean;
  /** It left this host (sent, forwarded): where it went on is beyond this trace, so the arrow stops at the host's
   *  edge. */
  beyond: boolean;
  /** The stage it died at, and what dropped it. */
  death: PacketPath['death'];
  retransmit: number;
  tcpdump: boolean;
}

/** Where an arrow that left this host stops: the host's far edge. */
export const BEYOND = 0.85;

export interface Ladder {
  client: string;
  server: string;
  rungs: Rung[];
}

const end = (addr: string, port: number | null) =>
  port ? (addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`) : addr;

/** What a rung says of its packet, in pathtrace's flag letters (as its other outputs): [S], [SA], [PA] 120B,
 *  ICMP 3/4, UDP 60B. */
export function rungLabel(r: PacketRecord): string {
  if (r.tcp_flags !== null && r.tcp_flags !== undefined)
    return `[${r.tcp_flags}]${/P/.test(r.tcp_flags) ? ` ${r.len}B` : ''}`;
  if (r.icmp) return `ICMP ${r.icmp.type}/${r.icmp.code}`;
  return `${r.proto.toUpperCase()} ${r.len}B`;
}

/** The ladder of one connection's packets (in time order). The client is the side that sent the first packet
 *  (its SYN); `client` names it when the caller knows better. */
export function ladder(packets: PacketRecord[], client?: string): Ladder {
  const sorted = [...packets].sort((a, b) => a.time_us - b.time_us || a.id - b.id);
  const first = sorted[0];
  const a = client ?? (first ? end(first.src, first.sport) : '');
  const b = first
    ? end(first.src, first.sport) === a
      ? end(first.dst, first.dport)
      : end(first.src, first.sport)
    : '';
  const t0 = first?.time_us ?? 0;
  const rungs = sorted.map((p): Rung => {
    const path = packetPath(p);
    const dir = end(p.src, p.sport) === a ? 'right' : 'left';
    const i = path.stages.findIndex((s) => s.state === 'died');
    // Across the host: the stages share the middle of the way; a packet that died stops at its stage.
    const beyond = i < 0 && (p.fate === 'sent' || p.fate === 'forwarded');
    const reach = i >= 0 ? (i + 1) / (path.stages.length + 1) : beyond ? BEYOND : 1;
    return {
      id: p.id,
      t: (p.time_us - t0) / 1e6,
      dir,
      label: rungLabel(p),
      reach,
      died: i >= 0,
      beyond,
      death: path.death,
      retransmit: p.retransmit,
      tcpdump: p.tcpdump,
    };
  });
  return { client: a, server: b, rungs };
}

/** Writes `text` into `row` at `at`, as far as the row goes. */
function put(row: string[], at: number, text: string): void {
  [...text].forEach((c, i) => {
    if (at + i >= 0 && at + i < row.length) row[at + i] = c;
  });
}

/** The ladder as text of `width` columns: both ends named, a line per rung ("+0.000s │─ [S] ──────✗ LOCAL_IN │"),
 *  under a dropped one what dropped it; each line with the packet of its rung. */
export function ladderRows(l: Ladder, width: number): { text: string; id?: number }[] {
  const time = 9;
  const inner = Math.max(20, width - time - 2);
  const pad = ''.padEnd(time);
  const ends = Array<string>(inner + 2).fill(' ');
  put(ends, 0, l.client.slice(0, Math.floor(inner / 2)));
  const server = l.server.slice(0, Math.floor(inner / 2));
  put(ends, inner + 2 - server.length, server);
  const host = Array<string>(inner).fill(' ');
  put(host, Math.floor((inner - 9) / 2), 'this host');
  const out: { text: string; id?: number }[] = [{ text: pad + ends.join('') }, { text: `${pad}│${host.join('')}│` }];
  let told = '';
  for (const r of l.rungs) {
    const row = Array<string>(inner).fill(' ');
    const len = Math.max(1, Math.round(inner * r.reach));
    const label = ` ${r.label}${r.retransmit ? ` retransmit ${r.retransmit}` : ''} `;
    const note = r.died && r.death ? ` ${r.death.stage} ` : '';
    if (r.dir === 'right') {
      put(row, 0, '─'.repeat(len - 1) + (r.died ? '✗' : r.beyond ? '▷' : '▶'));
      if (label.length + 2 < len) put(row, 1, label);
      else put(row, len, label);
      if (note) put(row, len + (label.length + 2 < len ? 0 : label.length), note);
    } else {
      put(row, inner - len, (r.died ? '✗' : r.beyond ? '◁' : '◀') + '─'.repeat(len - 1));
      if (label.length + 2 < len) put(row, inner - 1 - label.length, label);
      else put(row, inner - len - label.length, label);
      if (note) put(row, inner - len - note.length - (label.length + 2 < len ? 0 : label.length), note);
    }
    out.push({ text: `${`+${r.t.toFixed(3)}s`.padEnd(time)}│${row.join('')}│`, id: r.id });
    // What dropped it, once for a run of the same (a SYN and its retransmissions).
    const by = r.died && r.death ? ` ✗ ${r.death.by}` : '';
    if (by && by !== told) for (const line of wrap(by, inner - 1)) out.push({ text: `${pad}│${line.padEnd(inner)}│` });
    told = by || told;
  }
  return out;
}

export const ladderLines = (l: Ladder, width: number): string[] => ladderRows(l, width).map((r) => r.text);
