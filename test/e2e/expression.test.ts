// tcpdump's filter expressions (issue 17, part 2): the same words mean the same packets as in tcpdump.
// A corpus of expressions is compiled by libpcap and run, on generated packets of both families and
// directions, by the kernel interpreter (BPF_PROG_TEST_RUN of the object's self-test program) and by
// compare's; both must agree with `tcpdump -r` packet by packet. Then real traffic in lab namespaces:
// the expression in the kernel, ICMP errors about a matching flow kept, a packet followed through NAT.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { compileExpression, LIBPCAP_NAMES, MAX_INSNS, runExpression } from '../../src/expression.js';
import { native } from '../../src/native.js';
import { packetCorpus, rawPcap } from '../helpers/packets.js';
import { needsRoot, runCli, traceLab, type Rec } from '../helpers/pathtrace.js';

const EXPRESSIONS = [
  'tcp port 3306', 'tcp port 3306 and host 198.18.0.2', 'udp', 'icmp', 'icmp6', 'ip', 'ip6', 'tcp or udp',
  'host 198.18.0.1', 'src host 198.18.0.1', 'dst host fd00:198:18::2', 'net 198.18.0.0/16', 'net 198.19.0.0 mask 255.255.0.0',
  'src net fd00:198:18::/48', 'dst net fd00:198:18:5::/64', 'port 53', 'src port 53', 'dst port 3306', 'portrange 8000-8080',
  'udp dst portrange 5000-5001', 'not port 22', '!tcp && !udp', 'tcp and (port 80 or port 22)', 'ip6 and tcp port 80',
  'tcp[tcpflags] & tcp-syn != 0', 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn', 'tcp[tcpflags] & tcp-rst != 0',
  'tcp[13] = 0x18', 'icmp[icmptype] == icmp-unreach', 'icmp6[icmp6type] == 1', 'ip[8] < 2', 'ip6[7] = 64', 'len > 500',
  'less 60', 'greater 1000', 'ip proto 17', 'ip6 proto 58', 'ip[6:2] & 0x1fff != 0', 'tcp port 3306 or (udp and host 198.19.7.9)',
  'not (src host 198.18.0.1 or src host fd00:198:18::1)', 'udp[8:4] = 0x61616161', 'tcp[((tcp[12:1] & 0xf0) >> 2):1] = 0x61',
];

