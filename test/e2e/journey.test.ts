// The whole journey (issue "The whole journey..."): drops outside netfilter,
// each named by layer and reason; who answered (TCP, the kernel, a REJECT
// rule); forwarding and NAT; the application's read; the connection's story
// and the namespace's netstat counters. Real traffic in lab namespaces.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { dnatToServer, needsRoot, traceLab, unexpectedDrops, type Packet } from '../helpers/pathtrace.js';

const dropped = (ps: Packet[]) => ps.filter((p) => p.fate === 'dropped');
const out = (ps: Packet[]) => ps.filter((p) => p.direction === 'out');

for (const family of [4, 6] as const) {
  test(`closed TCP port, IPv${family}: the stack's RST, and the SYN freed as NO_SOCKET`, async (t) => {
    if (!needsRoot(t)) return;
    await traceLab(
      {
        traced: (lab) => lab.server.netns,
        args: ['--port', '80'],
        traffic: (lab) => lab.connect('tcp', family === 4 ? lab.server.v4 : lab.server.v6, 80, 500),
      },
      ({ lab, result, packets, connections, summary }) => {
        assert.equal(result.error, 'ECONNREFUSED');
        const [syn] = dropped(packets);
        assert.deepEqual(
          { ...syn.drop, location: undefined, explanation: undefined, advice: undefined },
          {
            layer: 'socket',
            hook: null,
            reason: 'NO_SOCKET',
            location: undefined,
            explanation: undefined,
            advice: undefined,
          },
        );
        assert.match(
          syn.drop.explanation,
          /^no socket was bound to its destination port and address \(nothing listening there\): TCP answers such a packet with a reset/,
        );
        assert.deepEqual(syn.drop.advice, [`ip netns exec ${lab.server.netns} ss -tlnp 'sport = :80'`]);
        assert.match(syn.drop.location, /^tcp_v[46]_rcv$/);
        assert.deepEqual(syn.delivery, { socket: false, read: null });
        assert.deepEqual(syn.tcp, { saw: true, reply: 'R' });
        assert.ok(
          syn.steps.some((s) => s.point === 'tcp_send_reset'),
          'TCP announced its reset',
        );
        const [rst] = out(packets);
        assert.equal(rst.tcp_flags, 'RA');
        assert.deepEqual([rst.fate, rst.origin, rst.tcpdump], ['sent', 'stack', true]);
        assert.equal(rst.flow, syn.flow);
        assert.match(connections[0].verdict, /SYN dropped in socket \(NO_SOCKET\); RST sent by the kernel/);
        assert.equal(summary.counters[family === 4 ? 'TcpOutRsts' : 'TcpOutRsts'], 1);
      },
    );
  });

  test(`REJECT --reject-with tcp-reset, IPv${family}: a firewall RST, told apart from the stack's`, async (t) => {
    if (!needsRoot(t)) return;
    await traceLab(
      {
        traced: (lab) => lab.server.netns,
        setup: async (lab) => {
          lab.exec(lab.server.netns, family === 4 ? 'iptables' : 'ip6tables', [
            '-A',
            'INPUT',
            '-p',
            'tcp',
            '--dport',
            '80',
            '-j',
            'REJECT',
            '--reject-with',
            'tcp-reset',
          ]);
          await lab.listen('tcp', 80);
        },
        args: ['--port', '80'],
        traffic: (lab) => lab.connect('tcp', family === 4 ? lab.server.v4 : lab.server.v6, 80, 500),
      },
      ({ result, packets, connections, summary }) => {
        assert.equal(result.error, 'ECONNREFUSED');
        const [syn] = dropped(packets);
        assert.deepEqual([syn.drop.layer, syn.drop.hook, syn.drop.reason], ['netfilter', 'LOCAL_IN', 'NETFILTER_DROP']);
        assert.equal(syn.tcp.saw, false);
        assert.ok(!syn.steps.some((s) => s.point === 'tcp_send_reset'), 'TCP sent no reset');
        const [rst] = out(packets);
        assert.equal(rst.tcp_flags, 'RA');
        assert.deepEqual([rst.fate, rst.origin], ['sent', 'netfilter']);
        assert.match(connections[0].verdict, /RST sent by a netfilter REJECT rule/);
        assert.equal(summary.flows[0].resets_sent, 0);
      },
    );
  });

  test(`closed UDP port, IPv${family}: NO_SOCKET and the kernel's ICMP port unreachable, in the datagram's flow`, async (t) => {
    if (!needsRoot(t)) return;
    await traceLab(
      {
        traced: (lab) => lab.server.netns,
        args: ['--port', '5353'],
        traffic: (lab) => lab.connect('udp', family === 4 ? lab.server.v4 : lab.server.v6, 5353, 300),
      },
      ({ packets, connections, summary }) => {
        const [dgram] = dropped(packets);
        assert.equal(dgram.proto, 'udp');
        assert.deepEqual([dgram.drop.layer, dgram.drop.reason], ['socket', 'NO_SOCKET']);
        assert.match(dgram.drop.location, /udp/);
        const [icmp] = out(packets);
        assert.equal(icmp.proto, family === 4 ? 'icmp' : 'icmpv6');
        // ICMP has no ports of its own: those of the datagram it quotes are in icmp.about.
        const about = { proto: 'udp', src: dgram.src, dst: dgram.dst, sport: dgram.sport, dport: 5353 };
        assert.deepEqual(icmp.icmp, family === 4 ? { type: 3, code: 3, about } : { type: 1, code: 4, about });
        assert.equal(icmp.origin, 'stack');
        assert.deepEqual([icmp.sport, icmp.dport], [null, null]);
        assert.equal(icmp.flow, dgram.flow);
        assert.equal(connections.length, 1);
        assert.equal(summary.counters[family === 4 ? 'UdpNoPorts' : 'Udp6NoPorts'], 1);
      },
    );
  });
}

