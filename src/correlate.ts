// Rebuilds packet journeys from probe events. Pure: events in, journeys out;
// time comes only from the events and from tick(now).
//
// Identity (DESIGN.md): the skb address is a hint; an event continues a
// journey only if the packet's content matches (TCP seq/ack/flags, else
// length and IP id) and the point comes later on the path. Address reuse,
// clones and a packet re-entering after a device loop are told apart that way.
import { dropLayer, isDrop } from './classify.js';
import { HOOK_NAMES, tcpStateName, type HookName } from './kernel-names.js';
import { IPPROTO, NF_SLOT_ENTRY, Point, POINT_NAMES, type TraceEvent } from './record.js';
import { TCP, type Drop, type Ending, type Fate, type Journey, type Step } from './journey.js';

/** A decoded event plus the names the session resolved for it. */
export interface NamedEvent extends TraceEvent {
  /** kfree/consume: the freeing function (from kallsyms). */
  location?: string;
  /** kfree_skb: drop reason name without the SKB_DROP_REASON_ prefix. */
  reasonName?: string;
}

export interface CorrelatorOptions {
  /** Only events of this namespace start journeys (0: any). */
  netns: number;
  /** Idle time after which a packet mid-path is reported as cut by timeout. */
  idleNs?: number;
  /** Idle time after which a packet that left (device, local stack) is settled. */
  graceNs?: number;
  /** Which netfilter probe slot is the hook's exit probe (the others are entry or between). */
  isExitProbe?: (slot: number) => boolean;
}

export interface FlowState {
  key: string;
  proto: number;
  family: 4 | 6;
  /** Endpoints as first seen: a is the sender of the first packet. */
  a: string;
  b: string;
  journeys: number[];
  states: { t: number; from: string; to: string; pid: number }[];
  synackRetransmits: number;
  retransmits: number;
  resetsSent: number;
  resetsReceived: number;
  /** TCP segment copies seen, for retransmission numbering. */
  segments: Map<string, number>;
  /** Start times of SYN-ACK and RST packets sent by TCP, to tell whether a SYN was answered. */
  replies: { t: number; kind: string }[];
}

interface Active {
  j: Journey;
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
}

const DEFAULT_IDLE_NS = 1_000_000_000;
const DEFAULT_GRACE_NS = 50_000_000;

/** Order of points along a path; -1 for points that attach anywhere. */
function rank(e: TraceEvent, exit: boolean): number {
  switch (e.point) {
    case Point.NETIF_RECEIVE_SKB: return 10;
    case Point.NETFILTER: return [20, 30, 40, 50, 60][e.hook] + (exit ? 1 : 0);
    case Point.NET_DEV_START_XMIT: return 70;
    default: return -1;
  }
}

function endpoint(addr: string, port: number, family: number): string {
  return family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}

export function flowKey(e: { proto: number; family: number; src: string; dst: string; sport: number; dport: number }): string {
  const a = endpoint(e.src, e.sport, e.family);
  const b = endpoint(e.dst, e.dport, e.family);
  return a < b ? `${e.proto} ${a} ${b}` : `${e.proto} ${b} ${a}`;
}

function sameContent(j: Journey, e: TraceEvent): boolean {
  if (j.proto !== e.proto) return false;
  if (j.proto === IPPROTO.TCP) return j.seq === e.seq && j.ack === e.ack && j.flags === e.flags;
  return j.len === e.len && (j.family === 6 || j.ipId === e.ipId);
}

export class Correlator {
  private readonly active = new Map<number, Active>();
  private readonly done: Journey[] = [];
  readonly flows = new Map<string, FlowState>();
  private nextId = 1;
  private readonly idleNs: number;
  private readonly graceNs: number;
  private readonly isExit: (slot: number) => boolean;

