// Rebuilds packet journeys from probe events. Pure: events in, journeys out; time comes only from the events
// and from tick(now). The Correlator routes each event and owns the packets under way and their timeouts; the
// files beside it do one job each (docs/ARCHITECTURE.md lists them).
import { FlowTable, type FlowState } from './flows.js';
import { BELOW_TRANSPORT, MS, type Journey } from './journey.js';
import { layerOfLocation } from './classify.js';
import { IPPROTO, NF_SLOT_ENTRY, Point } from '../trace/record.js';
import { delivery, tcpAnswer } from './delivery.js';
import { comesLater, flowTuple, rank, sameContent, startsInbound, TX_QUEUED } from './identity.js';
import { allSegmentsSent, cutBySegmentation, endMerged, grewByGro, groMerge, Segmenting } from './offload.js';
import { newActive, newJourney, type Active, type NamedEvent } from './packet.js';
import { follow, untapped } from './path.js';
import { isXdpPoint, programVerdict, tellProgram, XdpVerdicts } from './hook-verdicts.js';
import { ReadQueues } from './reads.js';
import { StartOrder } from './release.js';
import { isAnswer, noteTranslation, origin, route } from './route.js';
import { resetSent, SocketEvents } from './sockets.js';
import { readStep, stepOf } from './steps.js';
import { noteTooBigTold, reachedTransport, verdict, type Verdict, type Why } from './verdict.js';

export type { NamedEvent } from './packet.js';

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

/** Journeys under way at most; past it the oldest are settled early (memory stays bounded). */
const MAX_ACTIVE = 20_000;
/** Completed journeys held back behind one still under way (drain's start order); past it they go out. */
const MAX_HELD = 20_000;
/** How often tick() drops settled packets from the read queues (event time). */
const PRUNE_EVERY_NS = 250 * MS;
const DEFAULTS = {
  idleNs: 1000 * MS,
  graceNs: 50 * MS,
  readWaitNs: 1000 * MS,
  reads: true,
  queueWaitNs: 5000 * MS,
  maxHeld: MAX_HELD,
};

export class Correlator {
  /** Packets under way, by skb address. */
  private readonly active = new Map<number, Active>();
  /** Completed journeys, to go out in start order. */
  private readonly done = new StartOrder();
  readonly flows = new FlowTable();
  private nextId = 1;
  private readonly live = (a: Active): boolean => this.active.get(a.skb) === a;
  private readonly reads = new ReadQueues(this.live, (a, e) => this.settleRead(a, e));
  private readonly segmenting = new Segmenting(this.live);
  /** XDP verdicts waiting for the free of their packet. */
  private readonly xdp = new XdpVerdicts();
  private readonly o: Required<Omit<CorrelatorOptions, 'isExitProbe'>>;
  private readonly sockets: SocketEvents;
  private readonly isExit: (slot: number, family: number, hook: number) => boolean;
  private prunedAt = 0;

  constructor(opts: CorrelatorOptions) {
    // Flows forgotten past MAX_FLOWS: what waited on them goes too.
    this.flows.onEvict(() => {
      for (const m of [this.reads.tcp, this.segmenting.waiting] as Map<FlowState, unknown>[]) {
        for (const f of m.keys()) if (this.flows.byKey(f.key) !== f) m.delete(f);
      }
    });
    this.o = { ...DEFAULTS, ...opts } as Required<Omit<CorrelatorOptions, 'isExitProbe'>>;
    this.sockets = new SocketEvents(this.flows, this.o.idleNs);
    this.isExit = opts.isExitProbe ?? ((slot) => slot !== NF_SLOT_ENTRY);
  }

  push(e: NamedEvent): void {
    switch (e.point) {
      case Point.TCP_RETRANSMIT_SYNACK:
      case Point.TCP_RETRANSMIT_SKB:
      case Point.TCP_RECEIVE_RESET:
      case Point.INET_SOCK_SET_STATE:
        if (!this.otherNetns(e)) this.sockets.push(e);
        return;
      case Point.XDP_VERDICT:
        if (!(this.o.netns && e.netns !== this.o.netns)) this.xdp.add(e);
        return;
      case Point.SOCK_RECV_LENGTH:
        if (!(this.o.netns && e.netns !== this.o.netns)) this.reads.udpRead(e.sport, e);
        return;
      case Point.SKB_COPY_DATAGRAM:
        // A TCP read of data that waits for it (one of another namespace goes nowhere); else it joins its skb.
        if (e.proto === IPPROTO.TCP && (this.otherNetns(e) || this.reads.tcpRead(this.flows.find(e), e))) return;
        break;
    }
    const exit = e.point === Point.NETFILTER && this.isExit(e.probe, e.family, e.hook);
    const r = rank(e, exit);
    let a = this.active.get(e.skb);
    // Handed to a device, the skb may live on in another namespace (veth), where
    // a free can no longer name its namespace: not this packet's end here.
    if (a && a.seenXmit && e.netns === 0) return;
    if (a && grewByGro(a, e)) {
      groMerge(a, e, this.active.values());
    } else if (a && !(sameContent(a.j, e) && comesLater(a, e, r))) {
      // The address now holds another packet: the old one went silent.
      this.settle(a, 'silent');
      a = undefined;
    }
    if (!a) {
      // Ends of packets never seen, reads of them and chain verdicts on them start nothing.
      if (e.point === Point.CONSUME_SKB || e.point === Point.SKB_COPY_DATAGRAM || e.point === Point.NF_CHAIN) return;
      if (e.point === Point.TCP_SEND_RESET) {
        resetSent(this.flows.of(e), e.t);
        return;
      }
      if (e.netns === 0 || (this.o.netns && e.netns !== this.o.netns)) return;
      a = this.start(e, r);
    }
    this.advance(a, e, exit, r);
  }

