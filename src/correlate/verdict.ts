// The verdict: how a packet's journey ends (its fate, the drop if any, how its observation ended), from what
// the correlator saw of its path and of its flow. Pure: plain data in, the verdict out.
import { dropLayer, isDrop } from './classify.js';
import type { FlowState } from './flows.js';
import { TCP, type Drop, type Ending, type Fate, type Journey, type TooBig } from './journey.js';
import { IPPROTO, MTU_FROM_ROUTE, Point } from '../trace/record.js';
import { isTooBigIcmp } from './identity.js';
import { TCP_STATE_REASONS, tooBigWhere } from './drop-reasons.js';
import { socketState } from './delivery.js';
import type { NamedEvent, PathSeen } from './packet.js';

/** Why the correlator stopped following it: freed, read by the application, idle too long, the trace ended,
 *  or its skb address came to hold another packet. */
export type Why = 'free' | 'read' | 'idle' | 'end' | 'silent';

/** What the verdict reads of the journey. */
export type JourneySoFar = Pick<
  Journey,
  'family' | 'proto' | 'flags' | 'direction' | 'start' | 'steps' | 'dst' | 'dport' | 'translated' | 'seq' | 'retransmit'
>;

/** What it reads of the flow: when this host last began an answer (RST, ICMP error), the SYN-ACKs and RSTs it
 *  sent, its sockets' state changes, the too-big segments its sender was told about. */
export type FlowFacts = Pick<FlowState, 'lastAnswer' | 'lastAnswerIcmp' | 'replies' | 'states' | 'tooBigTold'>;

/** The event that ended it (why 'free': a kfree_skb or consume_skb; 'read': the read); a kfree_skb's way out
 *  (bpf/record.h: ifindex_out, aux, ip_len). */
export type EndEvent = Pick<NamedEvent, 'point' | 't' | 'reason' | 'reasonName' | 'location'> &
  Partial<Pick<NamedEvent, 'ifindexOut' | 'aux' | 'ipLen'>>;

export interface Verdict {
  fate: Fate;
  drop: Drop | null;
  ending: Ending;
}

/** Whether the transport layer got it: it left LOCAL_IN; or it was received and no hook lay in between (no
 *  hooks, or, netfilter traced by trampolines, none registered after PRE_ROUTING). */
export function reachedTransport(p: PathSeen): boolean {
  return p.localInExit || (p.seenRx && (p.nfHook === null || (p.nfHook === 'PRE_ROUTING' && p.nfExited)));
}

/** How following a packet that got somewhere ended, by why it stopped. */
const ENDINGS: Record<Why, Ending> = { free: 'freed', read: 'read', end: 'trace-ended', idle: 'left', silent: 'left' };

/** The verdict on journey j when the correlator stops following it (why; end: the event that ended it, if any). */
export function verdict(j: JourneySoFar, p: PathSeen, flow: FlowFacts, why: Why, end?: EndEvent): Verdict {
  if (end && end.point === Point.KFREE_SKB) {
    const reason = end.reasonName === null ? null : (end.reasonName ?? String(end.reason));
    // Before 6.10 TCP announces (tcp_send_reset) only the resets of full sockets: the reset of no socket or of a
    // TIME_WAIT one shows only as a reset this host began in the flow while the packet was in the stack.
    const resetSent = p.sentReset || (answeredSince(flow, j.start) && flow.lastAnswerIcmp === null);
    if (isDrop(reason, end.location ?? '', reachedTransport(p), resetSent)) {
      return { fate: 'dropped', drop: freedDrop(j, p, flow, end, reason), ending: 'freed' };
    }
  } else if (end && unansweredSyn(j, p, flow, end)) {
    // tcp_conn_request drops a SYN when the listener's accept or SYN queue is full,
    // and the SYN is then consumed like an accepted one; only the missing SYN-ACK tells.
    const drop: Drop = {
      layer: 'tcp',
      hook: null,
      reason: 'TCP_LISTEN_OVERFLOW',
      location: end.location ?? '',
      inferred: 'the listener consumed the SYN without answering (accept or SYN queue full)',
    };
    return { fate: 'dropped', drop, ending: 'freed' };
  }
  const freed = why === 'free' || why === 'read';
  // Delivered if it last left LOCAL_IN (a packet looped through lo or a veth
  // pair in this namespace is sent and then delivered); else sent if it left a device.
  let fate: Fate;
  if (p.localInExit || (freed && j.direction === 'in' && !p.seenXmit)) fate = 'delivered';
  else if (p.seenXmit) fate = p.forward ? 'forwarded' : 'sent';
  else if (freed && j.direction === 'out') fate = 'sent';
  else {
    // Stopped on its way: seen by GRO only, it went up merged into another packet; else cut by time or the trace's end.
    return { fate: 'unfinished', drop: null, ending: why === 'end' ? 'trace-ended' : p.groOnly ? 'merged' : 'timeout' };
  }
  return { fate, drop: null, ending: p.segmented ? 'segmented' : ENDINGS[why] };
}

