// The step an event adds to a journey: the fields the event itself gives (path.ts adds what follows from
// where the packet was).
import type { Step } from './journey.js';
import { HOOK_NAMES } from '../trace/kernel-names.js';
import { NF_EVAL_XT, NF_SLOT_ENTRY, Point, POINT_NAMES } from '../trace/record.js';
import type { NamedEvent } from './packet.js';
import { programVerdict } from './hook-verdicts.js';

/** A step with every field declared, so that all steps share one shape (cheaper to make and fill). */
function newStep(point: string, t: number): Step {
  return {
    point,
    t,
    hook: undefined,
    at: undefined,
    ifindex: undefined,
    in: undefined,
    out: undefined,
    location: undefined,
    reason: undefined,
    priority: undefined,
    qlen: undefined,
    bytes: undefined,
    pid: undefined,
    comm: undefined,
    table: undefined,
    bridge: undefined,
    passed: undefined,
    program: undefined,
  };
}

/** The step of event e on the path (exit: a netfilter probe where packets leave the hook). */
export function stepOf(e: NamedEvent, exit: boolean): Step {
  const step = newStep(POINT_NAMES[e.point] ?? `point-${e.point}`, e.t);
  switch (e.point) {
    case Point.NAPI_GRO_RECEIVE:
    case Point.NETIF_RX:
    case Point.NET_DEV_QUEUE:
    case Point.NETIF_RECEIVE_SKB:
    case Point.NET_DEV_START_XMIT:
    case Point.QDISC_DEQUEUE:
      step.ifindex = e.ifindex;
      break;
    case Point.QDISC_ENQUEUE:
      step.ifindex = e.ifindex;
      step.qlen = e.aux;
      break;
    case Point.NETFILTER:
      step.hook = HOOK_NAMES[e.hook];
      step.at = e.probe === NF_SLOT_ENTRY ? 'entry' : exit ? 'exit' : 'between';
      if (exit && step.at === 'entry') step.passed = true;
      if (e.priority !== undefined) step.priority = e.priority;
      if (e.ifindex) step.in = e.ifindex;
      if (e.ifindexOut) step.out = e.ifindexOut;
      break;
    case Point.NF_CHAIN:
      // A table's base chain returned the drop (trampolines): its table and priority name it.
      step.hook = HOOK_NAMES[e.hook];
      step.at = 'chain';
      step.priority = e.priority;
      step.table = e.comm;
      step.location = e.probe === NF_EVAL_XT ? 'ipt_do_table' : 'nft_do_chain';
      break;
    case Point.XDP_VERDICT:
    case Point.TC_VERDICT:
    case Point.XDP_EXCEPTION:
    case Point.XDP_REDIRECT_ERR:
    case Point.XDP_REDIRECT_MAP_ERR:
      step.ifindex = e.ifindex;
      step.program = programVerdict(e);
      break;
    case Point.KFREE_SKB:
    case Point.CONSUME_SKB:
      // The skb's device when it was freed (one of the traced namespace's, as its namespace was told by it).
      if (e.ifindex) step.ifindex = e.ifindex;
      step.location = e.location ?? '';
      if (e.point === Point.KFREE_SKB)
        step.reason = e.reasonName === null ? undefined : (e.reasonName ?? String(e.reason));
      break;
  }
  return step;
}

/** The step of an application's read of the packet. */
export function readStep(e: NamedEvent): Step {
  const step = newStep(POINT_NAMES[e.point] ?? `point-${e.point}`, e.t);
  step.bytes = e.aux;
  step.pid = e.pid;
  step.comm = e.comm;
  return step;
}
