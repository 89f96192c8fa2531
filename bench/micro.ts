// Micro-benchmark (no root): decode + correlate of recorded events on one
// core. The recorded experiments are replayed as binary records, many times
// over with fresh skb addresses and sequence numbers, as one big event stream.
import { Correlator } from '../src/correlate/correlate.js';
import {
  clockBase,
  decodeRecords,
  NF_SLOT_EXIT,
  RECORD_SIZE,
  writeRecord,
  type TraceEvent,
} from '../src/trace/record.js';
import { addressBytes } from '../src/trace/address.js';
import { loadEvents } from '../test/helpers/replay.js';

/** Encodes decoded events back into binary records (the layout of bpf/record.h). */
function encode(events: TraceEvent[]): Uint8Array {
  const buf = new Uint8Array(events.length * RECORD_SIZE);
  events.forEach((e, i) => {
    const bytes = (a: string) => addressBytes(a).addr.subarray(0, e.family === 4 ? 4 : 16);
    writeRecord(buf, i * RECORD_SIZE, {
      ts_ns: BigInt(Math.round(e.t)),
      skb: BigInt(e.skb),
      location: (BigInt(e.locHi) << 32n) | BigInt(e.locLo),
      netns: e.netns,
      ifindex: e.ifindex,
      reason: e.reason,
      seq: e.seq,
      ack: e.ack,
      point: e.point,
      hook: e.hook,
      probe: e.probe,
      family: e.family,
      l4proto: e.proto,
      tcp_flags: e.flags,
      sport: e.sport,
      dport: e.dport,
      len: e.len,
      ip_id: e.ipId,
      saddr: bytes(e.src),
      daddr: bytes(e.dst),
    });
  });
  return buf;
}

/** The fixtures replayed `copies` times one after the other, as distinct packets of distinct flows. */
export function syntheticStream(copies: number): { buf: Uint8Array; count: number } {
  const base = ['connect-ok', 'local-in', 'local-out', 'closed-port'].flatMap((f) => loadEvents(f));
  const span = Math.max(...base.map((e) => e.t)) + 1;
  const events: TraceEvent[] = [];
  for (let c = 0; c < copies; c++) {
    for (const e of base) {
      events.push({
        ...e,
        t: e.t + c * span,
        skb: e.skb + c * 4096,
        seq: (e.seq + c * 7919) >>> 0,
        ack: e.ack ? (e.ack + c * 7919) >>> 0 : 0,
        sport: e.sport === 3306 ? 3306 : 20000 + (c % 40000),
        dport: e.dport === 3306 ? 3306 : 20000 + (c % 40000),
      });
    }
  }
  events.sort((a, b) => a.t - b.t);
  return { buf: encode(events), count: events.length };
}

/** Rounds run first and not counted: a tracer runs for minutes, so what counts is the rate once the JIT
 *  has compiled the hot path (the first rounds run partly in the interpreter). */
const WARMUP_ROUNDS = 2;

export function run(copies = 2000, rounds = 5): { eventsPerSecond: number[]; events: number } {
  const { buf, count } = syntheticStream(copies);
  const rates: number[] = [];
  const base = clockBase(0n);
  for (let r = -WARMUP_ROUNDS; r < rounds; r++) {
    const c = new Correlator({ netns: 0, isExitProbe: (s) => s === NF_SLOT_EXIT });
    let journeys = 0;
    const t0 = process.hrtime.bigint();
    const batch = 4096;
    let now = 0;
    for (let i = 0; i < count; i += batch) {
      const n = Math.min(batch, count - i);
      decodeRecords(buf.subarray(i * RECORD_SIZE, (i + n) * RECORD_SIZE), n, base, (e) => {
        c.push(e);
        now = e.t;
      });
      c.tick(now);
      journeys += c.drain().length;
    }
    c.finish();
    journeys += c.drain().length;
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r >= 0) rates.push(count / s);
    if (journeys === 0) throw new Error('no journeys: the stream is wrong');
  }
  return { eventsPerSecond: rates, events: count };
}

if (process.argv[1]?.endsWith('micro.js')) {
  const { eventsPerSecond, events } = run(Number(process.argv[2] ?? 2000));
  const sorted = [...eventsPerSecond].sort((a, b) => a - b);
  const [min, median, max] = [sorted[0], sorted[Math.floor(sorted.length / 2)], sorted.at(-1)];
  if (min === undefined || median === undefined || max === undefined) throw new Error('no rounds measured');
  console.log(
    `decode + correlate: ${events} events per round, median ${(median / 1e6).toFixed(2)} M events/s ` +
      `(min ${(min / 1e6).toFixed(2)}, max ${(max / 1e6).toFixed(2)}), target ≥ 2 M events/s on one core`,
  );
}
