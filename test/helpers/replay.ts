// Replays recorded events (test/fixtures/*.ndjson, written by a real trace with
// PATHTRACE_RECORD_EVENTS=FILE) through the correlator.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Correlator, type NamedEvent } from '../../src/correlate/correlate.js';
import type { Journey } from '../../src/correlate/journey.js';
import { NF_SLOT_EXIT } from '../../src/trace/record.js';
import { FIXTURES } from './paths.js';

export function loadEvents(name: string): NamedEvent[] {
  return readFileSync(path.join(FIXTURES, `${name}.ndjson`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as NamedEvent);
}

/** All journeys, in the order the correlator releases them. */
export function replay(
  events: NamedEvent[],
  netns = events[0]?.netns ?? 0,
): { journeys: Journey[]; correlator: Correlator } {
  const correlator = new Correlator({ netns, isExitProbe: (s) => s === NF_SLOT_EXIT });
  const journeys: Journey[] = [];
  let last = 0;
  for (const e of events) {
    correlator.push(e);
    correlator.tick(e.t);
    journeys.push(...correlator.drain());
    last = e.t;
  }
  correlator.tick(last + 5e9);
  correlator.finish();
  journeys.push(...correlator.drain());
  return { journeys, correlator };
}
