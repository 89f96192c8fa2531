// tcpdump's filter expressions (issue 17, part 2) with real traffic in lab namespaces: the expression in
// the kernel, ICMP errors about a matching flow kept, a packet followed through NAT; bad expressions. That
// the same words mean the same packets as in tcpdump is held on a corpus by test/kernels/scenarios.test.ts,
// on this kernel and each of the matrix.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LIBPCAP_NAMES } from '../../src/trace/expression.js';
import { dnatToServer, needsRoot, runCli, traceLab, type Packet } from '../helpers/pathtrace.js';

test('bad expressions: one line naming what is wrong, as libpcap says it; a missing libpcap says what to install', (t) => {
  if (!needsRoot(t)) return;
  const cases: [string[], RegExp][] = [
    [['tcp', 'prt', '80'], /^pathtrace: bad filter expression 'tcp prt 80': syntax error\n$/],
    [
      ['ether host 01:02:03:04:05:06'],
      /^pathtrace: bad filter expression 'ether host 01:02:03:04:05:06': ethernet addresses supported only on/,
    ],
    [['arp'], /^pathtrace: filter expression 'arp' matches no IP packet \(pathtrace follows IPv4 and IPv6\)\n$/],
    [['tcp port 99999'], /^pathtrace: bad filter expression 'tcp port 99999': illegal port number 99999 > 65535\n$/],
    // What the kernel program cannot evaluate is refused, naming the primitive, never widened or narrowed.
    [
      ['tcp and inbound'],
      /^pathtrace: filter expression 'tcp and inbound' cannot run in the kernel: 'inbound' and 'outbound' \(the packet's direction; .*\) reads packet metadata/,
    ],
    [
      ['udp[300] = 1'],
      /^pathtrace: filter expression 'udp\[300\] = 1' cannot run in the kernel: it reads byte \d+ or beyond \(counted from the IP header\), and pathtrace's probes hold a packet's first 256 bytes/,
    ],
  ];
  for (const [args, want] of cases) {
    const r = runCli(['--duration', '1', ...args]);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want);
  }
  const r = runCli(['--duration', '1', 'tcp'], { env: { PATHTRACE_LIBPCAP: 'libpcap-not-here.so' } });
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /^pathtrace: filter expressions need libpcap, the library tcpdump uses \(none of libpcap-not-here\.so loads\): apt install libpcap0\.8, or dnf install libpcap\n$/,
  );
  assert.ok(LIBPCAP_NAMES.includes('libpcap.so.1') && LIBPCAP_NAMES.includes('libpcap.so.0.8'));
});

const out = (ps: Packet[]) => ps.filter((p) => p.direction === 'out');

test('an expression in the kernel: only the packets it names, with the ICMP error about a matching datagram', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => lab.listen('tcp', 8080),
      args: ['udp port 5353 or (tcp dst port 8080 and tcp[tcpflags] & tcp-syn != 0)'],
      traffic: async (lab) => {
        await lab.connect('tcp', lab.server.v4, 8080, 1000);
        await lab.connect('tcp', lab.server.v4, 81, 500);
        return lab.connect('udp', lab.server.v6, 5353, 300);
      },
    },
    ({ records, packets }) => {
      const ready = records.find((r) => r.type === 'ready')!;
      assert.equal(
        ready.filter.expression.text,
        'udp port 5353 or (tcp dst port 8080 and tcp[tcpflags] & tcp-syn != 0)',
      );
      assert.ok(ready.filter.expression.bpf.length > 5);
      const tcp = packets.filter((p) => p.proto === 'tcp');
      assert.deepEqual(
        tcp.map((p) => [p.tcp_flags, p.dport]),
        [['S', 8080]],
        'the SYN to 8080 only: not its SYN-ACK, not port 81',
      );
      const udp = packets.filter((p) => p.proto === 'udp');
      assert.deepEqual(
        udp.map((p) => [p.dport, p.drop?.reason]),
        [[5353, 'NO_SOCKET']],
      );
      const [icmp] = out(packets).filter((p) => p.proto === 'icmpv6');
      assert.ok(icmp, 'the port unreachable about the datagram is kept, though it is not UDP');
      assert.equal(icmp.flow, udp[0].flow);
    },
  );
});

test('an expression and DNAT: the SYN from the NAT hook on, by the port it is translated to, in one connection with its replies', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      router: true,
      traced: (lab) => lab.router!.netns,
      setup: dnatToServer,
      args: ['tcp port 8080'],
      traffic: (lab) => lab.connect('tcp', lab.router!.toClient.v4, 80, 1000),
    },
    ({ lab, result, packets, connections }) => {
      assert.equal(result.ok, true);
      const syn = packets.find((p) => p.tcp_flags === 'S');
      assert.ok(syn, 'the SYN, sent to port 80, is traced by the port DNAT gives it');
      // Seen from the first probe after DNAT on (the exit of PRE_ROUTING): before it, nothing of the packet
      // matched; tcpdump on the client's side would not show it either.
      assert.deepEqual(
        [syn.fate, syn.dst, syn.dport, syn.steps[0].hook, syn.steps[0].at],
        ['forwarded', lab.server.v4, 8080, 'PRE_ROUTING', 'exit'],
      );
      const synack = packets.find((p) => p.tcp_flags === 'SA')!;
      assert.deepEqual([synack.src, synack.sport, synack.fate], [lab.server.v4, 8080, 'forwarded']);
      assert.equal(connections.length, 1);
    },
  );
});
