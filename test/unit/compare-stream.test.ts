// compare reads its inputs as streams: a capture or a trace of any size costs what is kept of it, a trace
// may come through a pipe, and a long read shows its progress on a terminal.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { afterCapture, compare, frameTuples, matchableTime, type TracePacket } from '../../src/report/compare.js';
import { CompareError, loadTrace } from '../../src/capture/trace-file.js';
import { runCompare } from '../../src/commands/compare.js';
import { ProgressLine, progressText } from '../../src/commands/progress.js';
import { bufferSource, fileSource, readCapture } from '../../src/capture/read.js';
import { ROOT } from '../helpers/paths.js';

// A UDP datagram 198.18.0.1:40000 > 198.18.0.2:3306, 10 bytes of payload, IP id 7.
const UDP = Buffer.from([
  0x45, 0, 0, 38, 0, 7, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 0x9c, 0x40, 0x0c, 0xea, 0, 18, 0, 0, 1, 2,
  3, 4, 5, 6, 7, 8, 9, 10,
]);
const T0 = 1_700_000_000;

function tmp(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-stream-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A raw-IP pcap header and one record header (the data follows it). */
function pcapHeader(): Buffer {
  const h = Buffer.alloc(24);
  h.writeUInt32LE(0xa1b2c3d4, 0);
  h.writeUInt16LE(2, 4);
  h.writeUInt16LE(4, 6);
  h.writeUInt32LE(262144, 16);
  h.writeUInt32LE(101, 20);
  return h;
}
function recordHeader(sec: number, usec: number, incl: number): Buffer {
  const r = Buffer.alloc(16);
  r.writeUInt32LE(sec, 0);
  r.writeUInt32LE(usec, 4);
  r.writeUInt32LE(incl, 8);
  r.writeUInt32LE(incl, 12);
  return r;
}

function packet(id: number, timeUs: number, sport = 40000): TracePacket {
  return {
    id,
    time_us: timeUs,
    family: 'ipv4',
    proto: 'udp',
    src: '198.18.0.1',
    dst: '198.18.0.2',
    sport,
    dport: 3306,
    tcp_flags: null,
    len: 10,
    ip_id: 7,
    direction: 'in',
    fate: 'delivered',
    drop: null,
    tcpdump: true,
    tcpdump_devices: [],
  };
}
const ndjson = (ps: TracePacket[]) => ps.map((p) => JSON.stringify({ type: 'packet', ...p })).join('\n') + '\n';

test('compare reads a capture larger than 2 GiB as a stream: every frame counted, memory bounded', (t) => {
  const dir = tmp(t);
  const cap = path.join(dir, 'big.pcap');
  const fd = openSync(cap, 'w');
  // The datagram, then 2200 frames of 1 MiB of zeros each, their data left as holes of a sparse file.
  let pos = 0;
  const put = (b: Buffer) => {
    writeSync(fd, b, 0, b.length, pos);
    pos += b.length;
  };
  put(pcapHeader());
  put(recordHeader(T0, 0, UDP.length));
  put(UDP);
  for (let i = 1; i <= 2200; i++) {
    put(recordHeader(T0, i, 1 << 20));
    pos += 1 << 20;
  }
  writeSync(fd, Buffer.alloc(1), 0, 1, pos - 1);
  closeSync(fd);
  const trace = path.join(dir, 'trace.json');
  writeFileSync(trace, ndjson([packet(1, T0 * 1e6)]));
  // In a process of its own, for its peak memory: reading the file whole would take 2.2 GiB.
  const script = `import { runCompare } from ${JSON.stringify(path.join(ROOT, 'dist/src/commands/compare.js'))};
    const out = runCompare(process.argv[1], process.argv[2]);
    console.log(JSON.stringify({ head: out.split('\\n')[0], delivered: out.includes('delivered (pathtrace #1)'), rss: process.resourceUsage().maxRSS }));`;
  const r = JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', script, cap, trace], { encoding: 'utf8' }),
  );
  assert.equal(r.head, `2201 frames in ${cap}, 1 packets in ${trace}`);
  assert.ok(r.delivered, 'the datagram is matched');
  assert.ok(r.rss < 256 * 1024, `peak RSS ${Math.round(r.rss / 1024)} MiB for a 2.2 GiB capture`);
});

