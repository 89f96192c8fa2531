// pcapng written and read back; the reader's refusals; the comparison's matching.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { compare, type TracePacket } from '../../src/report/compare.js';
import { compileExpression, instructions, MAX_INSNS } from '../../src/trace/expression.js';
import { native } from '../../src/trace/native.js';
import { captureFilter } from '../../src/capture/live-capture.js';
import { parseIp } from '../../src/capture/packet.js';
import { openForWriting, PcapngWriter } from '../../src/capture/pcapng.js';
import { CaptureError, readCapture, type Frame } from '../../src/capture/read.js';

// An IPv4 TCP SYN 198.18.0.1:40000 > 198.18.0.2:3306, seq 1000, 40 bytes.
const SYN = Uint8Array.from([
  0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 0x9c, 0x40, 0x0c, 0xea, 0, 0, 0x03,
  0xe8, 0, 0, 0, 0, 0x50, 0x02, 0xfa, 0xf0, 0, 0, 0, 0,
]);

// A UDP datagram 198.18.0.1:40000 > 198.18.0.2:3306, 10 bytes of payload, IP id 0.
const UDP_SAME = Uint8Array.from([
  0x45, 0, 0, 38, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 0x9c, 0x40, 0x0c, 0xea, 0, 18, 0, 0, 1, 2,
  3, 4, 5, 6, 7, 8, 9, 10,
]);

