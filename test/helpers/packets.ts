// IP packets built byte by byte, and a raw-IP pcap of them: the corpus on which pathtrace's expression
// filter is held to tcpdump's answers.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readCapture } from '../../src/capture/read.js';
import { addressBytes } from '../../src/trace/address.js';
import { compileExpression, runExpression } from '../../src/trace/expression.js';
import type { Native } from '../../src/trace/native.js';

export interface PacketSpec {
  src: string;
  dst: string;
  proto: 'tcp' | 'udp' | 'icmp';
  sport?: number;
  dport?: number;
  flags?: number; // TCP
  type?: number;
  code?: number; // ICMP / ICMPv6
  quoted?: Uint8Array; // ICMP errors: the packet they quote (its first bytes)
  payload?: number; // bytes of payload
  ttl?: number;
  fragment?: number; // IPv4: this fragment's offset in 8-byte units (non-first fragments carry no ports)
}

const PROTO = { tcp: 6, udp: 17, icmp: 1 } as const;

/** The packet's bytes from its IP header (checksums left zero: no filter reads them). */
export function ipPacket(s: PacketSpec): Uint8Array {
  const a = addressBytes(s.src),
    b = addressBytes(s.dst);
  const v6 = a.family === 6;
  const proto = s.proto === 'icmp' && v6 ? 58 : PROTO[s.proto];
  const l4: number[] = [];
  const payload = new Array(s.payload ?? 0).fill(0x61);
  if (s.proto === 'tcp') {
    l4.push(
      s.sport! >> 8,
      s.sport! & 255,
      s.dport! >> 8,
      s.dport! & 255,
      0,
      0,
      0,
      1,
      0,
      0,
      0,
      0,
      0x50,
      s.flags ?? 0x02,
      0xff,
      0xff,
      0,
      0,
      0,
      0,
      ...payload,
    );
  } else if (s.proto === 'udp') {
    const len = 8 + payload.length;
    l4.push(s.sport! >> 8, s.sport! & 255, s.dport! >> 8, s.dport! & 255, len >> 8, len & 255, 0, 0, ...payload);
  } else {
    l4.push(s.type ?? (v6 ? 128 : 8), s.code ?? 0, 0, 0, 0, 0, 0, 0, ...(s.quoted ?? payload));
  }
  const ttl = s.ttl ?? 64;
  let ip: number[];
  if (v6) {
    ip = [0x60, 0, 0, 0, l4.length >> 8, l4.length & 255, proto, ttl, ...a.addr, ...b.addr];
  } else {
    const total = 20 + l4.length;
    const frag = s.fragment ?? 0;
    ip = [
      0x45,
      0,
      total >> 8,
      total & 255,
      0x12,
      0x34,
      frag >> 8,
      frag & 255,
      ttl,
      proto,
      0,
      0,
      ...a.addr.slice(0, 4),
      ...b.addr.slice(0, 4),
    ];
  }
  return Uint8Array.from([...ip, ...l4]);
}

/** A pcap file (link type RAW) of the packets, as tcpdump -r reads it. */
export function rawPcap(packets: Uint8Array[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(101, 20); // LINKTYPE_RAW
  const parts = [head];
  packets.forEach((p, i) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(i, 0);
    h.writeUInt32LE(p.length, 8);
    h.writeUInt32LE(p.length, 12);
    parts.push(h, Buffer.from(p));
  });
  return Buffer.concat(parts);
}

/** Both directions of TCP, UDP and ICMP between v4 and v6 hosts, with flags, ranges, errors and fragments. */
export function packetCorpus(): Uint8Array[] {
  const out: PacketSpec[] = [];
  const pairs: [string, string][] = [
    ['198.18.0.1', '198.18.0.2'],
    ['198.18.0.1', '198.19.7.9'],
    ['fd00:198:18::1', 'fd00:198:18::2'],
    ['fd00:198:18::1', 'fd00:198:18:5::9'],
  ];
  for (const [x, y] of pairs) {
    for (const [src, dst] of [
      [x, y],
      [y, x],
    ]) {
      for (const [sport, dport] of [
        [40000, 3306],
        [3306, 40000],
        [53, 53],
        [40001, 80],
        [8001, 22],
      ]) {
        for (const flags of [0x02, 0x12, 0x10, 0x18, 0x04, 0x11])
          out.push({ src, dst, proto: 'tcp', sport, dport, flags, payload: flags === 0x18 ? 100 : 0 });
        out.push({ src, dst, proto: 'udp', sport, dport, payload: 30 });
      }
      out.push({ src, dst, proto: 'icmp', ttl: 1 });
      const quoted = ipPacket({ src: dst, dst: src, proto: 'udp', sport: 40000, dport: 53, payload: 0 });
      const v6 = src.includes(':');
      out.push({ src, dst, proto: 'icmp', type: v6 ? 1 : 3, code: v6 ? 4 : 3, quoted });
      out.push({ src, dst, proto: 'icmp', type: v6 ? 3 : 11, code: 0, quoted });
      if (!v6) out.push({ src, dst, proto: 'udp', sport: 40000, dport: 53, payload: 600, fragment: 0x20b9 });
      out.push({ src, dst, proto: 'udp', sport: 5000, dport: 5001, payload: 1200 });
    }
  }
  return out.map(ipPacket);
}