for (const family of [4, 6] as const) {
  test(`data after the server closed, IPv${family}: TCP_ABORT_ON_DATA, with the state its socket was in and why it refused`, async (t) => {
    if (!needsRoot(t)) return;
    await traceLab(
      {
        traced: (lab) => lab.server.netns,
        setup: async (lab) => {
          // Above 60 s (TCP_TIMEWAIT_LEN) a socket closed by its application waits in FIN_WAIT2 as itself; at or below,
          // a time-wait socket takes over, which answers such data with a reset but names no drop reason.
          lab.sysctl(lab.server.netns, 'net.ipv4.tcp_fin_timeout', '120');
          await lab.listen('tcp', 8080, lab.server, '--close');
        },
        args: ['--port', '8080'],
        traffic: (lab) =>
          lab.connect(
            'tcp',
            family === 4 ? lab.server.v4 : lab.server.v6,
            8080,
            3000,
            lab.client,
            '--after-fin',
            'late request',
          ),
      },
      ({ lab, result, packets, connections, summary }) => {
        assert.equal(result.ok, true);
        const drops = dropped(packets);
        assert.equal(drops.length, 1, JSON.stringify(drops.map((p) => p.drop)));
        const [d] = drops;
        assert.deepEqual(
          [d.direction, d.tcp_flags, d.len, d.drop.layer, d.drop.reason],
          ['in', 'PA', 12, 'tcp', 'TCP_ABORT_ON_DATA'],
        );
        // The server socket's changes, as the kernel reported them: FIN_WAIT2 when the data came, CLOSE by its reset.
        const local = family === 4 ? `${lab.server.v4}:8080` : `[${lab.server.v6}]:8080`;
        assert.deepEqual(connections[0].sockets[local], [
          'LISTEN>SYN_RECV',
          'SYN_RECV>ESTABLISHED',
          'ESTABLISHED>FIN_WAIT1',
          'FIN_WAIT1>FIN_WAIT2',
          'FIN_WAIT2>CLOSE',
        ]);
        assert.deepEqual(d.drop.tcp_state, { state: 'FIN_WAIT2', from: 'FIN_WAIT1', then: ['CLOSE'] });
        assert.equal(
          d.drop.explanation,
          'data came for a socket its application had closed: the connection was aborted with a reset; ' +
            'its socket was in FIN_WAIT2 (this side had closed and the peer had acknowledged its FIN), and went to CLOSE before the drop: ' +
            'the peer still sent data after the application had closed the socket (or shut down reading), and with no one to read it TCP resets the connection (RFC 1122)',
        );
        const ns = `ip netns exec ${lab.server.netns} `;
        assert.deepEqual(d.drop.advice, [
          `${ns}ss -tanoi 'sport = :8080 and dport = :${d.sport}'`,
          `${ns}nstat -az TcpExtTCPAbortOnData`,
        ]);
        assert.ok(
          d.steps.some((s) => s.point === 'tcp_send_reset'),
          'TCP answered it with a reset',
        );
        const rst = out(packets).find((p) => p.tcp_flags === 'R');
        assert.deepEqual([rst?.origin, rst?.fate], ['stack', 'sent']);
        assert.equal(summary.counters.TcpExtTCPAbortOnData, 1);
        assert.ok(
          summary.drops.some((g) => g.explanation === d.drop.explanation && g.count === 1),
          'the summary groups it by the same words',
        );
      },
    );
  });
}