/** Where and why a kfree_skb that is a drop (reason: the name, null where the kernel reports none) dropped it. */
function freedDrop(j: JourneySoFar, p: PathSeen, flow: FlowFacts, end: EndEvent, named: string | null): Drop {
  const location = end.location ?? '';
  // Where the kernel named none: what this host answered while the packet was in the stack tells it (a packet
  // this host sent, refused by fragmentation, is freed as NOT_SPECIFIED after the ICMP error it sends itself).
  const answered = answeredSince(flow, j.start);
  const told = !answered
    ? null
    : named === null
      ? reasonFromAnswer(j, location, flow.lastAnswerIcmp)
      : named === 'NOT_SPECIFIED'
        ? tooBigFromAnswer(j, location, flow.lastAnswerIcmp)
        : null;
  const reason = told?.reason ?? named;
  const tc = reason === null || reason === 'NOT_SPECIFIED' ? unnamedTcDrop(j, p, location) : null;
  const layer = tc ? 'tc' : dropLayer(reason ?? '', location);
  // The hook it was in: entered and not left, or left just before a netfilter drop.
  const hook = p.nfHook && (!p.nfExited || layer === 'netfilter') ? p.nfHook : null;
  const inferred = told?.inferred ?? tc;
  const drop: Drop = { layer, hook, reason, location, ...(inferred && { inferred }) };
  if (layer === 'netfilter' && hook) {
    // Since it entered that hook (its last pass: a bridge's and the routed one may share a name).
    let entered = j.start;
    for (const s of j.steps) if (s.point === 'netfilter' && s.hook === hook && s.at === 'entry') entered = s.t;
    drop.answered = answeredSince(flow, entered);
  }
  // TCP refused it in the state its socket was in: say which, as far as the state changes seen tell. Where TCP
  // named no reason (a time-wait socket's reset), only a state seen says more than the freeing function.
  const specific = reason !== null && reason !== 'NOT_SPECIFIED';
  if (
    layer === 'tcp' &&
    j.proto === IPPROTO.TCP &&
    (!specific || TCP_STATE_REASONS.has(reason)) &&
    !p.forward &&
    (j.direction === 'in' || p.localInExit)
  ) {
    const seen = socketState(j, flow.states, end.t);
    if (specific || seen.state !== null) drop.tcpState = seen;
  }
  if (reason === 'PKT_TOO_BIG') drop.tooBig = tooBig(j, flow, end, answered);
  return drop;
}

/** A tc filter's drop, where the kernel names none (before it had TC_INGRESS and TC_EGRESS) and the freeing function
 *  is the device core that runs tc's hooks inline: what tells it, or null. On receive, __netif_receive_skb_core frees
 *  an IP packet after the capture tap only for a tc ingress drop (generic XDP and VLAN untagging free in functions of
 *  their own, and a packet without a protocol handler is not IP); on transmit, __dev_queue_xmit frees one itself only
 *  for a tc egress drop (a device that cannot send frees through kfree_skb_list). Pure. */
export function unnamedTcDrop(j: Pick<JourneySoFar, 'direction'>, p: PathSeen, location: string): string | null {
  if (/^(__netif_receive_skb_core|sch_handle_ingress)/.test(location) && p.seenRx && !p.seenXmit)
    return `freed by ${location} after the capture tap, where an IP packet is freed only by a tc ingress filter's drop`;
  if (/^(__dev_queue_xmit|sch_handle_egress)/.test(location) && j.direction !== 'in' && !p.seenXmit)
    return `freed by ${location} before its qdisc, where a packet is freed itself only by a tc egress filter's drop`;
  return null;
}

/** What refused a packet too big for its way out: the kernel's readings at the drop (bpf/record.h), the ICMP error
 *  this host sent with it (answered: one was begun in the flow while the packet was in the stack), and whether the
 *  sender had been told about this same TCP segment before. */
function tooBig(j: JourneySoFar, flow: FlowFacts, end: EndEvent, answered: boolean): TooBig {
  const icmp = flow.lastAnswerIcmp;
  const told = answered && icmp !== null && isTooBigIcmp(j.family, icmp.type, icmp.code);
  const size = end.ipLen || null;
  const aux = end.aux ?? 0;
  const read = (aux & ~MTU_FROM_ROUTE) >>> 0;
  // The ICMP error carries the kernel's own number; a reading that would not have refused the packet is not it.
  const mtuFrom = told && icmp.mtu ? 'icmp' : read && (size === null || read < size) ? 'reading' : null;
  const before = j.proto === IPPROTO.TCP && j.retransmit > 0 ? flow.tooBigTold?.get(j.seq) : undefined;
  return {
    size,
    mtu: mtuFrom === 'icmp' ? icmp!.mtu! : mtuFrom === 'reading' ? read : null,
    mtuFrom: mtuFrom === 'reading' ? (aux & MTU_FROM_ROUTE ? 'route' : 'device') : mtuFrom,
    routeMtu: aux & MTU_FROM_ROUTE ? read : null,
    outDev: end.ifindexOut ?? 0,
    told,
    resentAfterTold: before && before.size === size ? before.told : 0,
  };
}

