import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Journey } from '../../src/correlate/journey.js';
import { drainStdout, SlowReaderSink } from '../../src/output/slow-reader.js';
import type { Sink } from '../../src/output/sink.js';
import type { Summary } from '../../src/report/summary.js';

function recorder() {
  const calls: string[] = [];
  const sink: Sink = {
    ready: () => calls.push('ready'),
    packet: (j) => calls.push(`packet ${j.id}`),
    note: (m) => calls.push(`note ${m}`),
    summary: (sum) => calls.push(`summary, ${sum.outputSkipped} skipped`),
  };
  return { calls, sink };
}

test('past the backlog bound packet records are skipped, counted and said; notes and the summary always go', () => {
  const out = { writableLength: 0 };
  const { calls, sink } = recorder();
  const s = new SlowReaderSink(sink, out, 1000);
  const j = (id: number) => ({ id }) as Journey;
  s.packet(j(1));
  out.writableLength = 1001;
  s.packet(j(2));
  s.packet(j(3));
  s.note('ruleset changed');
  out.writableLength = 10;
  s.packet(j(4));
  out.writableLength = 5000;
  s.packet(j(5));
  s.summary({} as Summary);
  assert.deepEqual(calls, [
    'packet 1',
    "note stdout's reader fell behind (0 MiB waiting): packet records are skipped until it catches up",
    'note ruleset changed',
    "note stdout's reader caught up: 2 packet records were skipped",
    'packet 4',
    "note stdout's reader fell behind (0 MiB waiting): packet records are skipped until it catches up",
    "note 3 packet records in all were skipped because stdout's reader fell behind (the summary counts them)",
    'summary, 3 skipped',
  ]);
});

test('draining stdout: done when the reader takes it all, given up when it takes nothing', async () => {
  const taken = { writableLength: 300 };
  const timer = setInterval(() => {
    taken.writableLength = Math.max(0, taken.writableLength - 100);
  }, 50);
  assert.equal(await drainStdout(300, taken), true);
  clearInterval(timer);
  assert.equal(await drainStdout(300, { writableLength: 42 }), false);
});