for (const family of [4, 6] as const) {
  test(`data after the server closed, default tcp_fin_timeout, IPv${family}: the time-wait socket's reset, a drop with no reason and the state`, async (t) => {
    if (!needsRoot(t)) return;
    await traceLab(
      {
        traced: (lab) => lab.server.netns,
        setup: (lab) => lab.listen('tcp', 8080, lab.server, '--close'),
        args: ['--port', '8080'],
        traffic: (lab) =>
          lab.connect(
            'tcp',
            family === 4 ? lab.server.v4 : lab.server.v6,
            8080,
            3000,
            lab.client,
            '--after-fin',
            'late request',
          ),
      },
      ({ lab, result, packets, connections }) => {
        assert.equal(result.ok, true);
        const drops = dropped(packets);
        assert.equal(drops.length, 1, JSON.stringify(drops.map((p) => p.drop)));
        const [d] = drops;
        // Linux 6.18 frees it in tcp_v4_rcv (tcp_v6_rcv) naming no reason (NOT_SPECIFIED; before 5.17 none at all),
        // after the time-wait socket's reset.
        assert.deepEqual([d.direction, d.tcp_flags, d.len, d.drop.layer], ['in', 'PA', 12, 'tcp']);
        assert.match(d.drop.location, /^tcp_v[46]_rcv$/);
        assert.ok(
          d.steps.some((s) => s.point === 'tcp_send_reset'),
          'TCP answered it with a reset',
        );
        const local = family === 4 ? `${lab.server.v4}:8080` : `[${lab.server.v6}]:8080`;
        assert.deepEqual(connections[0].sockets[local], [
          'LISTEN>SYN_RECV',
          'SYN_RECV>ESTABLISHED',
          'ESTABLISHED>FIN_WAIT1',
          'FIN_WAIT1>FIN_WAIT2',
          'FIN_WAIT2>CLOSE',
        ]);
        assert.deepEqual(d.drop.tcp_state, { state: 'CLOSE', from: 'FIN_WAIT2', then: [] });
        assert.ok(d.drop.reason === 'NOT_SPECIFIED' || d.drop.reason === null, `reason ${d.drop.reason}`);
        assert.ok(d.drop.explanation.startsWith(`TCP refused it (${d.drop.location})`), d.drop.explanation);
        assert.ok(
          d.drop.explanation.endsWith(
            '; its socket had gone from FIN_WAIT2 to CLOSE (normally a time-wait socket then takes over the ' +
              'connection, shown by ss as TIME-WAIT or FIN-WAIT-2, which no state change reports): a time-wait socket takes no data',
          ),
          d.drop.explanation,
        );
        const rst = out(packets).find((p) => p.tcp_flags === 'R');
        assert.deepEqual([rst?.origin, rst?.fate], ['stack', 'sent']);
      },
    );
  });
}

