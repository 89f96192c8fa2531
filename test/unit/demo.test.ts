// The demo teaches what its run showed, not a fixed lesson.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lessonOf, SCENARIOS } from '../../src/commands/demo.js';
import type { Summary } from '../../src/report/summary.js';

const summary = (drops: Partial<Summary['drops'][number]>[]): Summary =>
  ({ packets: 7, drops: drops.map((d) => ({ count: 3, reason: 'NETFILTER_DROP', ...d })) }) as Summary;

test('the lesson is said when the run dropped at the hook the demo is about, and what it showed when not', () => {
  const s = SCENARIOS['local-in']!;
  assert.equal(lessonOf(s, summary([{ hook: 'LOCAL_IN', location: 'nf_hook_slow' }])), s.lesson);
  assert.equal(
    lessonOf(s, summary([{ hook: null, location: 'tcp_v4_rcv', reason: 'NO_SOCKET' }])),
    'this run did not show what the demo is about (drops at LOCAL_IN): 7 packets, drops 3 at tcp_v4_rcv (NO_SOCKET)',
  );
  assert.match(lessonOf(s, summary([])), /no drops$/);
});