/** Indexes (0-based) of the packets tcpdump's filter takes from the file: packet i is stamped i seconds. */
function tcpdumpMatches(file: string, expression: string): Set<number> {
  const r = spawnSync('tcpdump', ['-r', file, '-n', '-tt', expression], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tcpdump '${expression}': ${r.stderr}`);
  return new Set(r.stdout.split('\n').filter((l) => /^\d+\.\d+ /.test(l)).map((l) => parseInt(l, 10)));
}

const hasTcpdump = spawnSync('tcpdump', ['--version']).status === 0;

test('the kernel interpreter and compare take exactly the packets tcpdump takes, for every expression of the corpus', (t) => {
  if (!hasTcpdump) return t.skip('needs tcpdump: apt install tcpdump');
  if (!needsRoot(t)) return;
  const n = native();
  const packets = packetCorpus();
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-expr-'));
  try {
    const file = path.join(dir, 'corpus.pcap');
    writeFileSync(file, rawPcap(packets));
    let disagreements: string[] = [];
    for (const text of EXPRESSIONS) {
      const { program } = compileExpression(text, (x, l) => n.compileExpression(x, l), MAX_INSNS);
      const want = tcpdumpMatches(file, text);
      assert.ok(want.size > 0 && want.size < packets.length, `'${text}' should split the corpus (tcpdump took ${want.size} of ${packets.length})`);
      const kernel = n.testExpression(program, packets);
      packets.forEach((p, i) => {
        if (kernel[i] !== (want.has(i) ? 1 : 0)) disagreements.push(`'${text}' packet ${i + 1}: kernel ${kernel[i]}, tcpdump ${want.has(i)}`);
        if (runExpression(program, p) !== want.has(i)) disagreements.push(`'${text}' packet ${i + 1}: compare ${!want.has(i)}, tcpdump ${want.has(i)}`);
      });
    }
    assert.deepEqual(disagreements.slice(0, 10), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad expressions: one line naming what is wrong, as libpcap says it; a missing libpcap says what to install', (t) => {
  if (!needsRoot(t)) return;
  const cases: [string[], RegExp][] = [
    [['tcp', 'prt', '80'], /^pathtrace: bad filter expression 'tcp prt 80': syntax error\n$/],
    [['ether host 01:02:03:04:05:06'], /^pathtrace: bad filter expression 'ether host 01:02:03:04:05:06': ethernet addresses supported only on/],
    [['arp'], /^pathtrace: filter expression 'arp' matches no IP packet \(pathtrace follows IPv4 and IPv6\)\n$/],
    [['tcp port 99999'], /^pathtrace: bad filter expression 'tcp port 99999': illegal port number 99999 > 65535\n$/],
  ];
  for (const [args, want] of cases) {
    const r = runCli(['--duration', '1', ...args]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
  }
  const r = runCli(['--duration', '1', 'tcp'], { env: { PATHTRACE_LIBPCAP: 'libpcap-not-here.so' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^pathtrace: filter expressions need libpcap, the library tcpdump uses \(none of libpcap-not-here\.so loads\): apt install libpcap0\.8, or dnf install libpcap\n$/);
  assert.ok(LIBPCAP_NAMES.includes('libpcap.so.1') && LIBPCAP_NAMES.includes('libpcap.so.0.8'));
});

const out = (ps: Rec[]) => ps.filter((p) => p.direction === 'out');

test('an expression in the kernel: only the packets it names, with the ICMP error about a matching datagram', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab({
    traced: (lab) => lab.server.netns,
    setup: (lab) => lab.listen('tcp', 8080),
    args: ['udp port 5353 or (tcp dst port 8080 and tcp[tcpflags] & tcp-syn != 0)'],
    traffic: async (lab) => {
      await lab.connect('tcp', lab.server.v4, 8080, 1000);
      await lab.connect('tcp', lab.server.v4, 81, 500);
      return lab.connect('udp', lab.server.v6, 5353, 300);
    },
  }, ({ records, packets }) => {
    const ready = records.find((r) => r.type === 'ready')!;
    assert.equal(ready.filter.expression.text, 'udp port 5353 or (tcp dst port 8080 and tcp[tcpflags] & tcp-syn != 0)');
    assert.ok(ready.filter.expression.bpf.length > 5);
    const tcp = packets.filter((p) => p.proto === 'tcp');
    assert.deepEqual(tcp.map((p) => [p.tcp_flags, p.dport]), [['S', 8080]], 'the SYN to 8080 only: not its SYN-ACK, not port 81');
    const udp = packets.filter((p) => p.proto === 'udp');
    assert.deepEqual(udp.map((p) => [p.dport, p.drop?.reason]), [[5353, 'NO_SOCKET']]);
    const [icmp] = out(packets).filter((p) => p.proto === 'icmpv6');
    assert.ok(icmp, 'the port unreachable about the datagram is kept, though it is not UDP');
    assert.equal(icmp.flow, udp[0].flow);
  });
});

test('an expression and DNAT: the SYN from the NAT hook on, by the port it is translated to, in one connection with its replies', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab({
    router: true,
    traced: (lab) => lab.router!.netns,
    setup: async (lab) => {
      lab.exec(lab.router!.netns, 'iptables', ['-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '--dport', '80', '-j', 'DNAT', '--to-destination', `${lab.server.v4}:8080`]);
      await lab.listen('tcp', 8080);
    },
    args: ['tcp port 8080'],
    traffic: (lab) => lab.connect('tcp', lab.router!.toClient.v4, 80, 1000),
  }, ({ lab, result, packets, connections }) => {
    assert.equal(result.ok, true);
    const syn = packets.find((p) => p.tcp_flags === 'S');
    assert.ok(syn, 'the SYN, sent to port 80, is traced by the port DNAT gives it');
    // Seen from the first probe after DNAT on (the exit of PRE_ROUTING): before it, nothing of the packet
    // matched; tcpdump on the client's side would not show it either.
    assert.deepEqual([syn.fate, syn.dst, syn.dport, syn.steps[0].hook, syn.steps[0].at], ['forwarded', lab.server.v4, 8080, 'PRE_ROUTING', 'exit']);
    const synack = packets.find((p) => p.tcp_flags === 'SA')!;
    assert.deepEqual([synack.src, synack.sport, synack.fate], [lab.server.v4, 8080, 'forwarded']);
    assert.equal(connections.length, 1);
  });
});
