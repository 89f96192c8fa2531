import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { native } from '../../src/trace/native.js';
import * as generated from '../../src/trace/record.generated.js';
import {
  BYTES_HEADER,
  BYTES_OFFSETS,
  clockBase,
  decodeRecords,
  OFFSETS,
  Point,
  POINT_NAMES,
  POINTS,
  RECORD_FIELDS,
  RECORD_SIZE,
  snapshotEvent,
  type TraceEvent,
} from '../../src/trace/record.js';

const BPF_DIR = fileURLToPath(new URL('../../../bpf/', import.meta.url));

// src/trace/record.generated.ts is what scripts/generate-record-ts.mjs read in bpf/record.h; the addon says what the C++
// compiler made of the same X-macros. They differ when the generator misreads record.h or the build left one stale.

test('the generated record layout is the one the addon was compiled with (bpf/record.h)', () => {
  const layout = native().recordLayout();
  assert.equal(RECORD_SIZE, layout.size);
  assert.deepEqual(
    Object.fromEntries(RECORD_FIELDS.map((f) => [f.name, { offset: f.offset, size: f.size }])),
    layout.fields,
  );
  assert.deepEqual({ ...OFFSETS }, Object.fromEntries(RECORD_FIELDS.map((f) => [f.name, f.offset])));
  assert.equal(BYTES_HEADER, layout.bytesHeader, 'PT_BYTES_HEADER is where struct pathtrace_bytes has its data');
  assert.deepEqual({ ...BYTES_OFFSETS }, layout.bytesFields, "struct pathtrace_bytes's header");
});

test('the generated point table is enum pathtrace_point as compiled', () => {
  const { points } = native().recordLayout();
  assert.deepEqual(Object.fromEntries(POINTS.map(({ key, id, name, group }) => [key, { id, name, group }])), points);
  assert.deepEqual({ ...Point }, Object.fromEntries(Object.entries(points).map(([key, p]) => [key, p.id])));
  assert.deepEqual({ ...POINT_NAMES }, Object.fromEntries(Object.values(points).map((p) => [p.id, p.name])));
});

test('each tracepoint\'s point is named after the tracepoint its program attaches to (SEC("tp_btf/..."))', () => {
  // The addon attaches a point's program by that name; a point renamed in record.h alone would attach nothing.
  // The verdicts' points are named after their fexit programs (attached to other programs: device_verdicts.bpf.c).
  const bpf = readdirSync(BPF_DIR)
    .filter((f) => /\.(c|h)$/.test(f))
    .map((f) => readFileSync(path.join(BPF_DIR, f), 'utf8'))
    .join('\n');
  const sections = new Set([
    ...[...bpf.matchAll(/SEC\("tp_btf\/(\w+)"\)/g)].map((m) => m[1]),
    ...[...bpf.matchAll(/SEC\("fexit\/(?:xdp|tc)"\)\s*int BPF_PROG\((\w+)/g)].map((m) => m[1]),
  ]);
  const tracepoints = new Set(POINTS.filter((p) => p.group !== 'netfilter').map((p) => p.name));
  assert.deepEqual([...tracepoints].sort(), [...sections].sort());
});

test('the generated constants are those of bpf/record.h as compiled', () => {
  const { constants } = native().recordLayout();
  const values = generated as unknown as Record<string, unknown>;
  assert.deepEqual(
    Object.fromEntries(Object.keys(constants).map((c) => [c, values[c.replace(/^PT_/, '')]])),
    constants,
  );
});

test('a record decodes field by field, times relative to the clock base', () => {
  const buf = new Uint8Array(RECORD_SIZE * 2);
  const v = new DataView(buf.buffer);
  const o = RECORD_SIZE; // the second record
  const ts = 0x1_2345_6789n + 1500n;
  v.setBigUint64(o + OFFSETS.ts_ns, ts, true);
  v.setBigUint64(o + OFFSETS.skb, 0xffff888012345678n, true);
  v.setBigUint64(o + OFFSETS.location, 0xffffffff81f63250n, true);
  v.setUint32(o + OFFSETS.netns, 4026531840, true);
  v.setUint32(o + OFFSETS.ifindex, 7, true);
  v.setUint32(o + OFFSETS.reason, 12, true);
  v.setUint32(o + OFFSETS.seq, 0xdeadbeef, true);
  v.setUint32(o + OFFSETS.ack, 1, true);
  v.setUint16(o + OFFSETS.point, Point.NETFILTER, true);
  v.setUint8(o + OFFSETS.hook, 1);
  v.setUint8(o + OFFSETS.probe, 7);
  v.setUint8(o + OFFSETS.family, 6);
  v.setUint8(o + OFFSETS.l4proto, 6);
  v.setUint8(o + OFFSETS.tcp_flags, 0x12);
  v.setUint16(o + OFFSETS.sport, 3306, true);
  v.setUint16(o + OFFSETS.dport, 41234, true);
  v.setUint16(o + OFFSETS.len, 99, true);
  buf.set([0xfd, 0, 1, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2], o + OFFSETS.saddr);
  buf.set([0xfd, 0, 1, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], o + OFFSETS.daddr);

  const events: TraceEvent[] = [];
  decodeRecords(buf, 2, clockBase(0x1_2345_6789n), (e) => events.push(snapshotEvent(e)));
  const e = events[1];
  assert.equal(e.t, 1500);
  assert.equal(e.locHi, 0xffffffff);
  assert.equal(e.locLo, 0x81f63250);
  assert.equal(e.netns, 4026531840);
  assert.equal(e.ifindex, 7);
  assert.equal(e.reason, 12);
  assert.equal(e.seq, 0xdeadbeef);
  assert.equal(e.point, Point.NETFILTER);
  assert.equal(e.hook, 1);
  assert.equal(e.probe, 7);
  assert.equal(e.family, 6);
  assert.equal(e.flags, 0x12);
  assert.equal(e.sport, 3306);
  assert.equal(e.dport, 41234);
  assert.equal(e.len, 99);
  assert.equal(e.src, 'fd00:198:18::2');
  assert.equal(e.dst, 'fd00:198:18::1');
  // Two different skb addresses never fold to the same key.
  assert.notEqual(e.skb, events[0].skb);
});
