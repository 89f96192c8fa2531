// A packet under way: the event that moves it, what the correlator has seen of its path, and the journey
// its first event starts.
import { side, type FlowState } from './flows.js';
import { TCP, type Journey } from './journey.js';
import type { HookName } from '../trace/kernel-names.js';
import { IPPROTO, Point, type TraceEvent } from '../trace/record.js';
import { icmpMtu, isIcmpError } from './identity.js';

/** A decoded event plus the names the session resolved for it. */
export interface NamedEvent extends TraceEvent {
  /** kfree/consume: the freeing function (from kallsyms). */
  location?: string;
  /** kfree_skb: drop reason name without the SKB_DROP_REASON_ prefix; null where the kernel reports none (< 5.17). */
  reasonName?: string | null;
  /** netfilter: the priority its probe sits at; a chain's drop: the chain's priority. */
  priority?: number;
}

/** What the correlator has seen of a packet's path, as far as its verdict goes. */
export interface PathSeen {
  seenRx: boolean;
  seenXmit: boolean;
  localInExit: boolean;
  forward: boolean;
  /** Last netfilter step: hook and whether it was its exit probe. */
  nfHook: HookName | null;
  nfExited: boolean;
  sentReset: boolean;
  /** A TCP point saw it: TCP freed or consumed it, or the application read it (a reset: sentReset). */
  tcpSeen: boolean;
  /** Only GRO has seen it so far. */
  groOnly: boolean;
  /** GSO cut it into segments (each its own journey) before the device. */
  segmented: boolean;
}

/** A packet under way: the journey it builds, its flow, where it is. */
export interface Active extends PathSeen {
  j: Journey;
  flow: FlowState;
  skb: number;
  rank: number;
  last: number;
  postRoutingExit: number | null;
  enqueued: number | null;
  /** GRO merged this segment into another packet: it shares that packet's fate. */
  mergedInto: Active | null;
  /** Segments GRO merged into this packet. */
  merged: Active[] | null;
  /** The payload its GSO segments carried so far. */
  segmentBytes: number;
  /** The tuple's hash at the last netfilter step (decoded records only). */
  tupleHash?: number;
  /** Devices of the last receive and the last transmit step (stacked devices: bridge, bond, VLAN). */
  rxDev: number;
  txDev: number;
  /** In br_netfilter's pass: the bridge calls the IP hooks for a frame on its port, naming the bridge
   *  device as in/out before the packet was received on it (PRE_ROUTING, and for a bridged frame FORWARD
   *  and POST_ROUTING); it ends when the bridge hands the packet up to its own device. */
  bridgePass: boolean;
}

export function newActive(j: Journey, flow: FlowState, e: TraceEvent): Active {
  return {
    j,
    flow,
    skb: e.skb,
    rank: 0,
    last: e.t,
    seenRx: false,
    seenXmit: false,
    localInExit: false,
    forward: false,
    nfHook: null,
    nfExited: false,
    sentReset: false,
    tcpSeen: false,
    postRoutingExit: null,
    enqueued: null,
    groOnly: e.point === Point.NAPI_GRO_RECEIVE,
    mergedInto: null,
    merged: null,
    segmented: false,
    segmentBytes: 0,
    rxDev: 0,
    txDev: 0,
    bridgePass: false,
  };
}

/** The journey event e starts. Counts e on its flow's TCP segment copies, to number retransmissions. */
export function newJourney(e: TraceEvent, id: number, flow: FlowState, inbound: boolean): Journey {
  const j: Journey = {
    id,
    netns: e.netns,
    family: e.family as 4 | 6,
    proto: e.proto,
    src: e.src,
    dst: e.dst,
    sport: e.sport,
    dport: e.dport,
    flags: e.flags,
    seq: e.seq,
    ack: e.ack,
    len: e.len,
    ipId: e.ipId,
    start: e.t,
    steps: [],
    direction: inbound ? 'in' : 'out',
    fate: 'unfinished',
    drop: null,
    ending: 'timeout',
    tcpdump: false,
    tcpdumpDevices: [],
    retransmit: 0,
    flow: flow.key,
    // Declared up front: objects that keep one shape are faster to fill in.
    tcp: undefined,
    translated: undefined,
    nat: undefined,
    route: undefined,
    delivery: undefined,
    origin: undefined,
    icmp: undefined,
    neighbourWaitNs: undefined,
    qdiscWaitNs: undefined,
    mergedInto: undefined,
    segmentOf: undefined,
    segments: undefined,
    bytes: undefined,
    incomplete: undefined,
  };
  // First seen inside a hook (its tuple matched only after conntrack or NAT),
  // but it came in on a device: it passed that device's tcpdump tap.
  if (inbound && e.point === Point.NETFILTER && e.ifindex) {
    j.tcpdump = true;
    j.tcpdumpDevices.push(e.ifindex);
  }
  if (isIcmpError(e)) {
    j.icmp = { type: e.icmpType, code: e.icmpCode, about: { proto: e.innerProto, dst: e.innerDst } };
    const mtu = icmpMtu(e);
    if (mtu !== undefined) j.icmp.mtu = mtu;
  } else if (e.proto === IPPROTO.ICMP || e.proto === IPPROTO.ICMPV6) {
    j.icmp = { type: e.icmpType, code: e.icmpCode, about: null };
  }
  if (e.proto === IPPROTO.TCP && !(e.flags === TCP.ACK && e.len === 0)) {
    // A copy of a segment already seen (same direction, seq, flags, length) is a retransmission.
    j.retransmit = flow.segments[side(e)].count(j.seq, j.flags * 4096 + (j.len & 0xfff));
  }
  return j;
}