/** Expressions a user types for host traffic: every primitive of the issue, both families, flag tests. */
export const EXPRESSIONS = [
  'tcp port 3306',
  'tcp port 3306 and host 198.18.0.2',
  'udp',
  'icmp',
  'icmp6',
  'ip',
  'ip6',
  'tcp or udp',
  'host 198.18.0.1',
  'src host 198.18.0.1',
  'dst host fd00:198:18::2',
  'net 198.18.0.0/16',
  'net 198.19.0.0 mask 255.255.0.0',
  'src net fd00:198:18::/48',
  'dst net fd00:198:18:5::/64',
  'port 53',
  'src port 53',
  'dst port 3306',
  'portrange 8000-8080',
  'udp dst portrange 5000-5001',
  'not port 22',
  '!tcp && !udp',
  'tcp and (port 80 or port 22)',
  'ip6 and tcp port 80',
  'tcp[tcpflags] & tcp-syn != 0',
  'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn',
  'tcp[tcpflags] & tcp-rst != 0',
  'tcp[13] = 0x18',
  'icmp[icmptype] == icmp-unreach',
  'icmp6[icmp6type] == 1',
  'ip[8] < 2',
  'ip6[7] = 64',
  'len > 500',
  'less 60',
  'greater 1000',
  'ip proto 17',
  'ip6 proto 58',
  'ip[6:2] & 0x1fff != 0',
  'tcp port 3306 or (udp and host 198.19.7.9)',
  'not (src host 198.18.0.1 or src host fd00:198:18::1)',
  'udp[8:4] = 0x61616161',
  'udp[200] = 0x61',
  'tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x61',
];

/** Indexes (0-based) of the packets tcpdump's filter takes from the file: packet i is stamped i seconds. */
function tcpdumpMatches(file: string, expression: string): Set<number> {
  const r = spawnSync('tcpdump', ['-r', file, '-n', '-tt', expression], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tcpdump '${expression}': ${r.stderr}`);
  return new Set(
    r.stdout
      .split('\n')
      .filter((l) => /^\d+\.\d+ /.test(l))
      .map((l) => parseInt(l, 10)),
  );
}

/** Where the kernel interpreter (BPF_PROG_TEST_RUN on this kernel) or compare's disagree with tcpdump on the
 *  corpus, one line per packet; and expressions that do not split the corpus (a useless case). */
export function corpusDisagreements(n: Native): string[] {
  const packets = packetCorpus();
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-expr-'));
  const out: string[] = [];
  try {
    const file = path.join(dir, 'corpus.pcap');
    const pcap = rawPcap(packets);
    writeFileSync(file, pcap);
    // compare runs the expression on frames as its reader keeps them (their first bytes), not whole packets.
    const frames = readCapture(pcap, 'corpus.pcap').map((f) => f.data!);
    for (const text of EXPRESSIONS) {
      const { program } = compileExpression(text, (x, l) => n.compileExpression(x, l));
      const want = tcpdumpMatches(file, text);
      if (want.size === 0 || want.size === packets.length) out.push(`'${text}' does not split the corpus`);
      const kernel = n.testExpression(program, packets);
      packets.forEach((p, i) => {
        if (kernel[i] !== (want.has(i) ? 1 : 0))
          out.push(`'${text}' packet ${i + 1}: kernel ${kernel[i]}, tcpdump ${want.has(i)}`);
        if (runExpression(program, frames[i]!, p.length) !== want.has(i))
          out.push(`'${text}' packet ${i + 1}: compare ${!want.has(i)}, tcpdump ${want.has(i)}`);
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