test('no route while forwarding: IP_INNOROUTES on the router, ICMP net unreachable back', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      router: true,
      traced: (lab) => lab.router!.netns,
      args: ['--port', '53'],
      traffic: (lab) => lab.connect('udp', '198.19.0.1', 53, 300),
    },
    ({ lab, packets }) => {
      const [d] = dropped(packets);
      assert.deepEqual([d.direction, d.drop.layer, d.drop.reason, d.tcpdump], ['in', 'ip', 'IP_INNOROUTES', true]);
      const [icmp] = out(packets);
      assert.deepEqual([icmp.icmp.type, icmp.icmp.code, icmp.dst, icmp.origin], [3, 0, lab.client.v4, 'stack']);
    },
  );
});

test('reverse-path filter: a spoofed source is dropped as IP_RPFILTER before routing', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        lab.sysctl(lab.server.netns, 'net.ipv4.conf.all.rp_filter', '1');
        lab.sysctl(lab.server.netns, 'net.ipv4.conf.eth0.rp_filter', '1');
        lab.ip(lab.client.netns, 'addr', 'add', '198.18.99.1/32', 'dev', 'eth0');
        await lab.listen('udp', 53);
      },
      args: ['--port', '53'],
      traffic: (lab) => lab.connect('udp', lab.server.v4, 53, 300, lab.client, '--from', '198.18.99.1'),
    },
    ({ lab, packets }) => {
      assert.equal(packets.length, 1);
      const [d] = packets;
      assert.equal(d.src, '198.18.99.1');
      assert.deepEqual([d.fate, d.drop.layer, d.drop.reason, d.tcpdump], ['dropped', 'ip', 'IP_RPFILTER', true]);
      assert.match(
        d.drop.explanation,
        /^reverse path filtering: a reply to its source would not leave by the device it came in on \(rp_filter\)$/,
      );
      assert.match(
        d.drop.advice[0],
        /^ip netns exec \S+ sysctl net\.ipv4\.conf\.all\.rp_filter net\.ipv4\.conf\.eth0\.rp_filter$/,
      );
      // The next command given is the kernel's own lookup for this packet, and it refuses it as the stack did.
      const lookup = d.drop.advice[1].replace(/ \(.*\)$/, '');
      assert.equal(lookup, `ip netns exec ${lab.server.netns} ip route get ${lab.server.v4} from 198.18.99.1 iif eth0`);
      const r = spawnSync('sh', ['-c', lookup], { encoding: 'utf8' });
      assert.notEqual(r.status, 0, `the lookup refuses it: ${r.stdout}`);
      assert.match(r.stderr, /RTNETLINK answers: /);
      assert.ok(
        d.steps.some((s) => s.hook === 'PRE_ROUTING' && (s.at === 'exit' || s.passed)),
        'it left PRE_ROUTING',
      );
      assert.ok(!d.steps.some((s) => s.hook === 'LOCAL_IN'), 'never routed');
    },
  );
});

