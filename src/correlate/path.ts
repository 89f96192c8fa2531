// Where a packet is: the path state each event moves on (devices, queues, netfilter hooks), and what of its
// journey follows from it (direction, tcpdump taps, time waiting for the neighbour and in a qdisc).
import type { Journey, Step } from './journey.js';
import { Point } from '../trace/record.js';
import { SKB_COPY_RANK, TX_QUEUED } from './identity.js';
import type { Active, NamedEvent } from './packet.js';
import { layerOfLocation } from './classify.js';

/** Moves a on by event e, of rank r (exit: a netfilter exit probe), whose step is step. */
export function follow(a: Active, e: NamedEvent, exit: boolean, r: number, step: Step): void {
  const j = a.j;
  a.last = e.t;
  if (e.bytes && !j.bytes) j.bytes = e.bytes;
  if (r >= 0) a.rank = r;
  if (e.point !== Point.NAPI_GRO_RECEIVE) a.groOnly = false;
  switch (e.point) {
    case Point.NETIF_RECEIVE_SKB:
      a.seenRx = true;
      a.rxDev = e.ifindex;
      a.bridgePass = false;
      passedTap(j, e.ifindex);
      break;
    case Point.NET_DEV_START_XMIT:
      // Received here and sent on without reaching the local stack: forwarded, by a bridge
      // (or tc) when no FORWARD hook saw it.
      if (a.seenRx && !a.forward && !a.localInExit && j.direction === 'in') {
        a.forward = true;
        j.direction = 'forward';
      }
      a.seenXmit = true;
      a.txDev = e.ifindex;
      a.localInExit = false; // on its way out again: not (yet) delivered here
      passedTap(j, e.ifindex);
      break;
    case Point.QDISC_ENQUEUE:
      a.enqueued = e.t;
      break;
    case Point.QDISC_DEQUEUE:
      if (a.enqueued !== null) j.qdiscWaitNs = e.t - a.enqueued;
      a.enqueued = null;
      break;
    case Point.NETFILTER: {
      const hook = step.hook!;
      if (hook === 'PRE_ROUTING' && a.seenRx && e.ifindex && e.ifindex !== a.rxDev) a.bridgePass = true;
      if (a.bridgePass) step.bridge = true;
      a.nfHook = hook;
      a.nfExited = exit;
      if (hook === 'FORWARD') {
        a.forward = true;
        j.direction = 'forward';
      }
      if (hook === 'LOCAL_IN' && exit) a.localInExit = true;
      if (hook === 'POST_ROUTING' && exit) a.postRoutingExit = e.t;
      break;
    }
    case Point.TCP_SEND_RESET:
      a.sentReset = true;
      break;
    case Point.KFREE_SKB:
    case Point.CONSUME_SKB:
      if (layerOfLocation(e.location ?? '') === 'tcp') a.tcpSeen = true;
      break;
  }
  // Routed, then handed to a device: the time between went to resolving the neighbour.
  if (a.postRoutingExit !== null && r >= TX_QUEUED && r < SKB_COPY_RANK && j.neighbourWaitNs === undefined) {
    j.neighbourWaitNs = e.t - a.postRoutingExit;
  }
}

/** The device's tcpdump tap: right after RX, right before TX. */
function passedTap(j: Journey, ifindex: number): void {
  j.tcpdump = true;
  if (!j.tcpdumpDevices.includes(ifindex)) j.tcpdumpDevices.push(ifindex);
}

/** A packet the XDP program dropped in generic mode: that runs after the netif_receive_skb tracepoint and before
 *  the device's tcpdump tap, so the tap of its last receive was never reached. */
export function untapped(j: Journey): void {
  let rx: Step | undefined;
  for (const s of j.steps) if (s.point === 'netif_receive_skb') rx = s;
  if (!rx) return;
  j.tcpdumpDevices = j.tcpdumpDevices.filter((d) => d !== rx.ifindex);
  j.tcpdump = j.tcpdumpDevices.length > 0;
}
