// The capture and trace readers on broken input: valid files from the recorded experiments, mutated
// (bytes flipped, cut short, length fields 0 or huge, lines that are JSON but not records). Whatever the
// input, `pathtrace compare` answers with its own one-sentence error or a comparison: never anything else
// (which the command line would report as an internal error). Seeded: the same cases on every run.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CompareError } from '../../src/capture/trace-file.js';
import { runCompare } from '../../src/commands/compare.js';
import { packetRecord } from '../../src/output/json.js';
import { JSON_COMMENT, openForWriting, PcapngWriter } from '../../src/capture/pcapng.js';
import type { PacketRecord } from '../../src/output/records.js';
import { loadEvents, replay } from '../helpers/replay.js';

const CASES = 400;

/** mulberry32: small, seeded. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The IPv4 and TCP headers of a traced packet record, enough for compare to match it. */
function headers(p: PacketRecord): Uint8Array {
  const b = new Uint8Array(40);
  b[0] = 0x45;
  b[3] = 40;
  b[8] = 64;
  b[9] = 6;
  String(p.src)
    .split('.')
    .forEach((x, i) => {
      b[12 + i] = Number(x);
    });
  String(p.dst)
    .split('.')
    .forEach((x, i) => {
      b[16 + i] = Number(x);
    });
  const dv = new DataView(b.buffer);
  dv.setUint16(20, Number(p.sport));
  dv.setUint16(22, Number(p.dport));
  dv.setUint32(24, Number(p.seq) >>> 0);
  b[32] = 0x50;
  b[33] = 0x02;
  return b;
}

test('compare on mutated captures and traces: its own error or an answer, nothing else', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-fuzz-'));
  try {
    const { journeys } = replay(loadEvents('local-in'));
    const devices = { name: (i: number) => (i === 2 ? 'eth0' : `if${i}`) };
    const records = journeys.map((j) => packetRecord(j, devices, 1_700_000_000_000));
    const ndjson = records.map((r) => JSON.stringify(r)).join('\n') + '\n';
    // A --write file: the same packets, each with its record as a comment; it serves as capture too.
    const pcapngFile = path.join(dir, 'w.pcapng');
    const w = new PcapngWriter(openForWriting(pcapngFile), 128, 'fuzz');
    records.forEach((r, i) =>
      w.packet('eth0', 1_700_000_000_000_000_000n + BigInt(i) * 1000n, headers(r), 40, [
        JSON_COMMENT + JSON.stringify(r),
      ]),
    );
    w.close();
    const pcapng = readFileSync(pcapngFile);
    // A classic pcap of the same headers, raw IP.
    const pcap = Buffer.alloc(24 + records.length * 56);
    pcap.writeUInt32LE(0xa1b2c3d4, 0);
    pcap.writeUInt16LE(2, 4);
    pcap.writeUInt16LE(4, 6);
    pcap.writeUInt32LE(65535, 16);
    pcap.writeUInt32LE(101, 20);
    records.forEach((r, i) => {
      const o = 24 + i * 56;
      pcap.writeUInt32LE(1_700_000_000, o);
      pcap.writeUInt32LE(i, o + 4);
      pcap.writeUInt32LE(40, o + 8);
      pcap.writeUInt32LE(40, o + 12);
      Buffer.from(headers(r)).copy(pcap, o + 16);
    });
    const valid = { capture: [pcap, pcapng], trace: [Buffer.from(ndjson), pcapng] };
    const rnd = prng(20261129);
    const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)];
    const LENGTHS = [0, 1, 11, 0x7fffffff, 0xffffffff, 0xfffffff0];

    const mutateBinary = (b: Buffer): Buffer => {
      const m = Buffer.from(b);
      switch (Math.floor(rnd() * 4)) {
        case 0:
          for (let k = 1 + Math.floor(rnd() * 8); k > 0; k--) m[Math.floor(rnd() * m.length)] = Math.floor(rnd() * 256);
          return m;
        case 1:
          return m.subarray(0, Math.floor(rnd() * m.length));
        case 2: {
          // a length field (every 4-byte word is a candidate) set to 0 or huge
          const o = Math.floor(rnd() * (m.length / 4)) * 4;
          if (o + 4 <= m.length) m.writeUInt32LE(pick(LENGTHS), o);
          return m;
        }
        default:
          return Buffer.concat([m, Buffer.alloc(Math.floor(rnd() * 4096))]); // zeros after: a sparse tail
      }
    };
    const mutateText = (b: Buffer): Buffer => {
      const lines = b.toString('utf8').split('\n');
      const i = Math.floor(rnd() * lines.length);
      switch (Math.floor(rnd() * 5)) {
        case 0:
          lines.splice(
            i,
            0,
            pick([
              'null',
              '[]',
              '{}',
              '42',
              '"x"',
              '{"type":"packet"}',
              '{"type":"packet","id":"x","time_us":null}',
              '{"type":"ready","filter":7}',
            ]),
          );
          break;
        case 1:
          lines[i] = lines[i].slice(0, Math.floor(rnd() * lines[i].length));
          break;
        case 2: {
          // a field's value replaced
          const r = JSON.parse(lines[0] || '{}');
          const k = pick(Object.keys(r).length ? Object.keys(r) : ['x']);
          r[k] = pick([null, -1, 'x', [], {}, 1e308, true]);
          lines[0] = JSON.stringify(r);
          break;
        }
        case 3:
          return mutateBinary(b);
        default:
          lines.length = Math.floor(rnd() * lines.length);
      }
      return Buffer.from(lines.join('\n'));
    };

    const failures: string[] = [];
    for (let n = 0; n < CASES; n++) {
      const captureValid = pick(valid.capture);
      const traceValid = pick(valid.trace);
      const which = Math.floor(rnd() * 3); // 0: capture broken, 1: trace broken, 2: both
      const capture = which !== 1 ? mutateBinary(captureValid) : captureValid;
      const trace =
        which !== 0 ? (traceValid === pcapng ? mutateBinary(traceValid) : mutateText(traceValid)) : traceValid;
      const cf = path.join(dir, `c${n}`);
      const tf = path.join(dir, `t${n}`);
      writeFileSync(cf, capture);
      writeFileSync(tf, trace);
      try {
        runCompare(cf, tf);
      } catch (e) {
        if (!(e instanceof CompareError))
          failures.push(`case ${n}: ${(e as Error).constructor.name}: ${(e as Error).message}`);
        else if ((e as Error).message.includes('\n')) failures.push(`case ${n}: an error of more than one line`);
      }
      rmSync(cf);
      rmSync(tf);
    }
    assert.deepEqual(failures, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