test('TTL expired while forwarding: dropped in ip_forward, ICMP time exceeded from the router', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      router: true,
      traced: (lab) => lab.router!.netns,
      setup: (lab) => lab.listen('udp', 53),
      args: ['--port', '53'],
      traffic: (lab) => lab.connect('udp', lab.server.v4, 53, 300, lab.client, '--ttl', '1'),
    },
    ({ lab, packets, connections }) => {
      const [d] = dropped(packets);
      assert.deepEqual([d.drop.layer, d.drop.location], ['ip', 'ip_forward']);
      if (d.drop.reason !== null) {
        // a kernel with drop reasons (5.17+) says IP_INHDR, which means this here
        assert.equal(
          d.drop.explanation,
          'its TTL (hop limit) ran out while it was forwarded: this host answers with ICMP time exceeded',
        );
      }
      const [icmp] = out(packets);
      assert.deepEqual(
        [icmp.icmp.type, icmp.src, icmp.dst, icmp.origin],
        [11, lab.router!.toClient.v4, lab.client.v4, 'stack'],
      );
      assert.equal(icmp.icmp.about.dst, lab.server.v4);
      assert.equal(connections.length, 1, "the ICMP error joins the datagram's flow");
    },
  );
});

test('a full socket receive buffer: SOCKET_RCVBUFF drops after the socket was found', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => lab.listen('udp', 53, lab.server, '--stall', '3000', '--rcvbuf', '2048'),
      args: ['--port', '53'],
      traffic: (lab) => lab.connect('udp', lab.server.v4, 53, 200, lab.client, '--count', '20', '--size', '1000'),
    },
    ({ packets, summary }) => {
      const drops = dropped(packets);
      assert.ok(drops.length >= 10, `${drops.length} drops`);
      for (const d of drops) {
        assert.deepEqual([d.drop.layer, d.drop.reason, d.delivery.socket], ['socket', 'SOCKET_RCVBUFF', true]);
      }
      assert.equal(summary.counters.UdpRcvbufErrors, drops.length);
    },
  );
});

test('a full listen backlog: SYNs the listener consumed without answering, named TCP_LISTEN_OVERFLOW', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => lab.listen('tcp', 80, lab.server, '--stall', '4000', '--backlog', '1'),
      args: ['--port', '80'],
      traffic: (lab) => Promise.all([1, 2, 3, 4].map(() => lab.connect('tcp', lab.server.v4, 80, 1300))),
    },
    ({ packets, summary }) => {
      const overflow = dropped(packets).filter((p) => p.drop.reason === 'TCP_LISTEN_OVERFLOW');
      assert.ok(overflow.length >= 2, `${overflow.length} overflows`);
      for (const p of overflow) {
        assert.deepEqual(
          [p.tcp_flags, p.drop.layer, p.drop.inferred, p.drop.location],
          [
            'S',
            'tcp',
            'the listener consumed the SYN without answering (accept or SYN queue full)',
            'tcp_rcv_state_process',
          ],
        );
        assert.match(
          p.drop.explanation,
          /^the listening socket's accept queue was full: \S+\[\d+\] on \[::\]:80 does not accept connections fast enough/,
        );
        assert.match(p.drop.advice.join('\n'), /ss -tlnp 'sport = :80'[\s\S]*sysctl net\.core\.somaxconn/);
      }
      // Accepted SYNs are answered and not counted.
      assert.ok(packets.some((p) => p.tcp_flags === 'S' && p.fate === 'delivered' && p.tcp.reply === 'SA'));
      assert.equal(summary.counters.TcpExtListenOverflows, overflow.length);
    },
  );
});

test('a qdisc with a tiny limit: QDISC_DROP before the tap; queued packets show the qdisc', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.client.netns,
      setup: async (lab) => {
        lab.exec(lab.client.netns, 'tc', [
          'qdisc',
          'add',
          'dev',
          'eth0',
          'root',
          'tbf',
          'rate',
          '1mbit',
          'burst',
          '2000',
          'limit',
          '3000',
        ]);
        await lab.listen('udp', 53);
      },
      args: ['--port', '53'],
      traffic: (lab) => lab.connect('udp', lab.server.v4, 53, 300, lab.client, '--count', '10', '--size', '1000'),
    },
    ({ packets }) => {
      const sent = out(packets);
      const drops = dropped(sent);
      assert.ok(drops.length >= 1);
      for (const d of drops) assert.deepEqual([d.drop.layer, d.drop.reason, d.tcpdump], ['qdisc', 'QDISC_DROP', false]);
      const queued = sent.filter((p) => p.fate === 'sent');
      assert.ok(queued.length >= 1);
      for (const p of queued) {
        const points = p.steps
          .map((s) => s.point)
          .filter((x: string) => x.startsWith('net_dev') || x.startsWith('qdisc'));
        assert.deepEqual(points, ['net_dev_queue', 'qdisc_enqueue', 'qdisc_dequeue', 'net_dev_start_xmit']);
        assert.ok(Number.isInteger(p.qdisc_wait_ns));
      }
    },
  );
});

