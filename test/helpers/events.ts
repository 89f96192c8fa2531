// Synthetic events for the correlator's unit tests, for the cases the recorded fixtures do not cover: one record
// written through the generated layout of bpf/record.h and decoded, so that a field added there needs nothing here;
// each event overrides what it sets. The base: a SYN 198.18.0.1:40000 → 198.18.0.2:80 received on ifindex 2 of
// namespace 5, skb 100.
import type { NamedEvent } from '../../src/correlate/correlate.js';
import {
  clockBase,
  decodeRecords,
  HOOK_NONE,
  Point,
  RECORD_SIZE,
  snapshotEvent,
  writeRecord,
  type TraceEvent,
} from '../../src/trace/record.js';

export const BASE_EVENT: TraceEvent = (() => {
  const buf = new Uint8Array(RECORD_SIZE);
  writeRecord(buf, 0, {
    point: Point.NETIF_RECEIVE_SKB,
    skb: 100,
    netns: 5,
    ifindex: 2,
    seq: 1,
    hook: HOOK_NONE,
    family: 4,
    l4proto: 6,
    tcp_flags: 2,
    ttl: 64,
    sport: 40000,
    dport: 80,
    ip_id: 1,
    saddr: [198, 18, 0, 1],
    daddr: [198, 18, 0, 2],
  });
  let e: TraceEvent | undefined;
  decodeRecords(buf, 1, clockBase(0n), (r) => (e = snapshotEvent(r)));
  return e!;
})();

/** The base event with p's fields. */
export function ev(p: Partial<NamedEvent>): NamedEvent {
  return { ...BASE_EVENT, ...p };
}
