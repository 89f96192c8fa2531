// What the local end did with a packet: the socket it came to and that socket's state, the application's read,
// TCP's answer. Pure.
import { endpoint, type FlowState } from './flows.js';
import {
  BELOW_TRANSPORT,
  TCP,
  type Delivery,
  type Drop,
  type Fate,
  type Journey,
  type Step,
  type TcpStateSeen,
} from './journey.js';
import { IPPROTO } from '../trace/record.js';
import type { NamedEvent, PathSeen } from './packet.js';

/** When the transport layer got it: when it left LOCAL_IN, else the device. */
function deliveredAt(j: Pick<Journey, 'steps' | 'start'>): number {
  // Its last LOCAL_IN step: the exit, or the entry where it is the only probe.
  let s: Step | undefined;
  for (const x of j.steps) if (x.hook === 'LOCAL_IN' && x.at !== 'chain') s = x;
  s ??= j.steps.find((x) => x.point === 'netif_receive_skb');
  return s?.t ?? j.start;
}

/** The state of the local socket a TCP packet came to (its destination, after any DNAT) when TCP got it, from
 *  the last state change seen before then; and the changes after, up to its drop at time t. Without an earlier
 *  change, the first later one still tells the state it left. */
export function socketState(
  j: Pick<Journey, 'family' | 'dst' | 'dport' | 'translated' | 'steps' | 'start'>,
  states: FlowState['states'],
  t: number,
): TcpStateSeen {
  const to = j.translated ?? j;
  const local = endpoint(to.dst, to.dport, j.family);
  const arrived = deliveredAt(j);
  let before: FlowState['states'][number] | undefined;
  let after: FlowState['states'][number] | undefined;
  const then: string[] = [];
  for (const s of states) {
    if (s.local !== local || s.t > t) continue;
    if (s.t <= arrived) before = s;
    else {
      after ??= s;
      then.push(s.to);
    }
  }
  if (before) return { state: before.to, from: before.from, then };
  return { state: after?.from ?? null, from: null, then };
}

/** For a TCP or UDP packet that came to this host and reached its transport layer (reached; or was dropped at a
 *  socket): whether a socket took it, and the application's read (read: the event that read it, if any). */
export function delivery(
  j: Journey,
  p: PathSeen,
  reached: boolean,
  fate: Fate,
  drop: Drop | null,
  read?: NamedEvent,
): Delivery | undefined {
  if (!(
    (j.direction === 'in' || p.localInExit) &&
    (j.proto === IPPROTO.TCP || j.proto === IPPROTO.UDP) &&
    (reached || drop?.layer === 'socket')
  ))
    return undefined;
  const socketLayer = drop !== null && (drop.layer === 'socket' || drop.layer === 'tcp' || drop.layer === 'udp');
  return {
    socket: drop?.reason === 'NO_SOCKET' ? false : fate === 'delivered' || socketLayer ? true : null,
    read: read ? { pid: read.pid, comm: read.comm, bytes: read.aux, queuedNs: read.t - deliveredAt(j) } : null,
  };
}

/** For incoming TCP: whether TCP got it, and what it answered: R for a reset it sent, and to a SYN its SYN-ACK or
 *  RST (replies: those this host sent in the flow). TCP got it only where a TCP point tells so (TCP freed or
 *  consumed it, or it was read: p.tcpSeen; TCP reset it: p.sentReset), or where TCP answered a SYN that reached it (kernels whose
 *  consume_skb names no function, before 6.3); it did not where it died below TCP (reached: it got to the
 *  transport layer, as far as its path shows); elsewhere nothing tells (null). */
export function tcpAnswer(
  j: Journey,
  p: PathSeen,
  reached: boolean,
  drop: Drop | null,
  replies: FlowState['replies'],
): Journey['tcp'] {
  if (j.proto !== IPPROTO.TCP || j.direction !== 'in') return undefined;
  const syn = (j.flags & (TCP.SYN | TCP.ACK)) === TCP.SYN;
  const answer = syn && reached ? replies.find((x) => x.t >= j.start) : undefined;
  let saw: boolean | null = p.tcpSeen || p.sentReset || answer !== undefined ? true : null;
  if (saw === null && drop && (!reached || BELOW_TRANSPORT.has(drop.layer))) saw = false;
  const reply = p.sentReset ? 'R' : (answer?.kind ?? null);
  return { saw, reply };
}