test('neighbour resolution that fails: NEIGH_FAILED after the wait, ICMP host unreachable to ourselves', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.client.netns,
      setup: (lab) => {
        lab.sysctl(lab.client.netns, 'net.ipv4.neigh.eth0.mcast_solicit', '1');
        lab.sysctl(lab.client.netns, 'net.ipv4.neigh.eth0.retrans_time_ms', '200');
      },
      args: ['--port', '53'],
      traffic: (lab) => lab.connect('udp', '198.18.0.99', 53, 600),
    },
    ({ packets }) => {
      const [d] = dropped(packets);
      assert.deepEqual(
        [d.direction, d.drop.layer, d.drop.reason, d.tcpdump],
        ['out', 'neighbour', 'NEIGH_FAILED', false],
      );
      const post = d.steps.find((s) => s.hook === 'POST_ROUTING' && (s.at === 'exit' || s.passed));
      assert.ok(d.steps.at(-1)!.t_ns - post!.t_ns >= 150e6, 'it waited for the neighbour');
      const icmp = packets.find((p) => p.proto === 'icmp')!;
      assert.deepEqual([icmp.icmp.type, icmp.icmp.code, icmp.fate], [3, 1, 'delivered']);
    },
  );
});

test('DNAT on a router: forwarded with both tuples, the replies in the same connection, followed on --port 80 only', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      router: true,
      traced: (lab) => lab.router!.netns,
      setup: dnatToServer,
      args: ['--port', '80'],
      traffic: (lab) => lab.connect('tcp', lab.router!.toClient.v4, 80, 1000),
    },
    ({ lab, result, packets, connections }) => {
      assert.equal(result.ok, true);
      const syn = packets.find((p) => p.tcp_flags === 'S')!;
      assert.deepEqual(
        [syn.direction, syn.fate, syn.dst, syn.dport],
        ['forward', 'forwarded', lab.router!.toClient.v4, 80],
      );
      assert.deepEqual(syn.translated, { src: lab.client.v4, dst: lab.server.v4, sport: syn.sport, dport: 8080 });
      assert.deepEqual(syn.route, { decision: 'forward', in_dev: 'eth-cli', out_dev: 'eth-srv' });
      assert.deepEqual(syn.tcpdump_devices, ['eth-cli', 'eth-srv']);
      const synack = packets.find((p) => p.tcp_flags === 'SA')!;
      assert.deepEqual([synack.src, synack.sport, synack.fate], [lab.server.v4, 8080, 'forwarded']);
      assert.deepEqual(synack.translated, {
        src: lab.router!.toClient.v4,
        dst: lab.client.v4,
        sport: 80,
        dport: syn.sport,
      });
      assert.equal(connections.length, 1, 'both directions, both tuples: one connection');
      assert.ok(packets.every((p) => p.flow === syn.flow && p.fate === 'forwarded'));
    },
  );
});