test('a trace is read as a stream: packets far from the capture are counted, not kept, and still tell their flow', () => {
  const frames = readCapture(Buffer.concat([pcapHeader(), recordHeader(T0 + 100, 0, UDP.length), UDP]), 'c.pcap');
  // The same flow traced 50 s before the capture, another flow then, and nothing at the capture's time.
  const far = [packet(1, (T0 + 50) * 1e6), packet(2, (T0 + 50) * 1e6, 40001)];
  const t = loadTrace(bufferSource(Buffer.from(ndjson(far))), 't.json', matchableTime(frames), frameTuples(frames));
  assert.deepEqual([t.packets.length, t.total, t.beyond], [0, 2, 0]);
  assert.deepEqual(t.traced, { from: (T0 + 50) * 1e6, to: (T0 + 50) * 1e6 });
  assert.deepEqual([...t.flows], ['198.18.0.1 40000 198.18.0.2 3306']);
  const c = compare(frames, t.packets, null, { traced: t.traced, flows: t.flows });
  assert.equal(c.rows[0].reason, 'outside the time pathtrace traced');
  // Near the capture: kept.
  const near = loadTrace(
    bufferSource(Buffer.from(ndjson([...far, packet(3, (T0 + 101) * 1e6)]))),
    't.json',
    matchableTime(frames),
    frameTuples(frames),
  );
  assert.deepEqual(
    near.packets.map((p) => p.id),
    [3],
  );
  assert.equal(compare(frames, near.packets, null, { traced: near.traced, flows: near.flows }).rows[0].packet?.id, 3);
});

test('compare: a trace through a pipe; a line of 17 MiB is one error line', async (t) => {
  const dir = tmp(t);
  const cap = path.join(dir, 'c.pcap');
  writeFileSync(cap, Buffer.concat([pcapHeader(), recordHeader(T0, 0, UDP.length), UDP]));
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const trace = path.join(dir, 'trace.json');
  writeFileSync(trace, ndjson([packet(1, T0 * 1e6)]));
  const writer = spawn('sh', ['-c', 'cat "$1" > "$2"', 'sh', trace, fifo]);
  const out = runCompare(cap, fifo);
  await new Promise((r) => writer.once('exit', r));
  assert.match(out, /delivered \(pathtrace #1\)/);
  const long = path.join(dir, 'long.json');
  writeFileSync(long, Buffer.alloc(17 << 20, 0x61));
  assert.throws(
    () => runCompare(cap, long),
    new CompareError(`${long} is not pathtrace's --json output (line 1 is longer than 16 MiB)`),
  );
});

test('progress: told at each refill of the window; drawn on a terminal from the first second, twice a second at most', (t) => {
  const dir = tmp(t);
  const file = path.join(dir, 'f');
  writeFileSync(file, Buffer.alloc(3 << 20));
  const fd = openSync(file, 'r');
  const seen: number[] = [];
  const src = fileSource(fd, file, (pos, size) => {
    assert.equal(size, 3 << 20);
    seen.push(pos);
  });
  for (let p = 0; p < src.size; p += 4096) src.at(p, 16);
  closeSync(fd);
  assert.deepEqual(seen, [0, 1 << 20, 2 << 20]);

  assert.equal(progressText('big.pcap', 800 << 20, 2.5 * 2 ** 30), 'reading big.pcap: 31 % of 2.5 GiB');
  assert.equal(progressText('t.json', 1, 3 << 20), 'reading t.json: 0 % of 3 MiB');
  let now = 0;
  const out: string[] = [];
  const line = new ProgressLine({ write: (s: string) => out.push(s) }, () => now);
  for (now = 0; now <= 2000; now += 100) line.update('x', now, 2000);
  line.end();
  assert.deepEqual(out, [
    '\rreading x: 50 % of 2 KiB\x1b[K',
    '\rreading x: 75 % of 2 KiB\x1b[K',
    '\rreading x: 100 % of 2 KiB\x1b[K',
    '\r\x1b[K',
  ]);
  const quiet: string[] = [];
  const fast = new ProgressLine({ write: (s: string) => quiet.push(s) }, () => 10);
  fast.update('x', 1, 2);
  fast.end();
  assert.deepEqual(quiet, [], 'a read under a second draws nothing');
});

test('a trace from a kernel before 5.17 (drops without a reason) is read: reason null is the record as written', () => {
  const frames = readCapture(Buffer.concat([pcapHeader(), recordHeader(T0 + 100, 0, UDP.length), UDP]), 'c.pcap');
  const dropped: TracePacket = {
    ...packet(1, (T0 + 100) * 1e6),
    fate: 'dropped',
    drop: {
      layer: 'socket',
      hook: null,
      reason: null,
      location: '__udp4_lib_rcv+0x1f2',
      explanation: 'no socket',
      advice: [],
    },
  };
  const t = loadTrace(
    bufferSource(Buffer.from(ndjson([dropped]))),
    't.json',
    matchableTime(frames),
    frameTuples(frames),
  );
  assert.deepEqual(
    t.packets.map((p) => [p.id, p.drop?.reason]),
    [[1, null]],
  );
  assert.equal(afterCapture(t.packets[0]!), 'dropped in socket (no reason, __udp4_lib_rcv+0x1f2)');
});