  /** Settles journeys idle for too long at time now (ns, same clock as events). */
  tick(now: number): void {
    this.flows.generation++;
    for (const a of this.active.values()) {
      if (!a.mergedInto && now - a.last >= this.waitFor(a)) this.settle(a, 'idle');
    }
    if (this.xdp.size) for (const v of this.xdp.unclaimed(now)) this.diedInXdp(v);
    if (now - this.prunedAt >= PRUNE_EVERY_NS) {
      this.prunedAt = now;
      this.reads.prune();
    }
  }

  /** Events were lost just now: every journey under way, or done but not yet handed out, may miss steps. */
  markIncomplete(): void {
    for (const a of this.active.values()) a.j.incomplete = true;
    this.done.markIncomplete();
  }

  /** Settles everything still under way (the trace ended). */
  finish(): void {
    for (const a of this.active.values()) this.settle(a, 'end');
    for (const v of this.xdp.unclaimed(Infinity)) this.diedInXdp(v);
  }

  /** Completed journeys, in the order they started; journeys that started
   *  before one still under way wait for it (up to maxHeld of them). */
  drain(): Journey[] {
    if (this.done.size === 0) return [];
    let oldestActive = this.xdp.oldest;
    for (const a of this.active.values()) oldestActive = Math.min(oldestActive, a.j.start);
    return this.done.take(oldestActive, this.o.maxHeld);
  }

  get activeCount(): number {
    return this.active.size;
  }

  /** The UDP read queues: test/unit/correlate.test.ts checks that they let go of settled packets. */
  protected get udpQueues(): ReadonlyMap<number, unknown> {
    return this.reads.udp;
  }

  /** A socket event or a TCP read in a namespace other than the traced one. */
  private otherNetns(e: NamedEvent): boolean {
    return this.o.netns !== 0 && e.netns !== 0 && e.netns !== this.o.netns;
  }

  /** How long a journey may stay silent before it is settled, by where it is. */
  private waitFor(a: Active): number {
    if (a.localInExit) return this.awaitsRead(a) ? this.o.readWaitNs : this.o.graceNs;
    if (a.seenXmit) return this.o.graceNs;
    // Queued: for the neighbour, in a qdisc, or inside a hook (NFQUEUE to a program, a slow first packet
    // of a connection under a loaded VM): a hook's exit comes late, not never.
    if (a.postRoutingExit !== null || a.enqueued !== null || (a.nfHook !== null && !a.nfExited))
      return this.o.queueWaitNs;
    return this.o.idleNs;
  }

  /** Data for a local socket: worth waiting for the application to read it. */
  private awaitsRead(a: Active): boolean {
    return this.o.reads && a.j.len > 0 && (a.j.proto === IPPROTO.TCP || a.j.proto === IPPROTO.UDP) && !a.forward;
  }

  /** A new journey, from its first event e of rank r. */
  private start(e: NamedEvent, r: number): Active {
    if (this.active.size >= MAX_ACTIVE) {
      // A flood of packets waiting (for their reads, say): settle the oldest tenth now, so memory stays bounded.
      let n = MAX_ACTIVE / 10;
      for (const old of this.active.values()) {
        this.settle(old, 'idle');
        if (--n === 0) break;
      }
    }
    const flow = this.flows.of(flowTuple(e));
    // A packet first seen at its free in XDP, or at XDP's points, came in: XDP runs on receive, before anything
    // else sees it.
    const inbound =
      startsInbound(e) || isXdpPoint(e) || (e.point === Point.KFREE_SKB && layerOfLocation(e.location ?? '') === 'xdp');
    const j = newJourney(e, this.nextId++, flow, inbound);
    if (!inbound) {
      // A GSO segment: the packet it was cut from passed the hooks and awaits its segments.
      const parent = r >= TX_QUEUED && e.proto === IPPROTO.TCP ? this.segmenting.segmentOf(j, e, flow) : undefined;
      // All of it went out in segments: it ends now, and no later packet's segment can be taken for its own.
      if (parent && allSegmentsSent(parent)) this.settle(parent, 'free');
      this.sockets.sending(e, flow);
    }
    const a = newActive(j, flow, e);
    this.active.set(e.skb, a);
    return a;
  }