test('REDIRECT to a local port: traced by the port clients use, delivered and read after conntrack lets go of it', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        lab.exec(lab.server.netns, 'iptables', [
          '-t',
          'nat',
          '-A',
          'PREROUTING',
          '-p',
          'tcp',
          '--dport',
          '80',
          '-j',
          'REDIRECT',
          '--to-ports',
          '8080',
        ]);
        await lab.listen('tcp', 8080);
      },
      args: ['--port', '80'],
      traffic: (lab) => lab.connect('tcp', lab.server.v4, 80, 1000, lab.client, '--send', 'hello'),
    },
    ({ result, packets }) => {
      assert.equal(result.ok, true);
      const req = packets.find((p) => p.direction === 'in' && p.len > 0)!;
      assert.ok(req, 'the request is traced');
      assert.equal(req.dport, 80);
      assert.equal(req.translated.dport, 8080);
      assert.equal(req.fate, 'delivered');
      // TCP drops the conntrack reference before queueing to the socket: the read is still this packet's.
      assert.equal(req.ending, 'read');
      assert.equal(req.delivery.read.bytes, 5);
    },
  );
});

test("the application's read: who read the request, how long it waited in the socket, and the connection's owner", async (t) => {
  if (!needsRoot(t)) return;
  let serverPid = 0;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        const { child } = await lab.peer(lab.server.netns, ['listen', 'tcp', '8080']);
        serverPid = child.pid!;
      },
      args: ['--port', '8080'],
      traffic: (lab) => lab.connect('tcp', lab.server.v4, 8080, 1000, lab.client, '--send', 'hello server\n'),
    },
    ({ packets, connections }) => {
      const req = packets.find((p) => p.direction === 'in' && p.len > 0)!;
      assert.equal(req.fate, 'delivered');
      assert.equal(req.ending, 'read');
      assert.deepEqual(
        { ...req.delivery.read, queued_ns: undefined },
        { pid: serverPid, comm: 'node', bytes: 13, queued_ns: undefined },
      );
      assert.ok(req.delivery.read.queued_ns >= 0);
      assert.equal(req.steps.at(-1)!.point, 'skb_copy_datagram_iovec');
      assert.deepEqual(connections[0].process, { pid: serverPid, comm: 'node' });
      assert.match(connections[0].verdict, new RegExp(`request read by node\\[${serverPid}\\]`));
      assert.deepEqual(unexpectedDrops(packets), [], 'normal frees are not drops');
    },
  );
});

test("a UDP server's read, seen at its socket", async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => lab.listen('udp', 53),
      args: ['--port', '53'],
      traffic: (lab) => lab.connect('udp', lab.server.v6, 53, 500),
    },
    ({ result, packets }) => {
      assert.equal(result.ok, true);
      const [req, resp] = packets;
      assert.deepEqual(
        [req.direction, req.fate, req.ending, req.delivery.read.comm, req.delivery.read.bytes],
        ['in', 'delivered', 'read', 'node', 5],
      );
      assert.deepEqual([resp.direction, resp.fate, resp.origin], ['out', 'sent', 'socket']);
      assert.deepEqual(unexpectedDrops(packets), []);
    },
  );
});

test('the client side of a connection: one connection from connect() to close, with its process', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.client.netns,
      setup: (lab) => lab.listen('tcp', 8080),
      args: ['--port', '8080'],
      traffic: (lab) => lab.connect('tcp', lab.server.v4, 8080, 1000),
    },
    ({ result, connections }) => {
      assert.equal(result.ok, true);
      assert.equal(connections.length, 1);
      const [c] = connections;
      assert.deepEqual(c.tcp_states.slice(0, 2), ['CLOSE>SYN_SENT', 'SYN_SENT>ESTABLISHED']);
      assert.equal(c.process.comm, 'node');
    },
  );
});

