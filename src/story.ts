// The story of a connection in one line, the way the source articles tell it:
// "SYN ×6, each dropped at LOCAL_IN", "SYN reached TCP (SYN_RECV); SYN-ACK
// dropped at LOCAL_OUT ×5", "request read by nginx; response and FIN dropped
// at LOCAL_OUT; socket FIN_WAIT1 then aborted". Pure.
import type { FlowSummary, PacketGroup } from './summary.js';

const NAMES: Record<string, string> = {
  S: 'SYN', SA: 'SYN-ACK', A: 'ACK', PA: 'data', FA: 'FIN', FPA: 'data+FIN', R: 'RST', RA: 'RST',
  udp: 'datagram', icmp: 'ICMP', icmpv6: 'ICMPv6',
};

export function kindName(kind: string): string {
  return NAMES[kind] ?? `[${kind}]`;
}

function where(g: PacketGroup): string {
  return g.hook ? `at ${g.hook}` : `in ${g.layer} (${g.reason})`;
}

function times(n: number): string {
  return n > 1 ? ` ×${n}` : '';
}

const ABORTED_FROM = new Set(['SYN_RECV', 'ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2', 'CLOSE_WAIT', 'CLOSING']);

/** The socket's state changes as a path, "ESTABLISHED→FIN_WAIT1→CLOSE (aborted)". */
export function statePath(states: string[]): string {
  if (!states.length) return '';
  const path = [states[0].split('>')[0]];
  for (const s of states) {
    const [from, to] = s.split('>');
    if (path[path.length - 1] !== from) path.push(from);
    path.push(to);
  }
  const last = states[states.length - 1].split('>');
  const aborted = last[1] === 'CLOSE' && ABORTED_FROM.has(last[0]);
  return `${path.join('→')}${aborted ? ' (aborted)' : ''}`;
}

export function connectionVerdict(f: FlowSummary): string {
  const parts: string[] = [];
  const answeredBy = (kind: string) => f.groups.find((g) => g.direction === 'out' && g.kind === kind);
  for (const g of f.groups) {
    const name = kindName(g.kind);
    const retrans = g.retransmits ? ` (${g.retransmits} retransmission${g.retransmits > 1 ? 's' : ''})` : '';
    if (g.fate === 'dropped') {
      const each = g.count > 1 ? ', each' : '';
      const seen = g.direction === 'out' && g.tcpdump === 0 ? ', before tcpdump could see it' : '';
      parts.push(`${name}${times(g.count)}${retrans}${each} dropped ${where(g)}${seen}`);
      continue;
    }
    if (g.direction === 'in' && g.kind === 'S' && g.tcpSaw > 0) {
      const sa = answeredBy('SA');
      if (g.replies.SA) parts.push(`SYN${times(g.count)}${retrans} reached TCP (SYN_RECV)`);
      else if (g.replies.R) parts.push(`SYN${times(g.count)} refused by TCP with RST (no socket)`);
      else if (!sa) parts.push(`SYN${times(g.count)} reached TCP, not answered${retrans}`);
      continue;
    }
    if (g.direction === 'in' && g.bytes > 0 && g.fate === 'delivered') {
      const reader = f.owner ? ` by ${f.owner.comm}[${f.owner.pid}]` : '';
      parts.push(g.read > 0
        ? `${name}${times(g.count)}${retrans} read by the application${reader}`
        : `${name}${times(g.count)}${retrans} delivered to the socket, not read`);
      continue;
    }
    if (g.direction === 'out' && g.origin === 'netfilter') parts.push(`${name}${times(g.count)} sent by a netfilter REJECT rule`);
    else if (g.direction === 'out' && g.origin === 'stack' && g.kind !== 'SA') parts.push(`${name}${times(g.count)} sent by the kernel (no socket)`);
  }
  if (f.resetsSent && !parts.some((p) => p.includes('RST'))) parts.push(`TCP sent RST${times(f.resetsSent)}`);
  const path = statePath(f.states);
  if (path) parts.push(`socket ${path}`);
  if (!parts.length) {
    const dropped = f.groups.some((g) => g.fate === 'dropped');
    return dropped ? 'packets dropped' : `${f.packets} packet${f.packets === 1 ? '' : 's'}, none dropped`;
  }
  return parts.join('; ');
}
