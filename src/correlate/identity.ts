// Packet identity and order along the path. The skb address is a hint: an event continues a journey only if
// the packet's content matches (TCP seq/ack/flags/length, else length and IP id) and its point comes later on
// the path. Address reuse, clones and a packet re-entering after a device loop are told apart that way.
import type { FlowTuple } from './flows.js';
import { MS, type Journey } from './journey.js';
import { AT_INGRESS, IPPROTO, Point, type TraceEvent } from '../trace/record.js';

/** Rank of each netfilter hook's entry (PRE_ROUTING .. POST_ROUTING); its exit is one more. */
const NF_RANK = [20, 30, 40, 50, 60];

export const SKB_COPY_RANK = 90;
/** Ranks up to here begin a receive. */
const RX_START = 10;
/** Ranks from here on (up to SKB_COPY_RANK): handed to a device. */
export const TX_QUEUED = 64;

/** Order of points along a path; -1 for points that attach anywhere. */
export function rank(e: TraceEvent, exit: boolean): number {
  switch (e.point) {
    case Point.NAPI_GRO_RECEIVE:
      return 4;
    case Point.NETIF_RX:
      return 5;
    case Point.NETIF_RECEIVE_SKB:
      return 10;
    case Point.TC_VERDICT:
      // tc ingress runs after the receive (and its tcpdump tap), before PRE_ROUTING; tc egress after POST_ROUTING,
      // before the device's queue.
      return e.probe === AT_INGRESS ? 12 : 63;
    case Point.NETFILTER:
      return (NF_RANK[e.hook] ?? NaN) + (exit ? 1 : 0); // NaN: a hook with no rank orders with none
    case Point.NET_DEV_QUEUE:
      return 64;
    case Point.QDISC_ENQUEUE:
      return 65;
    case Point.QDISC_DEQUEUE:
      return 66;
    case Point.NET_DEV_START_XMIT:
      return 70;
    case Point.SKB_COPY_DATAGRAM:
      return SKB_COPY_RANK;
    default:
      return -1;
  }
}

/** Whether the first event of a packet shows it coming in: a receive, or a hook before routing's answer. */
export function startsInbound(e: TraceEvent): boolean {
  const r = rank(e, false);
  return (
    (r >= 0 && r <= RX_START) ||
    (e.point === Point.NETFILTER && e.hook <= 2) ||
    (e.point === Point.TC_VERDICT && e.probe === AT_INGRESS)
  );
}

export function isIcmpError(e: TraceEvent): boolean {
  return (e.proto === IPPROTO.ICMP || e.proto === IPPROTO.ICMPV6) && e.innerProto !== 0;
}

/** Whether an ICMP message (family, type, code) says a packet was too big: IPv4's fragmentation needed (destination
 *  unreachable, code 4), IPv6's packet too big. */
export const isTooBigIcmp = (family: number, type: number, code: number): boolean =>
  family === 4 ? type === 3 && code === 4 : type === 2;

/** The MTU an ICMP error e carries (record.h: the header's bytes 4-7 in seq): of a fragmentation needed, the low 16
 *  bits (0 where the router sent none, as RFC 792's did); of a packet too big, all 32. */
export function icmpMtu(e: TraceEvent): number | undefined {
  if (!isIcmpError(e) || !isTooBigIcmp(e.family, e.icmpType, e.icmpCode)) return undefined;
  const mtu = e.family === 4 ? e.seq & 0xffff : e.seq >>> 0;
  return mtu || undefined;
}

/** The flow a packet belongs to; an ICMP error belongs to the flow of the packet it quotes. */
export function flowTuple(e: TraceEvent): FlowTuple {
  if (isIcmpError(e))
    return { proto: e.innerProto, family: e.family, src: e.dst, dst: e.innerDst, sport: e.sport, dport: e.dport };
  return e;
}

/** Where a packet under way is: the rank of its last ordered point, its last receive and transmit devices, the
 *  time of its last event. */
interface Position {
  rank: number;
  rxDev: number;
  txDev: number;
  last: number;
}

/** A packet handed to a device comes back into this namespace (lo, a veth pair, a hop out and back) at once. The
 *  same content in the same skb later is another packet: a TCP retransmission (its timer is 200 ms at least) in an
 *  skb freed where this trace does not see it (the peer of a veth) and reused. */
const LOOP_NS = 100 * MS;

/**
 * Whether event e, of rank r, comes later on a's path. Besides the path order (and a packet
 * looped back from a device into this namespace at once), a packet passes stacked devices: a bridge,
 * bond or VLAN device hands it to a lower device (a second transmit), and a bridge port hands
 * it up to the bridge device (a second receive), after br_netfilter's PRE_ROUTING pass when
 * bridge-nf-call-iptables is on.
 */
export function comesLater(a: Position, e: TraceEvent, r: number): boolean {
  if (r < 0 || r >= a.rank) return true;
  if (a.rank >= TX_QUEUED) {
    if (r <= RX_START) return e.t - a.last < LOOP_NS; // looped back
    return r < SKB_COPY_RANK && a.txDev !== 0 && e.ifindex !== a.txDev;
  }
  return r <= RX_START && a.rank <= NF_RANK[0]! + 1 && a.rxDev !== 0 && e.ifindex !== a.rxDev;
}

export function sameContent(j: Journey, e: TraceEvent): boolean {
  if (j.proto !== e.proto) return false;
  // TCP: the length too, since a pure ACK and the first segment of the data that follows it share
  // seq, ack and flags (and the segment may take the ACK's freed address).
  if (j.proto === IPPROTO.TCP) return j.seq === e.seq && j.ack === e.ack && j.flags === e.flags && j.len === e.len;
  return j.len === e.len && (j.family === 6 || j.ipId === e.ipId);
}
