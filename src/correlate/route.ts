// Which way a packet went: the tuple NAT gave it, the routing decision its hooks show, and who made a packet
// this host sent.
import type { FlowState, FlowTable } from './flows.js';
import { MS, TCP, type Journey } from './journey.js';
import { IPPROTO } from '../trace/record.js';
import { flowTuple } from './identity.js';
import type { Active, NamedEvent } from './packet.js';

/** NAT rewrites the tuple inside a hook: keep the original, note the new one, and make it an alias of the flow. */
export function noteTranslation(a: Active, e: NamedEvent, flows: FlowTable): void {
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
  flows.alias({ proto: t.proto, family: t.family, src: t.src, dst: t.dst, sport: t.sport, dport: t.dport }, a.flow);
}

/** The routing decision its hooks show: the input device of the hook after routing (LOCAL_IN, FORWARD;
 *  else the first hook's, else the device it arrived on: a bridge port's hooks come before the bridge
 *  device), the last hook's output device (else the last device it was sent on). One pass: this runs for
 *  every packet. forward: it was forwarded (by a FORWARD hook, or sent on from the device it came in on). */
export function route(j: Pick<Journey, 'steps' | 'direction'>, forward: boolean): Journey['route'] {
  let inDev: number | undefined;
  let routedIn: number | undefined;
  let rxIn: number | undefined;
  let nfOut: number | undefined;
  let xmitOut: number | undefined;
  let local = false;
  let routed = false;
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

/** Who made an outgoing packet, known once it settles (undefined: nothing of its path tells): a RST or ICMP error
 *  made while an incoming packet of the flow was dying in a netfilter hook
 *  (a REJECT rule sends its answer before the drop) came from netfilter;
 *  TCP announces its own resets (tcp_send_reset); other errors are the stack's. */
export function origin(j: Journey, f: FlowState): Journey['origin'] {
  // First seen at its end (freed in a device of this namespace, having come from elsewhere): nothing tells.
  if (j.steps.every((s) => s.point === 'kfree_skb' || s.point === 'consume_skb')) return undefined;
  const answer = (j.proto === IPPROTO.TCP && j.flags & TCP.RST) || j.icmp?.about;
  if (!answer) return 'socket';
  const near = (t: number) => Math.abs(j.start - t) < 10 * MS;
  if (j.proto === IPPROTO.TCP && near(f.lastStackReset)) return 'stack';
  if (f.lastInDrop && near(f.lastInDrop.t)) return f.lastInDrop.layer === 'netfilter' ? 'netfilter' : 'stack';
  return j.proto === IPPROTO.TCP ? 'socket' : 'stack';
}