  /** Event e (of rank r; exit: a netfilter exit probe) continues a's journey. */
  private advance(a: Active, e: NamedEvent, exit: boolean, r: number): void {
    const step = stepOf(e, exit);
    follow(a, e, exit, r, step);
    switch (e.point) {
      case Point.NETFILTER:
        if (step.hook === 'LOCAL_IN' && exit && this.awaitsRead(a)) this.reads.queue(a, e);
        noteTranslation(a, e, step, this.flows);
        break;
      case Point.TCP_SEND_RESET:
        resetSent(a.flow, e.t);
        break;
      case Point.SKB_COPY_DATAGRAM:
        this.settleRead(a, e);
        return;
      case Point.KFREE_SKB:
      case Point.CONSUME_SKB:
        a.j.steps.push(step);
        // GSO made wire-size segments of it; they go to the device as their own
        // journeys and it ends when they have (settled by the grace timeout).
        if (cutBySegmentation(a, e)) this.segmenting.add(a);
        else this.settle(a, 'free', e);
        return;
    }
    a.j.steps.push(step);
  }

  private settleRead(a: Active, e: NamedEvent): void {
    a.j.steps.push(readStep(e));
    if (a.j.proto === IPPROTO.TCP) a.tcpSeen = true;
    a.flow.owner = { pid: e.pid, comm: e.comm };
    this.settle(a, 'read', e);
  }

  private settle(a: Active, why: Why, ev?: NamedEvent): void {
    if (this.active.get(a.skb) === a) this.active.delete(a.skb);
    if (a.segmented) this.segmenting.remove(a);
    if (a.mergedInto) {
      if (why === 'end') this.settle(a.mergedInto, 'end');
      return; // settles with the packet it was merged into
    }
    const j = a.j;
    const v = verdict(j, a, a.flow, why, ev);
    if (v.drop && ev?.point === Point.KFREE_SKB) {
      // Its XDP program's verdict, which came before its free with no skb to join it by.
      const told = v.drop.layer === 'xdp' ? this.xdp.claim(j, ev) : undefined;
      if (told) {
        let at = j.steps.length - 1; // before the free, in time order
        while (at > 0 && j.steps[at - 1]!.t > told.t) at--;
        j.steps.splice(at, 0, stepOf(told, false));
      }
      tellProgram(v.drop, j.steps);
    }
    this.close(a, v, why, ev);
  }

  /** An XDP verdict that dropped its packet and that no free claimed: the driver recycled the buffer, and the
   *  verdict is all there is of the packet (its journey of one step). */
  private diedInXdp(e: NamedEvent): void {
    const flow = this.flows.of(flowTuple(e));
    const j = newJourney(e, this.nextId++, flow, true);
    j.steps.push(stepOf(e, false));
    const drop = { layer: 'xdp' as const, hook: null, reason: null, location: '', told: programVerdict(e) };
    this.close(newActive(j, flow, e), { fate: 'dropped', drop, ending: 'verdict' }, 'free');
  }

  /** Ends a's journey with verdict v (why: what stopped it; ev: the event that did). */
  private close(a: Active, { fate, drop, ending }: Verdict, why: Why, ev?: NamedEvent): void {
    const j = a.j;
    j.fate = fate;
    j.drop = drop;
    j.ending = ending;
    // An incoming packet the kernel freed as a drop (not a SYN the listener consumed): an answer near it is for it.
    if (drop && ev?.point === Point.KFREE_SKB && j.direction !== 'out') {
      a.flow.lastInDrop = { t: ev.t, layer: drop.layer };
      // Its answer may have ended first (still held: it started after this one): told now.
      const answer = a.flow.answerSent;
      if (answer && answer.start > j.start) answer.origin = origin(answer, a.flow);
      a.flow.answerSent = null;
    }
    if (drop?.tooBig) noteTooBigTold(a.flow, j, drop.tooBig);
    // Dropped by forwarding before its FORWARD hook (the TTL, too big for the way out): routing had decided to
    // forward it, so it was never this host's to deliver.
    if (drop && j.direction === 'in' && /^ip6?_forward/.test(drop.location)) {
      j.direction = 'forward';
      a.forward = true;
    }
    j.route = route(j, a.forward);
    if (j.direction === 'out') {
      j.origin = origin(j, a.flow);
      if (isAnswer(j)) a.flow.answerSent = j;
    }
    // Where it died below the transport layer, the transport layer never had it, whatever hooks it passed.
    const reached = reachedTransport(a) && !(drop && BELOW_TRANSPORT.has(drop.layer));
    if (drop?.layer === 'xdp') untapped(j);
    j.delivery = delivery(j, a, reached, fate, drop, why === 'read' ? ev : undefined);
    j.tcp = tcpAnswer(j, a, reached, drop, a.flow.replies);
    this.done.add(j);
    for (const m of a.merged ?? []) {
      endMerged(m.j, j);
      if (this.active.get(m.skb) === m) this.active.delete(m.skb);
      this.done.add(m.j);
    }
  }
}
