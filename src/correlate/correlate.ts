// Rebuilds packet journeys from probe events. Pure: events in, journeys out;
// time comes only from the events and from tick(now).
//
// Identity (DESIGN.md): the skb address is a hint; an event continues a
// journey only if the packet's content matches (TCP seq/ack/flags/length, else
// length and IP id) and the point comes later on the path. Address reuse,
// clones and a packet re-entering after a device loop are told apart that way.
import { dropLayer, isDrop } from './classify.js';
import { endpoint, FlowTable, side, type FlowState, type FlowTuple } from './flows.js';
import { HOOK_NAMES, type HookName } from '../trace/kernel-names.js';
import { IPPROTO, NF_EVAL_XT, NF_SLOT_ENTRY, Point, POINT_NAMES, snapshotEvent, type TraceEvent } from '../trace/record.js';
import { TCP, type Drop, type Ending, type Fate, type Journey, type Step, type TcpStateSeen } from './journey.js';
import { TCP_STATE_REASONS } from '../report/reasons.js';

/** A decoded event plus the names the session resolved for it. */
export interface NamedEvent extends TraceEvent {
  /** kfree/consume: the freeing function (from kallsyms). */
  location?: string;
  /** kfree_skb: drop reason name without the SKB_DROP_REASON_ prefix; null where the kernel reports none (< 5.17). */
  reasonName?: string | null;
  /** netfilter: the priority its probe sits at; a chain's drop: the chain's priority. */
  priority?: number;
}

export interface CorrelatorOptions {
  /** Only events of this namespace start journeys (0: any). */
  netns: number;
  /** Idle time after which a packet mid-path is reported as cut by timeout. */
  idleNs?: number;
  /** Idle time after which a packet that left (device, local stack) is settled. */
  graceNs?: number;
  /** How long a packet delivered to a socket waits for the application's read. */
  readWaitNs?: number;
  /** Whether the read points are attached (else nothing waits for a read). */
  reads?: boolean;
  /** Idle time of a packet waiting for a neighbour or in a qdisc. */
  queueWaitNs?: number;
  /** Whether a netfilter probe slot at a hook is where packets leave it: the exit probe; in a family without
   *  chains, also the entry probe, the hook's only one. */
  isExitProbe?: (slot: number, family: number, hook: number) => boolean;
  /** Completed journeys held back for start order at most (MAX_HELD). */
  maxHeld?: number;
}

