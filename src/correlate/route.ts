// Which way a packet went: the tuple NAT gave it, the routing decision its hooks show, and who made a packet
// this host sent.
import type { FlowState, FlowTable } from './flows.js';
import { MS, TCP, type Journey, type NatRewrite, type Step, type Tuple } from './journey.js';
import { IPPROTO } from '../trace/record.js';
import { flowTuple } from './identity.js';
import type { Active, NamedEvent } from './packet.js';

/** NAT rewrites the tuple inside a hook: keep the original, note the new one and where it changed (a NatRewrite),
 *  and make it an alias of the flow. step: the step e adds (not yet in the journey). Once a rewritten packet
 *  leaves the last hook, conntrack keeps the connection's mapping: its later packets are conntrack's. */
export function noteTranslation(a: Active, e: NamedEvent, step: Step, flows: FlowTable): void {
  if (retupled(a, e)) {
    const j = a.j;
    const cur = j.translated ?? j;
    const from: Tuple = { src: cur.src, dst: cur.dst, sport: cur.sport, dport: cur.dport };
    const to: Tuple = { src: e.src, dst: e.dst, sport: e.sport, dport: e.dport };
    j.translated = to;
    const t = flowTuple(e);
    flows.alias({ proto: t.proto, family: t.family, src: t.src, dst: t.dst, sport: t.sport, dport: t.dport }, a.flow);
    // Every rewrite of one packet is of the same kind of packet: the first one's judgement holds for the rest.
    const seen = j.nat?.[0];
    const kind = seen ? { packet: seen.packet, reply: seen.reply } : natPacket(j, a.flow);
    const rewrite: NatRewrite = {
      ...bracket(j.steps, step),
      t: step.t,
      in: step.in,
      out: step.out,
      from,
      to,
      packet: kind.packet,
      ...(kind.reply && { reply: true as const }),
    };
    // Conntrack's rewrite needs no rule: said now, without reading the ruleset.
    if (rewrite.packet === 'later') rewrite.by = 'conntrack';
    (j.nat ??= []).push(rewrite);
  }
  const j = a.j;
  if (
    j.translated &&
    a.flow.nat === null &&
    step.at === 'exit' &&
    !step.bridge &&
    (step.hook === 'POST_ROUTING' || step.hook === 'LOCAL_IN')
  )
    a.flow.nat = { final: j.translated, first: j.nat?.[0]?.packet === 'first' };
}

/** Whether e shows another tuple than the packet had at its last netfilter step. */
function retupled(a: Active, e: NamedEvent): boolean {
  // Decoded records hash their tuple without making strings: compare those first.
  const hash = (e as { tupleHash?: number }).tupleHash;
  if (hash !== undefined) {
    if (hash === a.tupleHash) return false;
    a.tupleHash = hash;
  }
  const cur = a.j.translated ?? a.j;
  return !(cur.src === e.src && cur.dst === e.dst && cur.sport === e.sport && cur.dport === e.dport);
}

/** Where a rewrite happened: after the journey's last netfilter step and before the step that shows it (in that
 *  step's hook; at the end of the last one's hook when it shows first at the next hook's entry). */
function bracket(steps: Step[], step: Step): Pick<NatRewrite, 'hook' | 'after' | 'before'> {
  let prev: Step | undefined;
  for (let i = steps.length - 1; i >= 0 && !prev; i--) {
    const s = steps[i]!;
    if (s.point === 'netfilter' && s.at !== 'chain') prev = s;
  }
  if (prev?.hook && prev.hook !== step.hook && step.at === 'entry')
    return { hook: prev.hook, after: prev.priority ?? -Infinity, before: Infinity };
  return {
    hook: step.hook!,
    after: prev && prev.hook === step.hook ? (prev.priority ?? -Infinity) : -Infinity,
    before: step.priority ?? Infinity,
  };
}

/** What the NAT rules can have seen of a rewritten packet (they see a connection's first packet only; conntrack
 *  rewrites the others as it did that one). A first SYN is a connection's first packet; once a rewritten packet of
 *  the flow left the last hook, conntrack had the mapping, and a packet the other way is the reply; an ICMP error
 *  belongs to the connection it quotes; a TCP segment other than a SYN belongs to one established already. A
 *  retransmitted SYN, or a datagram, may be either: the first copy may have died before conntrack kept it. */
