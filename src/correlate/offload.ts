// GRO and GSO: the receive offload merges a flow's segments into one packet, which they end with; the send
// offload cuts one packet into wire-size segments, each its own journey, and the packet ends when they went out.
import type { FlowState } from './flows.js';
import type { Journey } from './journey.js';
import { Point, type TraceEvent } from '../trace/record.js';
import type { Active, NamedEvent } from './packet.js';

/** Whether e shows GRO grew a, a segment only GRO had seen, into a bigger packet. */
export function grewByGro(a: Active, e: TraceEvent): boolean {
  return a.groOnly && e.point === Point.NETIF_RECEIVE_SKB && a.j.seq === e.seq && e.len > a.j.len;
}

/** GRO grew the segment a into a bigger packet (event e): the segments under way that follow it
 *  within the new length were merged into it and end with it. */
export function groMerge(a: Active, e: TraceEvent, underWay: Iterable<Active>): void {
  const end = (a.j.seq + e.len) >>> 0;
  for (const b of underWay) {
    if (
      b !== a &&
      b.groOnly &&
      b.flow === a.flow &&
      b.j.start >= a.j.start &&
      b.j.direction === a.j.direction &&
      (b.j.seq - a.j.seq) >>> 0 < (end - a.j.seq) >>> 0
    ) {
      b.mergedInto = a;
      (a.merged ??= []).push(b);
    }
  }
  a.j.len = e.len;
  a.j.flags = e.flags;
}

/** A segment GRO merged into j ends as j did. */
export function endMerged(m: Journey, j: Journey): void {
  Object.assign(m, { fate: j.fate, drop: j.drop, ending: 'merged', mergedInto: j.id, route: j.route });
}

/** Whether freeing event e means GSO made wire-size segments of a: consumed by validate_xmit_skb before any
 *  device saw it. */
export function cutBySegmentation(a: Active, e: NamedEvent): boolean {
  return e.point === Point.CONSUME_SKB && e.location === 'validate_xmit_skb' && !a.seenXmit;
}

/** Packets GSO cut into segments, waiting for them to go out, by flow. */
export class Segmenting {
  readonly waiting = new Map<FlowState, Active[]>();

  /** live: whether a packet is still under way (not settled). */
  constructor(private readonly live: (a: Active) => boolean) {}

  /** GSO cut a into segments: they go to the device as their own journeys, and it ends when they have
   *  (or, settled by the grace timeout, after its latest). */
  add(a: Active): void {
    a.segmented = true;
    const list = (this.waiting.get(a.flow) ?? []).filter(this.live);
    this.waiting.set(a.flow, [...list, a]);
  }

  /** a settled: it waits no more. */
  remove(a: Active): void {
    const rest = (this.waiting.get(a.flow) ?? []).filter((p) => p !== a);
    if (rest.length) this.waiting.set(a.flow, rest);
    else this.waiting.delete(a.flow);
  }

  /** The packet the wire segment j (first event e) was cut from, if any: the latest that holds its sequence
   *  number (a retransmission may overlap one still listed). Notes the segment on it. */
  segmentOf(j: Journey, e: TraceEvent, flow: FlowState): Active | undefined {
    const waiting = this.waiting.get(flow) ?? [];
    let parent: Active | undefined;
    for (let i = waiting.length - 1; i >= 0 && !parent; i--) {
      const p = waiting[i]!;
      if (this.live(p) && (e.seq - p.j.seq) >>> 0 < p.j.len) parent = p;
    }
    if (!parent) return undefined;
    j.segmentOf = parent.j.id;
    parent.seenXmit = true;
    parent.last = e.t; // its grace runs from its latest segment: a stalled CPU may space them out
    parent.j.tcpdump = true;
    if (!parent.j.tcpdumpDevices.includes(e.ifindex)) parent.j.tcpdumpDevices.push(e.ifindex);
    (parent.j.segments ??= []).push(j.id);
    parent.segmentBytes += e.len;
    return parent;
  }
}

/** All of p went out in segments. */
export const allSegmentsSent = (p: Active): boolean => p.segmentBytes >= p.j.len;