interface Active {
  j: Journey;
  flow: FlowState;
  skb: number;
  rank: number;
  last: number;
  seenRx: boolean;
  seenXmit: boolean;
  localInExit: boolean;
  forward: boolean;
  /** Last netfilter step: hook and whether it was its exit probe. */
  nfHook: HookName | null;
  nfExited: boolean;
  sentReset: boolean;
  postRoutingExit: number | null;
  enqueued: number | null;
  /** Only GRO has seen it so far. */
  groOnly: boolean;
  /** GRO merged this segment into another packet: it shares that packet's fate. */
  mergedInto: Active | null;
  /** Segments GRO merged into this packet. */
  merged: Active[] | null;
  /** GSO cut it into segments (each its own journey) before the device; the payload they carried so far. */
  segmented: boolean;
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

const MS = 1_000_000;
/** Journeys under way at most; past it the oldest are settled early (memory stays bounded). */
const MAX_ACTIVE = 20_000;
/** Completed journeys held back behind one still under way (drain's start order); past it they go out. */
const MAX_HELD = 20_000;
/** How often tick() drops settled packets from the read queues (event time). */
const PRUNE_EVERY_NS = 250 * MS;
const DEFAULTS = { idleNs: 1000 * MS, graceNs: 50 * MS, readWaitNs: 1000 * MS, reads: true, queueWaitNs: 5000 * MS, maxHeld: MAX_HELD };

/** A queue with O(1) shift; bounded: past 65536 entries it forgets its oldest half. */
class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  push(x: T): void {
    if (this.items.length - this.head >= 65536) this.head += 32768;
    this.compact();
    this.items.push(x);
  }
  peek(): T | undefined {
    return this.items[this.head];
  }
  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head++];
    this.compact();
    return x;
  }
  private compact(): void {
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 4096 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** Data of one direction of a TCP flow delivered and not yet read, and where the reader is. */
interface TcpUnread {
  queue: Fifo<Active>;
  /** The skb the last read copied from (address and sequence number: addresses are reused), and how much
   *  of it has been copied (reads are sequential). */
  skb: number;
  seq: number;
  copied: number;
}

const newUnread = (): TcpUnread => ({ queue: new Fifo(), skb: 0, seq: 0, copied: 0 });

/** A step with every field declared, so that all steps share one shape (cheaper to make and fill). */
function newStep(point: string, t: number): Step {
  return {
    point, t, hook: undefined, at: undefined, ifindex: undefined, in: undefined, out: undefined, location: undefined,
    reason: undefined, priority: undefined, qlen: undefined, bytes: undefined, pid: undefined, comm: undefined, table: undefined,
    bridge: undefined, passed: undefined,
  };
}

/** Rank of each netfilter hook's entry (PRE_ROUTING .. POST_ROUTING); its exit is one more. */
const NF_RANK = [20, 30, 40, 50, 60];

const SKB_COPY_RANK = 90;

/** Order of points along a path; -1 for points that attach anywhere. */
function rank(e: TraceEvent, exit: boolean): number {
  switch (e.point) {
    case Point.NAPI_GRO_RECEIVE: return 4;
    case Point.NETIF_RX: return 5;
    case Point.NETIF_RECEIVE_SKB: return 10;
    case Point.NETFILTER: return NF_RANK[e.hook] + (exit ? 1 : 0);
    case Point.NET_DEV_QUEUE: return 64;
    case Point.QDISC_ENQUEUE: return 65;
    case Point.QDISC_DEQUEUE: return 66;
    case Point.NET_DEV_START_XMIT: return 70;
    case Point.SKB_COPY_DATAGRAM: return SKB_COPY_RANK;
    default: return -1;
  }
}

const RX_START = 10;   // ranks up to here begin a receive
const TX_QUEUED = 64;  // ranks from here on: handed to a device

function isIcmpError(e: TraceEvent): boolean {
  return (e.proto === IPPROTO.ICMP || e.proto === IPPROTO.ICMPV6) && e.innerProto !== 0;
}

/** The flow a packet belongs to; an ICMP error belongs to the flow of the packet it quotes. */
function flowTuple(e: TraceEvent): FlowTuple {
  if (isIcmpError(e)) return { proto: e.innerProto, family: e.family, src: e.dst, dst: e.innerDst, sport: e.sport, dport: e.dport };
  return e;
}

/**
 * Whether event e, of rank r, comes later on a's path. Besides the path order (and a packet
 * looped back from a device into this namespace), a packet passes stacked devices: a bridge,
 * bond or VLAN device hands it to a lower device (a second transmit), and a bridge port hands
 * it up to the bridge device (a second receive), after br_netfilter's PRE_ROUTING pass when
 * bridge-nf-call-iptables is on.
 */
function comesLater(a: Active, e: TraceEvent, r: number): boolean {
  if (r < 0 || r >= a.rank) return true;
  if (a.rank >= TX_QUEUED) {
    if (r <= RX_START) return true; // looped back
    return r < SKB_COPY_RANK && a.txDev !== 0 && e.ifindex !== a.txDev;
  }
  return r <= RX_START && a.rank <= NF_RANK[0] + 1 && a.rxDev !== 0 && e.ifindex !== a.rxDev;
}

function sameContent(j: Journey, e: TraceEvent): boolean {
  if (j.proto !== e.proto) return false;
  // TCP: the length too, since a pure ACK and the first segment of the data that follows it share
  // seq, ack and flags (and the segment may take the ACK's freed address).
  if (j.proto === IPPROTO.TCP) return j.seq === e.seq && j.ack === e.ack && j.flags === e.flags && j.len === e.len;
  return j.len === e.len && (j.family === 6 || j.ipId === e.ipId);
}

export class Correlator {
  private readonly active = new Map<number, Active>();
  private readonly done: Journey[] = [];
  readonly flows = new FlowTable();
  private nextId = 1;
  /** State changes of sockets that had no local port yet (connect()). */
  private pendingConnects: NamedEvent[] = [];
  /** UDP datagrams delivered and not yet read, by local port, in arrival order (settled ones are skipped). */
  private readonly udpQueues = new Map<number, Fifo<Active>>();
  /** TCP data delivered and not yet read, by flow and direction (sequence space), in arrival order. */
  private readonly tcpUnread = new Map<FlowState, [TcpUnread, TcpUnread]>();
  /** Packets GSO cut into segments, waiting for them, by flow. */
  private readonly segmenting = new Map<FlowState, Active[]>();
  private readonly o: Required<Omit<CorrelatorOptions, 'isExitProbe'>>;
  private readonly isExit: (slot: number, family: number, hook: number) => boolean;
  private prunedAt = 0;

  constructor(opts: CorrelatorOptions) {
    this.flows.onEvict(() => {
      for (const m of [this.tcpUnread, this.segmenting] as Map<FlowState, unknown>[]) {
        for (const f of m.keys()) if (this.flows.byKey(f.key) !== f) m.delete(f);
      }
    });
    this.o = { ...DEFAULTS, ...opts } as Required<Omit<CorrelatorOptions, 'isExitProbe'>>;
    this.isExit = opts.isExitProbe ?? ((slot) => slot !== NF_SLOT_ENTRY);
  }

  push(e: NamedEvent): void {
    switch (e.point) {
      case Point.TCP_RETRANSMIT_SYNACK:
      case Point.TCP_RETRANSMIT_SKB:
      case Point.TCP_RECEIVE_RESET:
      case Point.INET_SOCK_SET_STATE:
        this.socketEvent(e);
        return;
      case Point.SOCK_RECV_LENGTH:
        this.udpRead(e);
        return;
      case Point.SKB_COPY_DATAGRAM:
        if (e.proto === IPPROTO.TCP && this.tcpRead(e)) return;
        break;
    }
    const exit = e.point === Point.NETFILTER && this.isExit(e.probe, e.family, e.hook);
    const r = rank(e, exit);
    let a = this.active.get(e.skb);
    // Handed to a device, the skb may live on in another namespace (veth), where
    // a free can no longer name its namespace: not this packet's end here.
    if (a && a.seenXmit && e.netns === 0) return;
    if (a && a.groOnly && e.point === Point.NETIF_RECEIVE_SKB && a.j.seq === e.seq && e.len > a.j.len) {
      this.groMerged(a, e);
    } else if (a && !(sameContent(a.j, e) && comesLater(a, e, r))) {
      // The address now holds another packet: the old one went silent.
      this.settle(a, 'silent');
      a = undefined;
    }
    if (!a) {
      // Ends of packets never seen, reads of them and chain verdicts on them start nothing.
      if (e.point === Point.CONSUME_SKB || e.point === Point.SKB_COPY_DATAGRAM || e.point === Point.NF_CHAIN) return;
      if (e.point === Point.TCP_SEND_RESET) {
        this.resetSent(this.flows.of(e), e.t);
        return;
      }
      if (e.netns === 0 || (this.o.netns && e.netns !== this.o.netns)) return;
      a = this.start(e);
    }
    this.advance(a, e, exit, r);
  }

  /** GRO grew the segment a into a bigger packet: the segments that follow it
   *  within the new length were merged into it and end with it. */
  private groMerged(a: Active, e: NamedEvent): void {
    const end = (a.j.seq + e.len) >>> 0;
    for (const b of this.active.values()) {
      if (b !== a && b.groOnly && b.flow === a.flow && b.j.start >= a.j.start && b.j.direction === a.j.direction &&
          ((b.j.seq - a.j.seq) >>> 0) < ((end - a.j.seq) >>> 0)) {
        b.mergedInto = a;
        (a.merged ??= []).push(b);
      }
    }
    a.j.len = e.len;
    a.j.flags = e.flags;
  }

  /** Settles journeys idle for too long at time now (ns, same clock as events). */
  tick(now: number): void {
    this.flows.generation++;
    for (const a of this.active.values()) {
      if (!a.mergedInto && now - a.last >= this.waitFor(a)) this.settle(a, 'idle');
    }
    if (now - this.prunedAt >= PRUNE_EVERY_NS) {
      // Unread packets settle oldest first (by their read or its timeout): dropping the settled heads
      // keeps the queues to what still waits. Else a queue holds up to 64 k settled journeys after a flood.
      this.prunedAt = now;
      for (const [port, q] of this.udpQueues) if (this.dropSettled(q)) this.udpQueues.delete(port);
      for (const sides of this.tcpUnread.values()) for (const u of sides) this.dropSettled(u.queue);
    }
  }

  /** How long a journey may stay silent before it is settled, by where it is. */
  private waitFor(a: Active): number {
    if (a.localInExit) return this.awaitsRead(a) ? this.o.readWaitNs : this.o.graceNs;
    if (a.seenXmit) return this.o.graceNs;
    // Queued: for the neighbour, in a qdisc, or inside a hook (NFQUEUE to a program, a slow first packet
    // of a connection under a loaded VM): a hook's exit comes late, not never.
    if (a.postRoutingExit !== null || a.enqueued !== null || (a.nfHook !== null && !a.nfExited)) return this.o.queueWaitNs;
    return this.o.idleNs;
  }

  /** Data for a local socket: worth waiting for the application to read it. */
  private awaitsRead(a: Active): boolean {
    return this.o.reads && a.j.len > 0 && (a.j.proto === IPPROTO.TCP || a.j.proto === IPPROTO.UDP) && !a.forward;
  }

  /** Events were lost just now: every journey under way, or done but not yet handed out, may miss steps. */
  markIncomplete(): void {
    for (const a of this.active.values()) a.j.incomplete = true;
    for (const j of this.done) j.incomplete = true;
  }

  /** Settles everything still under way (the trace ended). */
  finish(): void {
    for (const a of this.active.values()) this.settle(a, 'end');
  }

  /** Completed journeys, in the order they started; journeys that started
   *  before one still under way wait for it (up to maxHeld of them). */
  drain(): Journey[] {
    if (this.done.length === 0) return [];
    let oldestActive = Infinity;
    for (const a of this.active.values()) oldestActive = Math.min(oldestActive, a.j.start);
    let n = 0;
    while (n < this.done.length && this.done[n].start <= oldestActive) n++;
    // A packet that waits long (for its read, in a queue) holds back all that started after it: at high
    // rates that is most of the memory. Past maxHeld they go out, and it follows later, out of start order.
    if (this.done.length - n > this.o.maxHeld) n = this.done.length;
    return this.done.splice(0, n);
  }

  get activeCount(): number {
    return this.active.size;
  }

  private resetSent(f: FlowState, t: number): void {
    f.resetsSent++;
    f.lastStackReset = t;
  }

  private socketEvent(e: NamedEvent): void {
    if (this.o.netns && e.netns && e.netns !== this.o.netns) return;
    if (e.point === Point.INET_SOCK_SET_STATE && e.sport === 0) {
      // connect() enters SYN_SENT before it picks the local port: the SYN that follows names the flow.
      this.pendingConnects = this.pendingConnects.filter((p) => e.t - p.t < this.o.idleNs);
      this.pendingConnects.push(snapshotEvent(e));
      return;
    }
    const f = this.flows.of(e);
    switch (e.point) {
      case Point.TCP_RETRANSMIT_SYNACK: f.synackRetransmits++; break;
      case Point.TCP_RETRANSMIT_SKB: f.retransmits++; break;
      case Point.TCP_RECEIVE_RESET: f.resetsReceived++; break;
      case Point.INET_SOCK_SET_STATE:
        this.flows.stateChange(e, e.t, e.oldState, e.newState, { pid: e.pid, comm: e.comm });
        break;
    }
  }

  /** A UDP socket's read: the oldest datagram waiting on that local port is the one read. */
  private udpRead(e: NamedEvent): void {
    if (this.o.netns && e.netns !== this.o.netns) return;
    // Datagrams wait in their socket's queue in arrival order: the oldest still waiting is the one read.
    const queue = this.udpQueues.get(e.sport);
    let oldest: Active | undefined;
    for (let a = queue?.shift(); a && !oldest; a = oldest ? undefined : queue!.shift()) {
      if (this.active.get(a.skb) === a) oldest = a;
    }
    if (oldest) this.settleRead(oldest, e);
  }

  /** A TCP read copies from one queued skb, which holds the segments TCP coalesced into it:
   *  every unread segment of its direction up to the end of what was copied has been read.
   *  False when no delivered data waits for it (the read then joins its skb's journey, if any). */
  private tcpRead(e: NamedEvent): boolean {
    if (this.o.netns && e.netns && e.netns !== this.o.netns) return true;
    const flow = this.flows.find(e);
    const unread = flow && this.tcpUnread.get(flow)?.[side(e)];
    if (!unread || !unread.queue.peek()) return false;
    // The event does not give the offset in the skb: a read that continues the last one's skb starts where it ended.
    unread.copied = unread.skb === e.skb && unread.seq === e.seq ? unread.copied + e.aux : e.aux;
    unread.skb = e.skb;
    unread.seq = e.seq;
    const end = (e.seq + unread.copied) >>> 0;
    for (let a = unread.queue.peek(); a; a = unread.queue.peek()) {
      if (this.active.get(a.skb) !== a) { unread.queue.shift(); continue; } // settled already
      const before = (end - a.j.seq) >>> 0;
      if (before === 0 || before > 2 ** 31) break; // starts at or after the end of this read
      unread.queue.shift();
      this.settleRead(a, e);
    }
    return true;
  }

  private settleRead(a: Active, e: NamedEvent): void {
    const step = newStep(POINT_NAMES[e.point], e.t);
    step.bytes = e.aux;
    step.pid = e.pid;
    step.comm = e.comm;
    a.j.steps.push(step);
    a.flow.owner = { pid: e.pid, comm: e.comm };
    this.settle(a, 'read', e);
  }

  /** Queues a delivered packet for its read; settled ones at the head go first, so the queue holds what waits. */
  private awaitRead(q: Fifo<Active>, a: Active): void {
    this.dropSettled(q);
    q.push(a);
  }

  /** Drops the settled packets at the head of a read queue; true when nothing waits in it any more. */
  private dropSettled(q: Fifo<Active>): boolean {
    for (let h = q.peek(); h && this.active.get(h.skb) !== h; h = q.peek()) q.shift();
    return q.peek() === undefined;
  }

  private start(e: NamedEvent): Active {
    if (this.active.size >= MAX_ACTIVE) {
      // A flood of packets waiting (for their reads, say): settle the oldest tenth now, so memory stays bounded.
      let n = MAX_ACTIVE / 10;
      for (const old of this.active.values()) {
        this.settle(old, 'idle');
        if (--n === 0) break;
      }
    }
    const flow = this.flows.of(flowTuple(e));
    const r = rank(e, false);
    const inbound = (r >= 0 && r <= RX_START) || (e.point === Point.NETFILTER && e.hook <= 2);
    const j: Journey = {
      id: this.nextId++, netns: e.netns, family: e.family as 4 | 6, proto: e.proto,
      src: e.src, dst: e.dst, sport: e.sport, dport: e.dport, flags: e.flags, seq: e.seq, ack: e.ack,
      len: e.len, ipId: e.ipId, start: e.t, steps: [],
      direction: inbound ? 'in' : 'out',
      fate: 'unfinished', drop: null, ending: 'timeout', tcpdump: false, tcpdumpDevices: [], retransmit: 0,
      flow: flow.key,
      // Declared up front: objects that keep one shape are faster to fill in.
      tcp: undefined, translated: undefined, route: undefined, delivery: undefined, origin: undefined, icmp: undefined,
      neighbourWaitNs: undefined, qdiscWaitNs: undefined, mergedInto: undefined, segmentOf: undefined, segments: undefined,
      bytes: undefined, incomplete: undefined,
    };
    // A GSO segment: the packet it was cut from passed the hooks and awaits its segments.
    if (!inbound && r >= TX_QUEUED && e.proto === IPPROTO.TCP) {
      // The latest packet that holds this sequence number: a retransmission may overlap one still listed.
      const waiting = this.segmenting.get(flow) ?? [];
      let parent: Active | undefined;
      for (let i = waiting.length - 1; i >= 0 && !parent; i--) {
        const p = waiting[i];
        if (this.active.get(p.skb) === p && ((e.seq - p.j.seq) >>> 0) < p.j.len) parent = p;
      }
      if (parent) {
        j.segmentOf = parent.j.id;
        parent.seenXmit = true;
        parent.last = e.t; // its grace runs from its latest segment: a stalled CPU may space them out
        parent.j.tcpdump = true;
        if (!parent.j.tcpdumpDevices.includes(e.ifindex)) parent.j.tcpdumpDevices.push(e.ifindex);
        (parent.j.segments ??= []).push(j.id);
        parent.segmentBytes += e.len;
        // All of it went out in segments: it ends now, and no later packet's segment can be taken for its own.
        if (parent.segmentBytes >= parent.j.len) this.settle(parent, 'free');
      }
    }
    // First seen inside a hook (its tuple matched only after conntrack or NAT),
    // but it came in on a device: it passed that device's tcpdump tap.
    if (inbound && e.point === Point.NETFILTER && e.ifindex) {
      j.tcpdump = true;
      j.tcpdumpDevices.push(e.ifindex);
    }
    if (isIcmpError(e)) {
      j.icmp = { type: e.icmpType, code: e.icmpCode, about: { proto: e.innerProto, dst: e.innerDst } };
    } else if (e.proto === IPPROTO.ICMP || e.proto === IPPROTO.ICMPV6) {
      j.icmp = { type: e.icmpType, code: e.icmpCode, about: null };
    }
    if (e.proto === IPPROTO.TCP && !(e.flags === TCP.ACK && e.len === 0)) {
      // A copy of a segment already seen (same direction, seq, flags, length) is a retransmission.
      j.retransmit = flow.segments[side(e)].count(j.seq, j.flags * 4096 + (j.len & 0xfff));
    }
    if (!inbound) {
      if (e.proto === IPPROTO.TCP && e.flags === TCP.SYN) {
        const i = this.pendingConnects.findIndex((p) => p.dport === e.dport && p.dst === e.dst);
        if (i >= 0) {
          const p = this.pendingConnects.splice(i, 1)[0];
          this.flows.stateChange(e, p.t, p.oldState, p.newState, { pid: p.pid, comm: p.comm });
        }
      }
      if (e.proto === IPPROTO.TCP && (e.flags & (TCP.SYN | TCP.RST))) {
        flow.replies.push({ t: e.t, kind: e.flags & TCP.RST ? 'R' : 'SA' });
      }
      if ((e.proto === IPPROTO.TCP && (e.flags & TCP.RST)) || isIcmpError(e)) flow.lastAnswer = e.t;
    }
    const a: Active = {
      j, flow, skb: e.skb, rank: 0, last: e.t, seenRx: false, seenXmit: false, localInExit: false, forward: false,
      nfHook: null, nfExited: false, sentReset: false, postRoutingExit: null, enqueued: null,
      groOnly: e.point === Point.NAPI_GRO_RECEIVE, mergedInto: null, merged: null, segmented: false, segmentBytes: 0,
      rxDev: 0, txDev: 0, bridgePass: false,
    };
    this.active.set(e.skb, a);
    return a;
  }

  /** Who made an outgoing packet, known once it settles: a RST or ICMP error
   *  made while an incoming packet of the flow was dying in a netfilter hook
   *  (a REJECT rule sends its answer before the drop) came from netfilter;
   *  TCP announces its own resets (tcp_send_reset); other errors are the stack's. */
  private origin(j: Journey, f: FlowState): Journey['origin'] {
    const answer = (j.proto === IPPROTO.TCP && (j.flags & TCP.RST)) || j.icmp?.about;
    if (!answer) return 'socket';
    const near = (t: number) => Math.abs(j.start - t) < 10 * MS;
    if (j.proto === IPPROTO.TCP && near(f.lastStackReset)) return 'stack';
    if (f.lastInDrop && near(f.lastInDrop.t) && f.lastInDrop.layer === 'netfilter') return 'netfilter';
    return j.proto === IPPROTO.TCP ? 'socket' : 'stack';
  }

  private advance(a: Active, e: NamedEvent, exit: boolean, r: number): void {
    const j = a.j;
    a.last = e.t;
    if (e.bytes && !j.bytes) j.bytes = e.bytes;
    if (r >= 0) a.rank = r;
    if (e.point !== Point.NAPI_GRO_RECEIVE) a.groOnly = false;
    const step = newStep(POINT_NAMES[e.point] ?? `point-${e.point}`, e.t);
    switch (e.point) {
      case Point.NAPI_GRO_RECEIVE:
      case Point.NETIF_RX:
      case Point.NET_DEV_QUEUE:
        step.ifindex = e.ifindex;
        break;
      case Point.NETIF_RECEIVE_SKB:
      case Point.NET_DEV_START_XMIT:
        // The device's tcpdump tap: right after RX, right before TX.
        step.ifindex = e.ifindex;
        if (e.point === Point.NETIF_RECEIVE_SKB) {
          a.seenRx = true;
          a.rxDev = e.ifindex;
          a.bridgePass = false;
        } else {
          // Received here and sent on without reaching the local stack: forwarded, by a bridge
          // (or tc) when no FORWARD hook saw it.
          if (a.seenRx && !a.forward && !a.localInExit && j.direction === 'in') { a.forward = true; j.direction = 'forward'; }
          a.seenXmit = true;
          a.txDev = e.ifindex;
          a.localInExit = false; // on its way out again: not (yet) delivered here
        }
        j.tcpdump = true;
        if (!j.tcpdumpDevices.includes(e.ifindex)) j.tcpdumpDevices.push(e.ifindex);
        break;
      case Point.QDISC_ENQUEUE:
        step.ifindex = e.ifindex;
        step.qlen = e.aux;
        a.enqueued = e.t;
        break;
      case Point.QDISC_DEQUEUE:
        step.ifindex = e.ifindex;
        if (a.enqueued !== null) j.qdiscWaitNs = e.t - a.enqueued;
        a.enqueued = null;
        break;
      case Point.NETFILTER: {
        const hook = HOOK_NAMES[e.hook];
        step.hook = hook;
        step.at = e.probe === NF_SLOT_ENTRY ? 'entry' : exit ? 'exit' : 'between';
        if (exit && step.at === 'entry') step.passed = true;
        if (e.priority !== undefined) step.priority = e.priority;
        if (e.ifindex) step.in = e.ifindex;
        if (e.ifindexOut) step.out = e.ifindexOut;
        if (hook === 'PRE_ROUTING' && a.seenRx && e.ifindex && e.ifindex !== a.rxDev) a.bridgePass = true;
        if (a.bridgePass) step.bridge = true;
        a.nfHook = hook;
        a.nfExited = exit;
        if (hook === 'FORWARD') { a.forward = true; j.direction = 'forward'; }
        if (hook === 'LOCAL_IN' && exit) {
          a.localInExit = true;
          // Queued by the tuple the socket sees (after any DNAT): the one its reads carry.
          if (this.awaitsRead(a) && j.proto === IPPROTO.UDP) {
            let q = this.udpQueues.get(e.dport);
            if (!q) this.udpQueues.set(e.dport, (q = new Fifo()));
            this.awaitRead(q, a);
          } else if (this.awaitsRead(a) && j.proto === IPPROTO.TCP) {
            let q = this.tcpUnread.get(a.flow);
            if (!q) this.tcpUnread.set(a.flow, (q = [newUnread(), newUnread()]));
            this.awaitRead(q[side(e)].queue, a);
          }
        }
        if (hook === 'POST_ROUTING' && exit) a.postRoutingExit = e.t;
        this.noteTranslation(a, e);
        break;
      }
      case Point.NF_CHAIN:
        // A table's base chain returned the drop (trampolines): its table and priority name it.
        step.hook = HOOK_NAMES[e.hook];
        step.at = 'chain';
        step.priority = e.priority;
        step.table = e.comm;
        step.location = e.probe === NF_EVAL_XT ? 'ipt_do_table' : 'nft_do_chain';
        break;
      case Point.TCP_SEND_RESET:
        a.sentReset = true;
        this.resetSent(a.flow, e.t);
        break;
      case Point.SKB_COPY_DATAGRAM:
        this.settleRead(a, e);
        return;
      case Point.KFREE_SKB:
      case Point.CONSUME_SKB:
        step.location = e.location ?? '';
        if (e.point === Point.KFREE_SKB) step.reason = e.reasonName === null ? undefined : e.reasonName ?? String(e.reason);
        j.steps.push(step);
        if (e.point === Point.CONSUME_SKB && e.location === 'validate_xmit_skb' && !a.seenXmit) {
          // GSO made wire-size segments of it; they go to the device as their own
          // journeys and it ends when they have (settled by the grace timeout).
          a.segmented = true;
          const list = (this.segmenting.get(a.flow) ?? []).filter((p) => this.active.get(p.skb) === p);
          this.segmenting.set(a.flow, [...list, a]);
          return;
        }
        this.settle(a, 'free', e);
        return;
    }
    if (a.postRoutingExit !== null && r >= TX_QUEUED && j.neighbourWaitNs === undefined) {
      j.neighbourWaitNs = e.t - a.postRoutingExit;
    }
    j.steps.push(step);
  }

  /** NAT rewrites the tuple inside a hook: keep the original, note the new one. */
  private noteTranslation(a: Active, e: NamedEvent): void {
    // Decoded records hash their tuple without making strings: compare those first.
    const hash = (e as { tupleHash?: number }).tupleHash;
    if (hash !== undefined) {
      if (hash === a.tupleHash) return;
      a.tupleHash = hash;
    }
    const j = a.j;
    const cur = j.translated ?? j;
    if (cur.src === e.src && cur.dst === e.dst && cur.sport === e.sport && cur.dport === e.dport) return;
    j.translated = { src: e.src, dst: e.dst, sport: e.sport, dport: e.dport };
    const t = flowTuple(e);
    this.flows.alias({ proto: t.proto, family: t.family, src: t.src, dst: t.dst, sport: t.sport, dport: t.dport }, a.flow);
  }

  private settle(a: Active, why: 'free' | 'read' | 'idle' | 'end' | 'silent', ev?: NamedEvent): void {
    if (this.active.get(a.skb) === a) this.active.delete(a.skb);
    if (a.segmented) {
      const rest = (this.segmenting.get(a.flow) ?? []).filter((p) => p !== a);
      if (rest.length) this.segmenting.set(a.flow, rest);
      else this.segmenting.delete(a.flow);
    }
    const j = a.j;
    if (a.mergedInto) {
      if (why === 'end') this.settle(a.mergedInto, 'end');
      return; // settles with the packet it was merged into
    }
    // No hooks, or (netfilter traced by trampolines) none registered after PRE_ROUTING: nothing in between.
    const reachedTransport = a.localInExit || (a.seenRx && (a.nfHook === null || (a.nfHook === 'PRE_ROUTING' && a.nfExited)));
    let fate: Fate;
    let drop: Drop | null = null;
    let ending: Ending;
    const reason = ev?.reasonName === null ? null : ev?.reasonName ?? String(ev?.reason);
    if (ev && ev.point === Point.KFREE_SKB && isDrop(reason, ev.location ?? '', reachedTransport, a.sentReset)) {
      const location = ev.location ?? '';
      const layer = dropLayer(reason ?? '', location);
      // The hook it was in: entered and not left, or left just before a netfilter drop.
      const hook = a.nfHook && (!a.nfExited || layer === 'netfilter') ? a.nfHook : null;
      drop = { layer, hook, reason, location };
      if (layer === 'netfilter' && hook) {
        // Since it entered that hook (its last pass: a bridge's and the routed one may share a name).
        let entered = j.start;
        for (const s of j.steps) if (s.point === 'netfilter' && s.hook === hook && s.at === 'entry') entered = s.t;
        drop.answered = a.flow.lastAnswer >= entered;
      }
      // TCP refused it in the state its socket was in: say which, as far as the state changes seen tell. Where TCP
      // named no reason (a time-wait socket's reset), only a state seen says more than the freeing function.
      const named = reason !== null && reason !== 'NOT_SPECIFIED';
      if (layer === 'tcp' && j.proto === IPPROTO.TCP && (!named || TCP_STATE_REASONS.has(reason)) && !a.forward &&
          (j.direction === 'in' || a.localInExit)) {
        const seen = this.socketState(a, ev.t);
        if (named || seen.state !== null) drop.tcpState = seen;
      }
      fate = 'dropped';
      ending = 'freed';
      if (j.direction !== 'out') a.flow.lastInDrop = { t: ev.t, layer };
    } else if (ev && this.unansweredSyn(a, ev)) {
      // tcp_conn_request drops a SYN when the listener's accept or SYN queue is full,
      // and the SYN is then consumed like an accepted one; only the missing SYN-ACK tells.
      drop = { layer: 'tcp', hook: null, reason: 'TCP_LISTEN_OVERFLOW', location: ev.location ?? '', inferred: true };
      fate = 'dropped';
      ending = 'freed';
    } else {
      const freed = why === 'free' || why === 'read';
      ending = a.segmented ? 'segmented' : why === 'free' ? 'freed' : why === 'read' ? 'read' : why === 'end' ? 'trace-ended' : 'left';
      // Delivered if it last left LOCAL_IN (a packet looped through lo or a veth
      // pair in this namespace is sent and then delivered); else sent if it left a device.
      if (a.localInExit || (freed && j.direction === 'in' && !a.seenXmit)) fate = 'delivered';
      else if (a.seenXmit) fate = a.forward ? 'forwarded' : 'sent';
      else if (freed && j.direction === 'out') fate = 'sent';
      else {
        fate = 'unfinished';
        ending = a.groOnly && why !== 'end' ? 'merged' : why === 'end' ? 'trace-ended' : 'timeout';
      }
    }
    j.fate = fate;
    j.drop = drop;
    j.ending = ending;
    j.route = this.route(a);
    if (j.direction === 'out') j.origin = this.origin(j, a.flow);
    if ((j.direction === 'in' || a.localInExit) && (j.proto === IPPROTO.TCP || j.proto === IPPROTO.UDP) && (reachedTransport || drop?.layer === 'socket')) {
      const read = why === 'read' && ev
        ? { pid: ev.pid, comm: ev.comm, bytes: ev.aux, queuedNs: ev.t - this.deliveredAt(j) }
        : null;
      const socketLayer = drop !== null && (drop.layer === 'socket' || drop.layer === 'tcp' || drop.layer === 'udp');
      const socket = drop?.reason === 'NO_SOCKET' ? false : fate === 'delivered' || socketLayer ? true : null;
      j.delivery = { socket, read };
    }
    if (j.proto === IPPROTO.TCP && j.direction === 'in') {
      const saw = reachedTransport && !(drop && drop.layer === 'netfilter');
      let reply: string | null = a.sentReset ? 'R' : null;
      if (!reply && saw && (j.flags & TCP.SYN) && !(j.flags & TCP.ACK)) {
        const r = a.flow.replies.find((x) => x.t >= j.start);
        reply = r ? r.kind : null;
      }
      j.tcp = { saw, reply };
    }
    this.finished(j);
    for (const m of a.merged ?? []) {
      Object.assign(m.j, { fate: j.fate, drop: j.drop, ending: 'merged', mergedInto: j.id, route: j.route });
      if (this.active.get(m.skb) === m) this.active.delete(m.skb);
      this.finished(m.j);
    }
  }

  /** Into done, kept in the order journeys started. They mostly end in that order: the common case appends. */
  private finished(j: Journey): void {
    const d = this.done;
    const before = (x: Journey) => x.start < j.start || (x.start === j.start && x.id < j.id);
    if (d.length === 0 || before(d[d.length - 1])) {
      d.push(j);
      return;
    }
    let lo = 0;
    let hi = d.length - 1; // d[hi] is not before j
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(d[mid])) lo = mid + 1;
      else hi = mid;
    }
    d.splice(lo, 0, j);
  }

  /** A SYN the listener consumed without a SYN-ACK or RST: the SYN-ACK of an
   *  accepted SYN is sent (and its journey started) before the SYN is consumed. */
  private unansweredSyn(a: Active, ev: NamedEvent): boolean {
    const j = a.j;
    return ev.point === Point.CONSUME_SKB && ev.location === 'tcp_rcv_state_process' && a.localInExit && !a.forward &&
      j.proto === IPPROTO.TCP && j.flags === TCP.SYN && !a.flow.replies.some((r) => r.t >= j.start);
  }

  /** The state of the local socket a TCP packet came to (its destination, after any DNAT) when TCP got it, from
   *  the last state change seen before then; and the changes after, up to its drop at time t. Without an earlier
   *  change, the first later one still tells the state it left. */
  private socketState(a: Active, t: number): TcpStateSeen {
    const to = a.j.translated ?? a.j;
    const local = endpoint(to.dst, to.dport, a.j.family);
    const arrived = this.deliveredAt(a.j);
    let before: FlowState['states'][number] | undefined;
    let after: FlowState['states'][number] | undefined;
    const then: string[] = [];
    for (const s of a.flow.states) {
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

  /** When the transport layer got it: when it left LOCAL_IN, else the device. */
  private deliveredAt(j: Journey): number {
    // Its last LOCAL_IN step: the exit, or the entry where it is the only probe.
    let s: Step | undefined;
    for (const x of j.steps) if (x.hook === 'LOCAL_IN' && x.at !== 'chain') s = x;
    s ??= j.steps.find((x) => x.point === 'netif_receive_skb');
    return s?.t ?? j.start;
  }

  /** The routing decision its hooks show: the input device of the hook after routing (LOCAL_IN, FORWARD;
   *  else the first hook's, else the device it arrived on: a bridge port's hooks come before the bridge
   *  device), the last hook's output device (else the last device it was sent on). One pass: this runs for
   *  every packet. */
  private route(a: Active): Journey['route'] {
    let inDev: number | undefined;
    let routedIn: number | undefined;
    let rxIn: number | undefined;
    let nfOut: number | undefined;
    let xmitOut: number | undefined;
    let local = false;
    let routed = false;
    for (const s of a.j.steps) {
      if (s.point === 'netfilter') {
        if (s.hook === 'FORWARD' && !s.bridge) routed = true;
        if (inDev === undefined && s.in && !s.bridge) inDev = s.in;
        if ((s.hook === 'LOCAL_IN' || s.hook === 'FORWARD') && !s.bridge && s.in && routedIn === undefined) routedIn = s.in;
        if (s.out) nfOut = s.out;
        if (s.hook === 'LOCAL_IN') local = true;
      } else if (s.point === 'net_dev_start_xmit' && s.ifindex !== undefined) {
        xmitOut = s.ifindex;
      } else if (s.point === 'netif_receive_skb' && rxIn === undefined) {
        rxIn = s.ifindex;
      }
    }
    // Forwarded without IP routing (no FORWARD hook, or only br_netfilter's): the bridge's ports.
    if (a.forward && !routed) return { decision: 'bridge', inDev: rxIn, outDev: xmitOut };
    inDev = routedIn ?? inDev ?? rxIn;
    const outDev = nfOut ?? xmitOut;
    if (a.forward) return { decision: 'forward', inDev, outDev };
    if (local) return { decision: 'local', inDev };
    if (a.j.direction === 'out') return { decision: 'output', outDev };
    return undefined;
  }
}
