// What the XDP and tc programs on the devices said of the packets they dropped: their verdicts, seen as each
// returned (an fexit program on it, where the kernel has BPF trampolines), and the kernel's reports of an XDP
// program's failure (xdp_exception, xdp_redirect_err). A tc verdict and an XDP failure carry their skb and are
// steps of its journey; an XDP verdict has none (native mode has no skb yet; generic mode's xdp_buff does not point
// to it) and waits here, by its packet's content, for the XDP-layer free that claims it. Pure.
import type { Drop, Journey, ProgramVerdict, Step } from './journey.js';
import { MS } from './journey.js';
import { sameContent } from './identity.js';
import type { NamedEvent } from './packet.js';
import { AT_INGRESS, Point, snapshotEvent, type TraceEvent } from '../trace/record.js';

const XDP_ACTIONS = ['XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT'];
const TC_ACTIONS: Record<number, string> = {
  [-1]: 'TC_ACT_UNSPEC',
  0: 'TC_ACT_OK',
  1: 'TC_ACT_RECLASSIFY',
  2: 'TC_ACT_SHOT',
  3: 'TC_ACT_PIPE',
  4: 'TC_ACT_STOLEN',
  5: 'TC_ACT_QUEUED',
  6: 'TC_ACT_REPEAT',
  7: 'TC_ACT_REDIRECT',
  8: 'TC_ACT_TRAP',
};

/** Whether an XDP verdict drops the packet (an action that is none, the kernel drops as XDP_ABORTED). */
const drops = (verdict: string) => verdict !== 'XDP_TX' && verdict !== 'XDP_REDIRECT' && verdict !== 'XDP_PASS';

/** The points that tell a program's answer, by the layer of the drop they explain. */
const XDP_STEPS = new Set(['xdp_verdict', 'xdp_exception', 'xdp_redirect_err', 'xdp_redirect_map_err']);

/** Whether e is one of the XDP points: a packet first seen there came in. */
export function isXdpPoint(e: Pick<TraceEvent, 'point'>): boolean {
  return (
    e.point === Point.XDP_VERDICT ||
    e.point === Point.XDP_EXCEPTION ||
    e.point === Point.XDP_REDIRECT_ERR ||
    e.point === Point.XDP_REDIRECT_MAP_ERR
  );
}

/** The program and its answer that an XDP or tc point's record tells (location: its id; comm: its name). */
export function programVerdict(e: TraceEvent): ProgramVerdict {
  const told = { id: e.locLo, name: e.comm };
  switch (e.point) {
    case Point.TC_VERDICT:
      return {
        ...told,
        verdict: TC_ACTIONS[e.aux | 0] ?? `tc action ${e.aux | 0}`,
        direction: e.probe === AT_INGRESS ? 'ingress' : 'egress',
      };
    case Point.XDP_REDIRECT_ERR:
    case Point.XDP_REDIRECT_MAP_ERR:
      return { ...told, verdict: 'XDP_REDIRECT', error: e.aux | 0 };
    default:
      return { ...told, verdict: XDP_ACTIONS[e.aux] ?? `XDP action ${e.aux}` };
  }
}

/** Sets drop.told from the journey's steps: the last answer of a program of the drop's layer. A free that follows a
 *  tc program's TC_ACT_SHOT at once is tc's drop, whatever function freed it (before 5.17 the kernel names no
 *  reason, and the tc hook's code may be inlined into __dev_queue_xmit). */
export function tellProgram(drop: Drop, steps: Step[]): void {
  const before = steps.at(-2);
  if (before?.point === 'tc_verdict' && steps.at(-1)?.point === 'kfree_skb') drop.layer = 'tc';
  if (drop.layer !== 'xdp' && drop.layer !== 'tc') return;
  const tells = (s: Step) => (drop.layer === 'xdp' ? XDP_STEPS.has(s.point) : s.point === 'tc_verdict');
  for (let i = steps.length - 1; i >= 0; i--) {
    const s = steps[i]!;
    if (tells(s) && s.program) {
      drop.told = s.program;
      return;
    }
  }
}

/** How long after its verdict the XDP-layer free of the same packet comes at most (the kernel frees at once; under
 *  qemu's emulation, much later than on hardware). */
const CLAIM_NS = 20 * MS;
/** How long a verdict waits for its free before it is a packet of its own that died there (the free's record comes
 *  through the same ring after it: this is time for the reader, not for the kernel). */
export const XDP_WAIT_NS = 200 * MS;

/** XDP verdicts waiting for the free of their packet. */
export class XdpVerdicts {
  private readonly waiting: NamedEvent[] = [];

  get size(): number {
    return this.waiting.length;
  }

  /** The time of the oldest verdict waiting (Infinity: none): the journeys it may start go out in start order. */
  get oldest(): number {
    return this.waiting[0]?.t ?? Infinity;
  }

  add(e: NamedEvent): void {
    this.waiting.push(snapshotEvent(e));
  }

  /** The verdict on journey j's packet that its XDP-layer free (free) ends: the same device, just before, the same
   *  tuple and content (TCP's sequence, flags and length; else length and IP id). Taken from those waiting. */
  claim(j: Journey, free: Pick<TraceEvent, 't' | 'ifindex'>): NamedEvent | undefined {
    const i = this.waiting.findIndex(
      (v) =>
        v.ifindex === free.ifindex &&
        v.t <= free.t &&
        free.t - v.t < CLAIM_NS &&
        v.src === j.src &&
        v.dst === j.dst &&
        v.sport === j.sport &&
        v.dport === j.dport &&
        sameContent(j, v),
    );
    return i < 0 ? undefined : this.waiting.splice(i, 1)[0];
  }

  /** Verdicts that waited XDP_WAIT_NS by now (all of them: Infinity) with no free: those that dropped their packet
   *  (XDP_DROP, XDP_ABORTED, an action that is none), which the driver recycled without an skb. An XDP_TX or
   *  XDP_REDIRECT no free claimed sent its packet on: it is left. */
  unclaimed(now: number): NamedEvent[] {
    const n = this.waiting.findIndex((v) => now - v.t < XDP_WAIT_NS);
    const old = this.waiting.splice(0, n < 0 ? this.waiting.length : n);
    return old.filter((v) => drops(programVerdict(v).verdict));
  }
}