test("loopback: each packet is sent, loops through lo and is delivered; both sockets' states apart", async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => lab.listen('tcp', 8080),
      args: ['--port', '8080'],
      traffic: (lab) => lab.connect('tcp', '127.0.0.1', 8080, 1000, lab.server, '--send', 'hi'),
    },
    ({ result, packets, connections }) => {
      assert.equal(result.ok, true);
      for (const p of packets) {
        assert.equal(p.fate, 'delivered', `${p.tcp_flags} ${p.fate}`);
        assert.deepEqual(p.tcpdump_devices, ['lo']);
        assert.equal(p.route.decision, 'local');
        const points = p.steps.map((s) => s.point);
        assert.ok(points.indexOf('net_dev_start_xmit') < points.indexOf('netif_receive_skb'));
      }
      assert.ok(packets.some((p) => p.ending === 'read' && p.delivery.read.bytes === 2));
      const [c] = connections;
      assert.equal(Object.keys(c.sockets).length, 2, 'the client and the server socket');
      assert.deepEqual(c.sockets[`127.0.0.1:8080`].slice(0, 2), ['LISTEN>SYN_RECV', 'SYN_RECV>ESTABLISHED']);
    },
  );
});

test('GRO on the receiving device: segments merged into one packet share its fate; nothing is called a drop', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        lab.exec(lab.server.netns, 'ethtool', ['-K', 'eth0', 'gro', 'on']); // veth then receives through NAPI and GRO
        lab.exec(lab.client.netns, 'ethtool', ['-K', 'eth0', 'tso', 'off', 'gso', 'off']); // wire-size segments
        await lab.listen('tcp', 8080);
      },
      args: ['--port', '8080'],
      traffic: (lab) => lab.connect('tcp', lab.server.v4, 8080, 2000, lab.client, '--send', 'x'.repeat(60000)),
    },
    ({ result, packets }) => {
      assert.equal(result.ok, true);
      const inbound = packets.filter((p) => p.direction === 'in');
      for (const p of inbound) assert.equal(p.steps[0].point, 'napi_gro_receive_entry');
      const merged = inbound.filter((p) => p.ending === 'merged');
      assert.ok(merged.length > 0, 'some segments were merged');
      const byId = new Map(packets.map((p) => [p.id, p]));
      for (const m of merged) {
        const head = byId.get(m.merged_into)!;
        assert.ok(head, `packet #${m.merged_into} is reported`);
        assert.equal(m.fate, head.fate);
        assert.ok(head.len > m.len, 'the merged packet is larger');
        assert.deepEqual(
          m.steps.map((s) => s.point),
          ['napi_gro_receive_entry'],
        );
      }
      assert.deepEqual(unexpectedDrops(packets), []);
      assert.equal(packets.filter((p) => p.fate === 'unfinished').length, 0);
    },
  );
});

test('GSO on the sending device: wire segments are their own journeys, linked to the packet they were cut from', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.client.netns,
      setup: async (lab) => {
        lab.exec(lab.client.netns, 'ethtool', ['-K', 'eth0', 'tso', 'off', 'gso', 'on']); // the stack segments, not the device
        await lab.listen('tcp', 8080);
      },
      args: ['--port', '8080'],
      traffic: (lab) => lab.connect('tcp', lab.server.v4, 8080, 2000, lab.client, '--send', 'x'.repeat(30000)),
    },
    ({ result, packets }) => {
      assert.equal(result.ok, true);
      const parents = packets.filter((p) => p.segments);
      assert.ok(parents.length > 0, 'some packets were segmented');
      const byId = new Map(packets.map((p) => [p.id, p]));
      for (const parent of parents) {
        assert.deepEqual(
          [parent.direction, parent.fate, parent.ending, parent.tcpdump],
          ['out', 'sent', 'segmented', true],
        );
        const segs = parent.segments.map((id: number) => byId.get(id)!);
        assert.ok(segs.length >= 2);
        assert.equal(
          segs.reduce((n: number, s) => n + s.len, 0),
          parent.len,
          'the segments carry the whole packet',
        );
        for (const s of segs) assert.deepEqual([s.segment_of, s.fate, s.tcpdump], [parent.id, 'sent', true]);
      }
      assert.deepEqual(unexpectedDrops(packets), []);
    },
  );
});
