// The story of a connection in one line, the way the source articles tell it:
// "SYN ×6, each dropped at LOCAL_IN", "SYN reached TCP (SYN_RECV); SYN-ACK ×5
// dropped at LOCAL_OUT", "request read by nginx; 9 outgoing (data, FIN)
// dropped at LOCAL_OUT; socket ESTABLISHED→FIN_WAIT1→CLOSE (aborted)". Pure.
import type { FlowSummary, PacketGroup } from './summary.js';

const NAMES: Record<string, string> = {
  S: 'SYN',
  SA: 'SYN-ACK',
  A: 'ACK',
  PA: 'data',
  FA: 'FIN',
  FPA: 'data+FIN',
  R: 'RST',
  RA: 'RST',
  udp: 'datagram',
  icmp: 'ICMP',
  icmpv6: 'ICMPv6',
};

export function kindName(kind: string): string {
  return NAMES[kind] ?? `[${kind}]`;
}

/** Where a group of packets died: "at LOCAL_OUT", "in socket (NO_SOCKET)". */
export function dropPlace(g: Pick<PacketGroup, 'hook' | 'layer' | 'reason'>): string {
  return g.hook ? `at ${g.hook}` : `in ${g.layer} (${g.reason})`;
}

function times(n: number): string {
  return n > 1 ? ` ×${n}` : '';
}

export interface DropBundle {
  direction: PacketGroup['direction'];
  place: string;
  kinds: string[];
  count: number;
  tcpdump: number;
  /** How many of them netfilter answered (a REJECT rule). */
  answered: number;
  /** A listen queue's overflow: who listened. */
  listener?: string;
  reason: string;
}

/** Dropped groups bundled by direction and place, kinds in order of first appearance. */
export function bundleDrops(groups: PacketGroup[]): DropBundle[] {
  const out = new Map<string, DropBundle>();
  for (const g of groups) {
    if (g.fate !== 'dropped') continue;
    const place = dropPlace(g);
    const k = `${g.direction} ${place}`;
    const b = out.get(k) ?? {
      direction: g.direction,
      place,
      kinds: [],
      count: 0,
      tcpdump: 0,
      answered: 0,
      reason: g.reason ?? '',
    };
    const name = kindName(g.kind);
    if (!b.kinds.includes(name)) b.kinds.push(name);
    b.count += g.count;
    b.tcpdump += g.tcpdump;
    b.answered += g.answered;
    b.listener ??= g.listener;
    out.set(k, b);
  }
  return [...out.values()];
}

const ABORTED_FROM = new Set(['SYN_RECV', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'CLOSE_WAIT', 'CLOSING']);

/** The socket's state changes as a path, "ESTABLISHED→FIN_WAIT1→CLOSE (aborted)". */
export function statePath(states: string[]): string {
  const path: string[] = [];
  let aborted = false; // by the last change
  for (const s of states) {
    const [from = '', to = ''] = s.split('>');
    if (path.at(-1) !== from) path.push(from);
    path.push(to);
    aborted = to === 'CLOSE' && ABORTED_FROM.has(from);
  }
  return `${path.join('→')}${aborted ? ' (aborted)' : ''}`;
}

export function connectionVerdict(f: FlowSummary): string {
  const parts: string[] = [];
  const inbound = f.groups.filter((g) => g.direction === 'in');
  // The handshake, as TCP saw it.
  const syns = inbound.filter((g) => g.kind === 'S' && g.fate !== 'dropped');
  if (syns.length) {
    const n = syns.reduce((s, g) => s + g.count, 0);
    const replies = syns.reduce((r, g) => ({ SA: r.SA + (g.replies.SA ?? 0), R: r.R + (g.replies.R ?? 0) }), {
      SA: 0,
      R: 0,
    });
    // Only what a TCP point saw reached TCP: a SYN held in a queue (NFQUEUE) or cut by time did not, as far as seen.
    const saw = syns.reduce((s, g) => s + g.tcpSaw, 0);
    if (replies.SA) parts.push(`SYN${times(n)} reached TCP (SYN_RECV)`);
    else if (replies.R) parts.push(`SYN${times(n)} refused by TCP with RST (no socket)`);
    else if (saw) parts.push(`SYN${times(saw)} reached TCP, not answered`);
    else if (syns.every((g) => g.fate === 'unfinished')) parts.push(`SYN${times(n)} unfinished, not seen reaching TCP`);
    else parts.push(`SYN${times(n)} delivered to the stack, not seen reaching TCP`);
  }
  // What the peer sent: read by the application or not, and how often again.
  const data = inbound.filter((g) => g.bytes > 0);
  if (data.length) {
    const read = data.reduce((n, g) => n + g.read, 0);
    const retrans = data.reduce((n, g) => n + g.retransmits, 0);
    const reader = f.owner ? `${f.owner.comm}[${f.owner.pid}]` : 'the application';
    const what = f.proto === 'udp' ? 'datagram' : 'request';
    const delivered = data.filter((g) => g.fate === 'delivered').reduce((n, g) => n + g.count, 0);
    if (read) parts.push(`${what}${times(read)} read by ${reader}`);
    else if (delivered) parts.push(`${what}${times(delivered)} delivered to the socket, not read`);
    if (retrans && f.proto === 'tcp') parts.push(`the peer retransmitted its data ${retrans}×`);
  }
  // Passed through this host.
  for (const g of f.groups) {
    if (g.fate === 'forwarded') parts.push(`${kindName(g.kind)}${times(g.count)} forwarded`);
  }
  // Where packets died, bundled. A REJECT's answers are told below as packets sent, where the trace has them.
  const answersSeen = f.groups.some((g) => g.direction === 'out' && g.origin === 'netfilter');
  for (const b of bundleDrops(f.groups)) {
    const dir = b.direction === 'out' ? 'outgoing' : b.direction === 'in' ? 'incoming' : 'forwarded';
    const unseen = b.direction === 'out' && b.tcpdump === 0 ? ', before tcpdump could see them' : '';
    const what = b.kinds.length === 1 ? `${b.kinds[0]}${times(b.count)}` : `${b.count} ${dir} (${b.kinds.join(', ')})`;
    const answered =
      b.answered && !answersSeen
        ? `, ${b.answered === b.count ? '' : `${b.answered} of them `}answered by a netfilter REJECT rule`
        : '';
    const full = b.listener ? `: the accept queue of ${b.listener} was full` : '';
    parts.push(`${what}${b.count > 1 ? ', each' : ''} dropped ${b.place}${unseen}${answered}${full}`);
  }
  // Answers made by netfilter or by the kernel for want of a socket.
  for (const g of f.groups) {
    if (g.direction !== 'out' || !g.origin || g.origin === 'socket') continue;
    parts.push(
      `${kindName(g.kind)}${times(g.count)} sent by ${g.origin === 'netfilter' ? 'a netfilter REJECT rule' : 'the kernel'}`,
    );
  }
  const sockets = Object.entries(f.socketStates);
  for (const [local, states] of sockets) {
    parts.push(`socket ${sockets.length > 1 ? `${local} ` : ''}${statePath(states)}`);
  }
  if (!parts.length) return `${f.packets} packet${f.packets === 1 ? '' : 's'}, none dropped`;
  return parts.join('; ');
}