export function natPacket(
  j: Pick<Journey, 'proto' | 'flags' | 'retransmit' | 'icmp' | 'src' | 'dst' | 'sport' | 'dport'>,
  flow: Pick<FlowState, 'nat'>,
): { packet: NatRewrite['packet']; reply?: true } {
  const syn = j.proto === IPPROTO.TCP && (j.flags & (TCP.SYN | TCP.ACK)) === TCP.SYN;
  if (syn && j.retransmit === 0) return { packet: 'first' };
  if (flow.nat) {
    const f = flow.nat.final;
    const reverse = j.src === f.dst && j.dst === f.src && j.sport === f.dport && j.dport === f.sport;
    return flow.nat.first && reverse ? { packet: 'later', reply: true } : { packet: 'later' };
  }
  if (j.icmp?.about) return { packet: 'later' };
  return { packet: j.proto === IPPROTO.TCP && !syn ? 'later' : 'unknown' };
}

/** The routing decision its hooks show: the input device of the hook after routing (LOCAL_IN, FORWARD;
 *  else the first hook's, else the device it arrived on: a bridge port's hooks come before the bridge
 *  device), the last hook's output device (else the last device it was sent on). One pass: this runs for
 *  every packet. forward: it was forwarded (by a FORWARD hook, or sent on from the device it came in on). */
export function route(j: Pick<Journey, 'steps' | 'direction' | 'drop'>, forward: boolean): Journey['route'] {
  let inDev: number | undefined;
  let routedIn: number | undefined;
  let rxIn: number | undefined;
  let nfOut: number | undefined;
  let xmitOut: number | undefined;
  let local = false;
  // Dropped by IP forwarding itself (before its FORWARD hook): routed, to be forwarded.
  let routed = j.drop !== null && /^ip6?_forward/.test(j.drop.location);
  for (const s of j.steps) {
    if (s.point === 'netfilter') {
      if (s.hook === 'FORWARD' && !s.bridge) routed = true;
      if (inDev === undefined && s.in && !s.bridge) inDev = s.in;
      if ((s.hook === 'LOCAL_IN' || s.hook === 'FORWARD') && !s.bridge && s.in && routedIn === undefined)
        routedIn = s.in;
      if (s.out) nfOut = s.out;
      if (s.hook === 'LOCAL_IN') local = true;
    } else if (s.point === 'net_dev_start_xmit' && s.ifindex !== undefined) {
      xmitOut = s.ifindex;
    } else if (s.point === 'netif_receive_skb' && rxIn === undefined) {
      rxIn = s.ifindex;
    }
  }
  // Forwarded without IP routing (no FORWARD hook, or only br_netfilter's): the bridge's ports.
  if (forward && !routed) return { decision: 'bridge', inDev: rxIn, outDev: xmitOut };
  inDev = routedIn ?? inDev ?? rxIn;
  const outDev = nfOut ?? xmitOut;
  if (forward) return { decision: 'forward', inDev, outDev };
  if (local) return { decision: 'local', inDev };
  if (j.direction === 'out') return { decision: 'output', outDev };
  return undefined;
}

/** A TCP reset or an ICMP error: what a host sends back about a packet it refused. */
export function isAnswer(j: Journey): boolean {
  return Boolean((j.proto === IPPROTO.TCP && j.flags & TCP.RST) || j.icmp?.about);
}

/** Who made an outgoing packet, known once it settles (undefined: nothing of its path tells): a RST or ICMP error
 *  made while an incoming packet of the flow was dying in a netfilter hook
 *  (a REJECT rule sends its answer before the drop) came from netfilter;
 *  TCP announces its own resets (tcp_send_reset); other errors are the stack's. */
export function origin(j: Journey, f: FlowState): Journey['origin'] {
  // First seen at its end (freed in a device of this namespace, having come from elsewhere): nothing tells.
  if (j.steps.every((s) => s.point === 'kfree_skb' || s.point === 'consume_skb')) return undefined;
  if (!isAnswer(j)) return 'socket';
  const near = (t: number) => Math.abs(j.start - t) < 10 * MS;
  if (j.proto === IPPROTO.TCP && near(f.lastStackReset)) return 'stack';
  if (f.lastInDrop && near(f.lastInDrop.t)) return f.lastInDrop.layer === 'netfilter' ? 'netfilter' : 'stack';
  return j.proto === IPPROTO.TCP ? 'socket' : 'stack';
}