  constructor(private readonly opts: CorrelatorOptions) {
    this.idleNs = opts.idleNs ?? DEFAULT_IDLE_NS;
    this.graceNs = opts.graceNs ?? DEFAULT_GRACE_NS;
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
    }
    const exit = e.point === Point.NETFILTER && this.isExit(e.probe);
    const r = rank(e, exit);
    let a = this.active.get(e.skb);
    if (a && !(sameContent(a.j, e) && (r < 0 || r >= a.rank || (a.rank === 70 && r === 10)))) {
      // The address now holds another packet: the old one went silent.
      this.settle(a, 'silent');
      a = undefined;
    }
    if (!a) {
      if (e.point === Point.CONSUME_SKB) return; // a normal end of a packet we never saw
      if (e.point === Point.TCP_SEND_RESET) {
        const flow = this.flow(e);
        flow.resetsSent++;
        return;
      }
      if (e.netns === 0 || (this.opts.netns && e.netns !== this.opts.netns)) return;
      a = this.start(e);
    }
    this.advance(a, e, exit, r);
  }

  /** Settles journeys idle for too long at time now (ns, same clock as events). */
  tick(now: number): void {
    for (const a of this.active.values()) {
      const left = a.seenXmit || a.localInExit;
      if (now - a.last >= (left ? this.graceNs : this.idleNs)) this.settle(a, 'idle');
    }
  }

  /** Settles everything still under way (the trace ended). */
  finish(): void {
    for (const a of this.active.values()) this.settle(a, 'end');
  }

  /** Completed journeys, in the order they started; journeys that started
   *  before one still under way wait for it. */
  drain(): Journey[] {
    if (this.done.length === 0) return [];
    let oldestActive = Infinity;
    for (const a of this.active.values()) oldestActive = Math.min(oldestActive, a.j.start);
    this.done.sort((x, y) => x.start - y.start || x.id - y.id);
    let n = 0;
    while (n < this.done.length && this.done[n].start <= oldestActive) n++;
    return this.done.splice(0, n);
  }

  get activeCount(): number {
    return this.active.size;
  }

  private flow(e: { proto: number; family: number; src: string; dst: string; sport: number; dport: number }): FlowState {
    const key = flowKey(e);
    let f = this.flows.get(key);
    if (!f) {
      f = {
        key, proto: e.proto, family: e.family as 4 | 6,
        a: endpoint(e.src, e.sport, e.family), b: endpoint(e.dst, e.dport, e.family),
        journeys: [], states: [], synackRetransmits: 0, retransmits: 0, resetsSent: 0, resetsReceived: 0,
        segments: new Map(), replies: [],
      };
      this.flows.set(key, f);
    }
    return f;
  }

  private socketEvent(e: NamedEvent): void {
    if (this.opts.netns && e.netns && e.netns !== this.opts.netns) return;
    const f = this.flow(e);
    switch (e.point) {
      case Point.TCP_RETRANSMIT_SYNACK: f.synackRetransmits++; break;
      case Point.TCP_RETRANSMIT_SKB: f.retransmits++; break;
      case Point.TCP_RECEIVE_RESET: f.resetsReceived++; break;
      case Point.INET_SOCK_SET_STATE:
        f.states.push({ t: e.t, from: tcpStateName(e.oldState), to: tcpStateName(e.newState), pid: e.pid });
        break;
    }
  }

  private start(e: NamedEvent): Active {
    const f = this.flow(e);
    const j: Journey = {
      id: this.nextId++, netns: e.netns, family: e.family as 4 | 6, proto: e.proto,
      src: e.src, dst: e.dst, sport: e.sport, dport: e.dport, flags: e.flags, seq: e.seq, ack: e.ack,
      len: e.len, ipId: e.ipId, start: e.t, steps: [],
      direction: e.point === Point.NETIF_RECEIVE_SKB || (e.point === Point.NETFILTER && e.hook <= 2) ? 'in' : 'out',
      fate: 'unfinished', drop: null, ending: 'timeout', tcpdump: false, tcpdumpDevices: [], retransmit: 0,
      flow: f.key,
    };
    if (e.proto === IPPROTO.TCP && !(e.flags === TCP.ACK && e.len === 0)) {
      const seg = `${j.src} ${j.sport} ${j.seq} ${j.ack} ${j.flags} ${j.len}`;
      const n = f.segments.get(seg) ?? 0;
      f.segments.set(seg, n + 1);
      j.retransmit = n;
    }
    if (e.proto === IPPROTO.TCP && j.direction === 'out' && (e.flags & (TCP.SYN | TCP.RST))) {
      f.replies.push({ t: e.t, kind: e.flags & TCP.RST ? 'R' : 'SA' });
    }
    f.journeys.push(j.id);
    const a: Active = {
      j, skb: e.skb, rank: 0, last: e.t, seenRx: false, seenXmit: false, localInExit: false, forward: false,
      nfHook: null, nfExited: false, sentReset: false,
    };
    this.active.set(e.skb, a);
    return a;
  }

  private advance(a: Active, e: NamedEvent, exit: boolean, r: number): void {
    const j = a.j;
    a.last = e.t;
    if (r >= 0) a.rank = r;
    const step: Step = { point: '', t: e.t };
    switch (e.point) {
      case Point.NETIF_RECEIVE_SKB:
      case Point.NET_DEV_START_XMIT:
        // The device's tcpdump tap: right after RX, right before TX.
        step.point = POINT_NAMES[e.point];
        step.ifindex = e.ifindex;
        if (e.point === Point.NETIF_RECEIVE_SKB) a.seenRx = true;
        else a.seenXmit = true;
        j.tcpdump = true;
        if (!j.tcpdumpDevices.includes(e.ifindex)) j.tcpdumpDevices.push(e.ifindex);
        break;
      case Point.NETFILTER: {
        const hook = HOOK_NAMES[e.hook];
        step.point = 'netfilter';
        step.hook = hook;
        step.at = exit ? 'exit' : 'entry';
        a.nfHook = hook;
        a.nfExited = exit;
        if (hook === 'FORWARD') { a.forward = true; j.direction = 'forward'; }
        if (hook === 'LOCAL_IN' && exit) a.localInExit = true;
        // NAT rewrites the tuple inside a hook: follow the packet's current addresses.
        j.src = e.src; j.dst = e.dst; j.sport = e.sport; j.dport = e.dport;
        break;
      }
      case Point.TCP_SEND_RESET:
        step.point = 'tcp_send_reset';
        a.sentReset = true;
        this.flows.get(j.flow)!.resetsSent++;
        break;
      case Point.KFREE_SKB:
      case Point.CONSUME_SKB:
        step.point = POINT_NAMES[e.point];
        step.location = e.location ?? '';
        if (e.point === Point.KFREE_SKB) step.reason = e.reasonName ?? String(e.reason);
        j.steps.push(step);
        this.settle(a, 'free', e);
        return;
    }
    j.steps.push(step);
  }

  private settle(a: Active, why: 'free' | 'idle' | 'end' | 'silent', free?: NamedEvent): void {
    this.active.delete(a.skb);
    const j = a.j;
    const reachedTransport = a.localInExit || (a.seenRx && !j.steps.some((s) => s.point === 'netfilter'));
    let fate: Fate;
    let drop: Drop | null = null;
    let ending: Ending;
    if (free && free.point === Point.KFREE_SKB &&
        isDrop(free.reasonName ?? '', free.location ?? '', reachedTransport)) {
      const reason = free.reasonName ?? String(free.reason);
      const location = free.location ?? '';
      const layer = dropLayer(reason, location);
      // The hook it was in: entered and not left, or left just before a netfilter drop.
      const hook = a.nfHook && (!a.nfExited || layer === 'netfilter') ? a.nfHook : null;
      drop = { layer, hook, reason, location };
      fate = 'dropped';
      ending = 'freed';
    } else {
      const freed = why === 'free';
      ending = freed ? 'freed' : why === 'end' ? 'trace-ended' : 'left';
      if (a.seenXmit && (!a.seenRx || a.rank >= 60)) fate = a.forward ? 'forwarded' : 'sent';
      else if (a.localInExit || (freed && j.direction === 'in')) fate = 'delivered';
      else if (freed && j.direction === 'out') fate = 'sent';
      else if (a.seenXmit) fate = a.forward ? 'forwarded' : 'sent';
      else {
        fate = 'unfinished';
        ending = why === 'end' ? 'trace-ended' : 'timeout';
      }
    }
    j.fate = fate;
    j.drop = drop;
    j.ending = ending;
    if (j.proto === IPPROTO.TCP && j.direction === 'in') {
      const f = this.flows.get(j.flow)!;
      const saw = reachedTransport && !(drop && drop.layer === 'netfilter');
      let reply: string | null = a.sentReset ? 'R' : null;
      if (!reply && saw && (j.flags & TCP.SYN) && !(j.flags & TCP.ACK)) {
        const r = f.replies.find((x) => x.t >= j.start);
        reply = r ? r.kind : null;
      }
      j.tcp = { saw, reply };
    }
    this.done.push(j);
  }
}