test('pcapng round trip: interfaces, nanosecond times, bytes and comments', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-pcapng-'));
  try {
    const file = path.join(dir, 'x.pcapng');
    const w = new PcapngWriter(openForWriting(file), 128, 'test');
    w.packet('eth0', 1_700_000_000_123_456_789n, SYN, 40, ['pathtrace: delivered', 'second']);
    w.packet('lo', 1_700_000_001_000_000_000n, SYN.subarray(0, 20), 40, []);
    w.packet('eth0', 1_700_000_002_000_000_001n, SYN, 40, ['x']);
    w.close();
    const frames = readCapture(readFileSync(file), file);
    assert.deepEqual(
      frames.map((f) => [f.index, f.ifname, f.timeNs, f.comments]),
      [
        [1, 'eth0', 1_700_000_000_123_456_789n, ['pathtrace: delivered', 'second']],
        [2, 'lo', 1_700_000_001_000_000_000n, []],
        [3, 'eth0', 1_700_000_002_000_000_001n, ['x']],
      ],
    );
    assert.deepEqual([...frames[0].data!], [...SYN]);
    const h = parseIp(frames[0].data!)!;
    assert.deepEqual(
      [h.src, h.dst, h.sport, h.dport, h.seq, h.flags, h.ipId],
      ['198.18.0.1', '198.18.0.2', 40000, 3306, 1000, 2, 0x1234],
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the reader refuses empty, foreign and truncated files with one sentence', () => {
  assert.throws(() => readCapture(Buffer.alloc(0), 'a.pcap'), new CaptureError('a.pcap is empty'));
  assert.throws(
    () => readCapture(Buffer.from('GIF89a'), 'b'),
    /b is not a pcap or pcapng file \(it starts with 47494638\)/,
  );
  const pcap = Buffer.alloc(24 + 16 + 40);
  pcap.writeUInt32LE(0xa1b2c3d4, 0);
  pcap.writeUInt32LE(1, 20);
  pcap.writeUInt32LE(40, 24 + 8);
  pcap.writeUInt32LE(40, 24 + 12);
  assert.equal(readCapture(pcap, 'ok').length, 1);
  assert.throws(
    () => readCapture(pcap.subarray(0, 60), 'c'),
    /c is truncated: packet 1 is cut short \(0 complete packets before it\)/,
  );
});

test('compare matches by content and time, lists what the capture lacks, and says why a frame has no match', () => {
  const t0 = 1_700_000_000_000_000_000n;
  const frame = (index: number, ns: bigint, data: Uint8Array): Frame => ({
    index,
    timeNs: t0 + ns,
    data,
    comments: [],
  });
  const other = Uint8Array.from(SYN);
  other[22] = 0x1f;
  other[23] = 0x90; // dport 8080
  const frames = [frame(1, 0n, SYN), frame(2, 1_000_000_000n, SYN), frame(3, 2_000_000n, other)];
  const packet = (id: number, us: number, over: Partial<TracePacket> = {}): TracePacket => ({
    id,
    time_us: Number(t0 / 1000n) + us,
    family: 'ipv4',
    proto: 'tcp',
    src: '198.18.0.1',
    dst: '198.18.0.2',
    sport: 40000,
    dport: 3306,
    tcp_flags: 'S',
    seq: 1000,
    ack: 0,
    len: 0,
    ip_id: 0x1234,
    direction: 'in',
    fate: 'delivered',
    drop: null,
    tcpdump: true,
    tcpdump_devices: ['eth0'],
    ...over,
  });
  const synack = packet(3, 100, {
    direction: 'out',
    src: '198.18.0.2',
    dst: '198.18.0.1',
    sport: 3306,
    dport: 40000,
    tcp_flags: 'SA',
    fate: 'dropped',
    tcpdump: false,
    tcpdump_devices: [],
  });
  const c = compare(frames, [packet(1, 1), packet(2, 1_000_010), synack], {
    ports: [3306],
    hosts: [],
    protos: ['tcp', 'udp'],
  });
  assert.deepEqual(
    c.rows.map((r) => r.packet?.id ?? r.reason),
    [1, 2, "outside pathtrace's filter"],
    'retransmissions matched by time',
  );
  assert.deepEqual(
    c.missing.map((p) => p.id),
    [3],
  );
});

test('compare with an expression: a frame it does not take is outside the filter; an ICMP error about one it takes is not', () => {
  const t0 = 1_700_000_000_000_000_000n;
  const frame = (index: number, data: Uint8Array): Frame => ({
    index,
    timeNs: t0 + BigInt(index) * 1000n,
    data,
    comments: [],
  });
  const other = Uint8Array.from(SYN);
  other[22] = 0x1f;
  other[23] = 0x90; // dport 8080
  // Port unreachable from the server about the SYN: ICMP, quoting the SYN's first 28 bytes.
  const error = Uint8Array.from([
    0x45,
    0,
    0,
    56,
    0,
    1,
    0,
    0,
    64,
    1,
    0,
    0,
    198,
    18,
    0,
    2,
    198,
    18,
    0,
    1,
    3,
    3,
    0,
    0,
    0,
    0,
    0,
    0,
    ...SYN.slice(0, 28),
  ]);
  const n = native();
  const { program } = compileExpression('tcp dst port 3306', (x, l) => n.compileExpression(x, l), MAX_INSNS);
  const bpf = instructions(program).map((i): [number, number, number, number] => [i.code, i.jt, i.jf, i.k]);
  const c = compare([frame(1, other), frame(2, error)], [], {
    ports: null,
    hosts: [],
    protos: ['tcp', 'udp', 'icmp'],
    expression: { text: 'tcp dst port 3306', bpf },
  });
  assert.deepEqual(
    c.rows.map((r) => r.reason),
    ["outside pathtrace's filter", 'no such flow was traced: captured on another host, interface or namespace'],
  );
});

test('compare is linear within a flow: a stream of 20 000 segments looks at a few candidates per frame', () => {
  const t0 = 1_700_000_000_000_000_000n;
  const n = 20_000;
  const frames: Frame[] = [];
  const packets: TracePacket[] = [];
  for (let i = 0; i < n; i++) {
    const seg = Uint8Array.from(SYN);
    new DataView(seg.buffer).setUint32(24, 1000 + i * 1448); // seq
    seg[33] = 0x10; // ACK
    frames.push({ index: i + 1, timeNs: t0 + BigInt(i) * 10_000n, data: seg, comments: [] });
    packets.push({
      id: i + 1,
      time_us: Number(t0 / 1000n) + i * 10 + 3,
      family: 'ipv4',
      proto: 'tcp',
      src: '198.18.0.1',
      dst: '198.18.0.2',
      sport: 40000,
      dport: 3306,
      tcp_flags: 'A',
      seq: 1000 + i * 1448,
      ack: 0,
      len: 0,
      ip_id: 0x1234,
      direction: 'in',
      fate: 'delivered',
      drop: null,
      tcpdump: true,
      tcpdump_devices: ['eth0'],
    });
  }
  // And a UDP flow of identical datagrams (same length, IPv6-like: no IP id to tell them apart).
  const stats = { candidates: 0 };
  const c = compare(frames, packets, null, { stats });
  assert.equal(c.rows.filter((r) => r.packet).length, n);
  assert.ok(stats.candidates <= 2 * n, `${stats.candidates} candidates looked at for ${n} frames`);
  const same = frames.map((f) => ({ ...f, data: UDP_SAME }));
  const datagrams = packets.map((p) => ({
    ...p,
    proto: 'udp',
    tcp_flags: null,
    seq: undefined,
    ack: undefined,
    len: 10,
    ip_id: undefined,
  }));
  const udp = { candidates: 0 };
  assert.equal(compare(same, datagrams, null, { stats: udp }).rows.filter((r) => r.packet).length, n);
  assert.ok(udp.candidates <= 3 * n, `${udp.candidates} candidates looked at for ${n} identical datagrams`);
});

test("--with-tcpdump: the trace filter as tcpdump's, ranges kept short, ICMP errors kept; tcpdump compiles each", () => {
  const cases: [Parameters<typeof captureFilter>[0], string][] = [
    [{ ports: [3306], hosts: [], protos: ['tcp', 'udp'] }, '(((tcp or udp) and port 3306) or ICMP_ERRORS)'],
    [
      { ports: [53, 8000, 8001, 8002], hosts: [], protos: ['udp'] },
      '((udp and (port 53 or portrange 8000-8002)) or ICMP_ERRORS)',
    ],
    [{ ports: null, hosts: [], protos: ['tcp', 'udp', 'icmp'] }, '((tcp or udp) or icmp or icmp6)'],
    [
      { ports: null, hosts: ['198.18.0.2', 'fd00:198:18::2'], protos: ['icmp'] },
      '(host 198.18.0.2 or host fd00:198:18::2) and (icmp or icmp6)',
    ],
    [{ ports: [80], hosts: ['198.18.0.2'], protos: ['tcp'] }, 'host 198.18.0.2 and ((tcp and port 80) or ICMP_ERRORS)'],
    // The user's expression verbatim when it is the whole filter; beside options, both.
    [
      { ports: null, hosts: [], protos: ['tcp', 'udp', 'icmp'], expression: 'tcp port 3306 and host 198.18.0.1' },
      'tcp port 3306 and host 198.18.0.1',
    ],
    [
      { ports: [53], hosts: [], protos: ['udp'], expression: 'not host 198.18.0.9' },
      '((udp and port 53) or ICMP_ERRORS) and (not host 198.18.0.9)',
    ],
  ];
  const errors = captureFilter({ ports: [1], hosts: [], protos: ['tcp'] }).replace(
    /^\(\(tcp and port 1\) or (.*)\)$/,
    '$1',
  );
  assert.match(errors, /icmp-unreach.*icmp6type/);
  const canCompile = spawnSync('tcpdump', ['--version']).status === 0;
  for (const [o, want] of cases) {
    const f = captureFilter(o);
    assert.equal(f, want.replace('ICMP_ERRORS', errors));
    // -d compiles without capturing (no root); -y: a link type, so no interface is opened.
    if (canCompile) assert.equal(spawnSync('tcpdump', ['-d', '-y', 'EN10MB', f]).status, 0, f);
  }
});