/** Notes a too-big TCP segment the sender was told about, so that the same segment sent again shows a black hole. */
export function noteTooBigTold(
  flow: Pick<FlowState, 'tooBigTold'>,
  j: Pick<Journey, 'proto' | 'seq'>,
  t: TooBig,
): void {
  if (!t.told || j.proto !== IPPROTO.TCP) return;
  const told = (flow.tooBigTold ??= new Map());
  if (told.size >= 64) told.clear(); // a few segments under way at once: bounded
  const n = told.get(j.seq);
  told.set(j.seq, { size: t.size, told: n && n.size === t.size ? n.told + 1 : 1 });
}

/** Whether this host began an answer (a TCP reset, an ICMP error) in the flow since t: for the packet there then. */
const answeredSince = (flow: FlowFacts, t: number) => flow.lastAnswer >= t;

/** The reason a kernel that names none (before 5.17) would have given, told by the answer this host began while
 *  the packet was in the stack (icmp: the ICMP error's type and code; null: a TCP reset), where one path of the
 *  freeing function sends that answer and then frees the packet. Pure. */
export function reasonFromAnswer(
  j: Pick<JourneySoFar, 'family' | 'proto' | 'flags' | 'direction'>,
  location: string,
  icmp: FlowFacts['lastAnswerIcmp'],
): { reason: string; inferred: string } | null {
  const tooBig = tooBigFromAnswer(j, location, icmp);
  if (tooBig) return tooBig;
  const v4 = j.family === 4;
  const is = (t4: number, c4: number[], t6: number, c6: number[]) =>
    icmp !== null && icmp.type === (v4 ? t4 : t6) && (v4 ? c4 : c6).includes(icmp.code);
  // __udp4_lib_rcv: "No socket ... icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PORT_UNREACH, 0); kfree_skb(skb)".
  if (/^__udp[46]_lib_rcv$/.test(location) && is(3, [3], 1, [4]))
    return {
      reason: 'NO_SOCKET',
      inferred: 'this host answered with ICMP port unreachable, which UDP sends only for a datagram no socket takes',
    };
  // ip_forward's too_many_hops, ip6_forward's hop limit: ICMP time exceeded, then the free.
  if (/^ip6?_forward$/.test(location) && is(11, [0], 3, [0]))
    return {
      reason: 'IP_INHDR',
      inferred: 'this host answered with ICMP time exceeded, which forwarding sends only when the TTL runs out',
    };
  // ip_error (IPv4) and ip6_pkt_drop (IPv6): the route lookup found no route, or an unreachable one.
  if (/^(ip_error|ip6_pkt_(drop|discard|discard_out))$/.test(location) && is(3, [0, 1], 1, [0]))
    return {
      reason: j.direction === 'out' ? 'IP_OUTNOROUTES' : 'IP_INNOROUTES',
      inferred: 'this host answered with ICMP destination unreachable (no route) from the route lookup',
    };
  // tcp_v4_rcv's no_tcp_socket: a reset, then the free. A segment other than a SYN may also have met a TIME_WAIT
  // socket, which resets from the same place: only a SYN is told.
  if (/^tcp_v[46]_rcv$/.test(location) && icmp === null && j.proto === IPPROTO.TCP && j.flags === TCP.SYN)
    return {
      reason: 'NO_SOCKET',
      inferred: `TCP answered the SYN with a reset from ${location}, which it does when no socket takes it`,
    };
  return null;
}

/** PKT_TOO_BIG, told by the ICMP fragmentation needed (IPv6: packet too big) this host sent while the packet was in
 *  the stack, from a function whose one path sending it frees the packet after (reasons.ts, tooBigWhere; a kernel
 *  before 5.18 names no reason there, fragmentation none on any). Pure. */
export function tooBigFromAnswer(
  j: Pick<JourneySoFar, 'family'>,
  location: string,
  icmp: FlowFacts['lastAnswerIcmp'],
): { reason: string; inferred: string } | null {
  if (!icmp || !isTooBigIcmp(j.family, icmp.type, icmp.code) || !tooBigWhere(location)) return null;
  const name = j.family === 4 ? 'fragmentation needed' : 'packet too big';
  return {
    reason: 'PKT_TOO_BIG',
    inferred: `this host sent ICMP ${name}${icmp.mtu ? ` (MTU ${icmp.mtu})` : ''} from ${location}, which does so only for a packet bigger than the MTU of its way out`,
  };
}

/** A SYN the listener consumed without a SYN-ACK or RST: the SYN-ACK of an
 *  accepted SYN is sent (and its journey started) before the SYN is consumed. */
function unansweredSyn(j: JourneySoFar, p: PathSeen, flow: FlowFacts, end: EndEvent): boolean {
  return (
    end.point === Point.CONSUME_SKB &&
    end.location === 'tcp_rcv_state_process' &&
    p.localInExit &&
    !p.forward &&
    j.proto === IPPROTO.TCP &&
    j.flags === TCP.SYN &&
    !flow.replies.some((r) => r.t >= j.start)
  );
}
