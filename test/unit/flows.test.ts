// Retransmission numbering: how often each TCP segment was seen.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SegmentCopies } from '../../src/correlate/flows.js';

const kind = (flags: number, len: number) => flags * 4096 + (len & 0xfff);

test('segment copies: each copy of a segment counts once more; another segment at the same sequence number apart', () => {
  const s = new SegmentCopies();
  const seq = 0xfffffff0; // past 2^31: the int32 key is negative
  assert.deepEqual(
    [s.count(seq, kind(0x18, 1448)), s.count(seq, kind(0x18, 1448)), s.count(seq, kind(0x18, 1448))],
    [0, 1, 2],
  );
  // Retransmitted cut differently (same seq, other length): a segment of its own, counted apart.
  assert.deepEqual([s.count(seq, kind(0x18, 2896)), s.count(seq, kind(0x18, 2896))], [0, 1]);
  assert.equal(s.count(seq, kind(0x18, 1448)), 3, 'the first one keeps its count');
  assert.equal(s.count(seq, kind(0x19, 1448)), 0, 'other flags: another segment');
  assert.equal(s.count(1, kind(0x18, 1448)), 0);
});

test('segment copies: the latest `keep` segments are remembered, older ones forgotten', () => {
  const s = new SegmentCopies(4);
  for (let i = 0; i < 4; i++) s.count(i, kind(0x18, 1));
  for (let i = 4; i < 8; i++) s.count(i, kind(0x18, 1)); // a new generation: 0..3 are the previous one
  assert.equal(s.count(2, kind(0x18, 1)), 1, 'still known from the previous generation');
  for (let i = 8; i < 16; i++) s.count(i, kind(0x18, 1));
  assert.equal(s.count(5, kind(0x18, 1)), 0, 'two generations later: forgotten');
});
