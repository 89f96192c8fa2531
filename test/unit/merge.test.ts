// merge on hand-made traces: the clocks' offset from packets seen both ways, a retransmission whose first
// copies were lost, a NAT on the path, and what is left out or cannot be told.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { estimateClock, merge, type HostPacket, type HostTrace } from '../../src/report/merge.js';
import { compileExpression, instructions } from '../../src/trace/expression.js';
import { native } from '../../src/trace/native.js';
import { hostArgument } from '../../src/commands/merge.js';
import { formatMerged, mergedRecords, tripText } from '../../src/output/merge.js';
import type { LoadedTrace } from '../../src/capture/trace-file.js';
import type { TripRecord } from '../../src/output/records.js';
import { clock } from '../../src/report/clock.js';
import { childArgs, packetLine } from '../../src/commands/across.js';
import { parseAllCounters, parseDeviceCounters, parseSoftnet } from '../../src/trace/counters.js';

const T0 = 1_700_000_000_000_000; // µs
const CLIENT = '198.18.1.1',
  SERVER = '198.18.2.2';

/** A TCP packet client → server (o changes that) with one device step at t (µs on its host's clock). */
function tcp(
  id: number,
  dir: 'in' | 'out',
  t: number,
  flags: string,
  seq: number,
  o: Partial<HostPacket> = {},
): HostPacket {
  const out = dir === 'out';
  return {
    id,
    time_us: t,
    family: 'ipv4',
    proto: 'tcp',
    src: CLIENT,
    dst: SERVER,
    sport: 40000,
    dport: 3306,
    tcp_flags: flags,
    seq,
    ack: 0,
    len: 0,
    direction: dir,
    fate: out ? 'sent' : 'delivered',
    drop: null,
    tcpdump: true,
    tcpdump_devices: ['eth0'],
    steps: [{ point: out ? 'net_dev_start_xmit' : 'netif_receive_skb', t_ns: 0, dev: 'eth0' }],
    flow: `6 ${CLIENT}:40000 ${SERVER}:3306`,
    ...o,
  };
}
const REPLY = { src: SERVER, dst: CLIENT, sport: 3306, dport: 40000 };

function host(name: string, packets: HostPacket[], o: Partial<HostTrace> = {}): HostTrace {
  return {
    name,
    packets,
    filter: { ports: [3306], hosts: [], protos: ['tcp', 'udp'] },
    traced: { from: T0 - 10e6, to: T0 + 10e6 },
    addresses: new Set([name === 'client' ? CLIENT : SERVER]),
    lostEvents: 0,
    ...o,
  };
}

test('clock: bounded from above by what the first sent, from below by what the second sent', () => {
  // Server's clock 5 ms ahead; 100 µs one way, 300 µs the other.
  const c = estimateClock([[0, 5100]], [[10_000, 5300]]);
  assert.deepEqual([c.lowerUs, c.upperUs, c.offsetUs, c.uncertaintyUs, c.inconsistent], [4700, 5100, 4900, 200, false]);
  const one = estimateClock(
    [
      [0, 5100],
      [1000, 6050],
    ],
    [],
  );
  assert.deepEqual([one.offsetUs, one.uncertaintyUs, one.upperUs, one.lowerUs], [5050, null, 5050, null]);
  assert.equal(estimateClock([], []).offsetUs, null);
  assert.equal(
    estimateClock([[0, 100]], [[600, 0]]).inconsistent,
    true,
    'the second sent at 600 what the first got at 0: 600 ≤ offset ≤ 100',
  );
});

/** A SYN the client sent at T0 and a SYN-ACK back, merged: the server's clock `skew` µs ahead; the SYN arrived
 *  and the SYN-ACK left at `synIn` and `synackOut` µs on its clock (past the skew), and the SYN-ACK reached the
 *  client at `synackIn`. */
function handshake(skew: number, synIn: number, synackOut: number, synackIn: number) {
  const client = host('client', [tcp(1, 'out', T0, 'S', 100), tcp(2, 'in', T0 + synackIn, 'SA', 900, REPLY)]);
  const server = host(
    'server',
    [tcp(1, 'in', T0 + skew + synIn, 'S', 100), tcp(2, 'out', T0 + skew + synackOut, 'SA', 900, REPLY)],
    { traced: { from: T0 + skew - 10e6, to: T0 + skew + 10e6 } },
  );
  return merge(client, server);
}

test("a handshake through clocks 5 s apart: every trip delivered, times on the first host's clock", () => {
  const skew = 5_000_000;
  const m = handshake(skew, 150, 250, 400);
  assert.equal(m.clock.offsetUs, skew);
  assert.equal(m.clock.uncertaintyUs, 150, 'half the round trip: 150 µs each way could also be 0 and 300');
  assert.equal(m.connections.length, 1);
  const [syn, synack] = m.connections[0].trips;
  assert.deepEqual([syn.path, syn.from, syn.leftAt, syn.arrivedAt], ['delivered', 0, T0, T0 + 150]);
  assert.deepEqual([synack.path, synack.from, synack.leftAt, synack.arrivedAt], ['delivered', 1, T0 + 250, T0 + 400]);
  assert.equal(m.connections[0].verdict, '[S] delivered (client → server); [SA] delivered (server → client)');
});

test("times shifted by a clock offset with a fraction print as tcpdump's, HH:MM:SS.uuuuuu", () => {
  // 100 µs one way, 301 µs the other: the offset is estimated half-way, 5_000_100.5 µs.
  const m = handshake(5_000_000, 100, 200, 501);
  assert.notEqual(m.clock.offsetUs! % 1, 0, 'the offset has a fraction');
  const [, synack] = m.connections[0]!.trips;
  const line = tripText(synack!, m.hosts);
  assert.equal(line.split('  ')[0], clock(Math.floor(synack!.at)));
  assert.match(line, /^\d\d:\d\d:\d\d\.\d{6}  server → client /);
});

test('retransmissions: the copy that arrived is the last one sent before it; the first ones were lost on the path', () => {
  const client = host('client', [
    tcp(1, 'out', T0, 'S', 7),
    tcp(2, 'out', T0 + 1e6, 'S', 7),
    tcp(3, 'out', T0 + 3e6, 'S', 7),
  ]);
  const server = host('server', [tcp(9, 'in', T0 + 3e6 + 80, 'S', 7)]);
  const trips = merge(client, server).connections[0].trips;
  assert.deepEqual(
    trips.map((t) => [t.sent!.id, t.path, t.received?.id ?? null]),
    [
      [1, 'lost-on-path', null],
      [2, 'lost-on-path', null],
      [3, 'delivered', 9],
    ],
  );
});

test('a NAT on the path: TCP content matches whatever the addresses; a flow that never got through is left out, and said', () => {
  // The client talks to the router's 198.18.1.254:80; the server sees the router's address and port 8080.
  const nat = {
    src: '198.18.2.254',
    dst: SERVER,
    sport: 50000,
    dport: 8080,
    flow: `6 198.18.2.254:50000 ${SERVER}:8080`,
  };
  const toVip = { dst: '198.18.1.254', dport: 80, flow: `6 ${CLIENT}:40000 198.18.1.254:80` };
  const client = host('client', [
    tcp(1, 'out', T0, 'S', 55, toVip),
    tcp(2, 'out', T0 + 10, 'S', 66, { ...toVip, sport: 40001, flow: 'other' }),
  ]);
  const server = host('server', [tcp(5, 'in', T0 + 200, 'S', 55, nat)], {
    filter: { ports: [8080], hosts: [], protos: ['tcp'] },
  });
  const m = merge(client, server);
  assert.equal(m.connections.length, 1);
  assert.deepEqual(
    m.connections[0].trips.map((t) => [t.sent?.id, t.path, t.received?.id]),
    [[1, 'delivered', 5]],
  );
  assert.equal(m.connections[0].flow, `6 ${CLIENT}:40000 198.18.1.254:80`, 'named as the first host names it');
  assert.deepEqual(
    m.elsewhere,
    [1, 0],
    'the second SYN went to an address the server does not have, in a flow that never reached it',
  );
});

test('what cannot be told is not called lost: the receiver was not tracing then, or its filter leaves the packet out', () => {
  const client = host('client', [
    tcp(1, 'out', T0, 'S', 1),
    tcp(2, 'out', T0 + 20e6, 'S', 2, { sport: 40002, flow: 'b' }),
  ]);
  const notThen = merge(client, host('server', []));
  assert.deepEqual(
    notThen.connections.flatMap((c) => c.trips.map((t) => t.path)),
    ['lost-on-path', 'receiver-blind'],
  );
  const otherPort = merge(client, host('server', [], { filter: { ports: [22], hosts: [], protos: ['tcp'] } }));
  assert.deepEqual(
    otherPort.connections.flatMap((c) => c.trips.map((t) => t.path)),
    ['receiver-blind', 'receiver-blind'],
  );
  // The receiver's filter as a tcpdump expression: run on the headers the sender's record gives.
  const byExpression = (text: string) => {
    const n = native();
    const bpf = instructions(compileExpression(text, (x, l) => n.compileExpression(x, l)).program).map(
      (i): [number, number, number, number] => [i.code, i.jt, i.jf, i.k],
    );
    const m = merge(
      client,
      host('server', [], {
        filter: { ports: null, hosts: [], protos: ['tcp', 'udp', 'icmp'], expression: { text, bpf } },
      }),
    );
    return m.connections.flatMap((c) => c.trips.map((t) => t.path));
  };
  assert.deepEqual(byExpression('tcp port 22'), ['receiver-blind', 'receiver-blind']);
  assert.deepEqual(byExpression('tcp[tcpflags] & tcp-syn != 0 and dst port 3306'), ['lost-on-path', 'receiver-blind']);
  // A packet the receiver got that the sender's trace lacks.
  const unseen = merge(host('client', []), host('server', [tcp(3, 'in', T0, 'S', 9)]));
  assert.deepEqual(
    unseen.connections[0].trips.map((t) => [t.path, t.received?.id]),
    [['sender-unseen', 3]],
  );
  // Dropped on the sender: never left.
  const dropped = merge(
    host('client', [
      tcp(4, 'out', T0, 'S', 3, {
        fate: 'dropped',
        steps: [{ point: 'kfree_skb', t_ns: 0 }],
        drop: {
          layer: 'netfilter',
          hook: 'LOCAL_OUT',
          reason: 'NETFILTER_DROP',
          location: 'nft_do_chain',
          explanation: '',
          advice: [],
        },
      }),
    ]),
    host('server', []),
  );
  assert.deepEqual(
    dropped.connections[0].trips.map((t) => [t.path, t.leftAt, t.at]),
    [['dropped-at-sender', null, T0]],
  );
});

// A router between the client and the server: its addresses toward each, its devices.
const ROUTER_IN = '198.18.1.254',
  ROUTER_OUT = '198.18.2.254';

/** A packet the router forwarded: it came in on `from` at t, left on `to` 20 µs later. */
function forwarded(p: HostPacket, t: number, from: string, to: string, o: Partial<HostPacket> = {}): HostPacket {
  return {
    ...p,
    time_us: t,
    direction: 'forward',
    fate: 'forwarded',
    tcpdump_devices: [from, to],
    steps: [
      { point: 'netif_receive_skb', t_ns: 0, dev: from },
      { point: 'net_dev_start_xmit', t_ns: 20_000, dev: to },
    ],
    ...o,
  };
}

/** A trace as formatMerged takes it (its counts and summary). */
const loaded = (h: HostTrace): LoadedTrace => ({
  packets: h.packets as LoadedTrace['packets'],
  filter: h.filter,
  total: h.packets.length,
  beyond: 0,
  traced: h.traced,
  flows: new Set(),
  ready: null,
  summary: null,
});

function router(packets: HostPacket[]): HostTrace {
  return host('router', packets, { addresses: new Set([ROUTER_IN, ROUTER_OUT]), filter: null });
}

test('a router and the server: what it forwarded toward the server it sent, what it forwarded from it it received; through its DNAT', () => {
  // The client connects to the router's 198.18.1.254:80, DNAT'd to the server's 8080.
  const dnat = { dst: SERVER, dport: 8080 };
  const toRouter = { dst: ROUTER_IN, dport: 80, translated: { src: CLIENT, sport: 40000, ...dnat } };
  const fromServer = { ...REPLY, sport: 8080, translated: { ...REPLY, src: ROUTER_IN, sport: 80 } };
  const atServer = { ...dnat, flow: `6 ${CLIENT}:40000 ${SERVER}:8080` };
  const rtr = router([
    forwarded(tcp(1, 'out', 0, 'S', 100, toRouter), T0, 'eth-cli', 'eth-srv'),
    forwarded(tcp(2, 'in', 0, 'SA', 900, { ...fromServer, ack: 101 }), T0 + 300, 'eth-srv', 'eth-cli'),
    // The client's packet to a third host: neither to nor from the server.
    forwarded(tcp(3, 'out', 0, 'S', 5, { dst: '198.51.100.7', flow: 'elsewhere' }), T0 + 10, 'eth-cli', 'eth-up'),
  ]);
  const server = host('server', [
    tcp(7, 'in', T0 + 50, 'S', 100, atServer),
    tcp(8, 'out', T0 + 280, 'SA', 900, { ...REPLY, sport: 8080, ack: 101, flow: atServer.flow }),
  ]);
  const m = merge(rtr, server);
  assert.equal(m.connections.length, 1);
  assert.deepEqual(
    m.connections[0].trips.map((t) => [t.from, t.sent?.id, t.path, t.received?.id, t.leftAt, t.arrivedAt]),
    [
      // On the router's clock: the server's is 5 µs ahead, ± 25 (30 µs to it at most, -20 back).
      [0, 1, 'delivered', 7, T0 + 20, T0 + 45],
      [1, 8, 'arrived', 2, T0 + 275, T0 + 300],
    ],
  );
  assert.equal(m.connections[0].verdict, '[S] delivered (router → server); [SA] arrived (server → router)');
  assert.deepEqual(m.elsewhere, [1, 0], 'the packet to a third host is left out');
  assert.deepEqual([m.clock.lowerUs, m.clock.upperUs], [-20, 30], 'both ways bound the clocks');
  // The router's forwarded packets as they left it: the trip says so.
  const text = formatMerged(m, ['r', 's'], [loaded(rtr), loaded(server)]);
  assert.match(text, /left router's eth-srv as 198\.18\.1\.1:40000 → 198\.18\.2\.2:8080 · reached server's eth0/);
  const trip = mergedRecords(m).find((r): r is TripRecord => r.type === 'trip');
  assert.deepEqual(trip?.translated, toRouter.translated);
  // The server's filter judges the packet as it came to it: --port 80 leaves out what the router sent to 8080
  // (and the server's answer, which the router got, is not in the server's trace).
  const onlyVip = merge(rtr, host('server', [], { filter: { ports: [80], hosts: [], protos: ['tcp'] } }));
  assert.deepEqual(
    onlyVip.connections.map((c) => c.trips.map((t) => [t.from, t.path])),
    [
      [
        [0, 'receiver-blind'],
        [1, 'sender-unseen'],
      ],
    ],
  );
});

test('a router and the server: dropped in the router (never left it), dropped by the server, lost between them', () => {
  const toServer = { translated: { src: ROUTER_OUT, sport: 50000, dst: SERVER, dport: 3306 } }; // masqueraded
  const drop = (hook: 'FORWARD' | 'LOCAL_IN') => ({
    fate: 'dropped' as const,
    drop: {
      layer: 'netfilter' as const,
      hook,
      reason: 'NETFILTER_DROP',
      location: 'nft_do_chain',
      explanation: '',
      advice: [],
    },
  });
  const rtr = router([
    forwarded(tcp(1, 'out', 0, 'S', 1, toServer), T0, 'eth-cli', 'eth-srv', {
      ...drop('FORWARD'),
      steps: [{ point: 'netif_receive_skb', t_ns: 0, dev: 'eth-cli' }],
    }),
    forwarded(tcp(2, 'out', 0, 'S', 2, { ...toServer, sport: 40001, flow: 'b' }), T0 + 1000, 'eth-cli', 'eth-srv'),
    forwarded(tcp(3, 'out', 0, 'S', 3, { ...toServer, sport: 40002, flow: 'c' }), T0 + 2000, 'eth-cli', 'eth-srv'),
  ]);
  const server = host('server', [
    tcp(9, 'in', T0 + 1050, 'S', 2, { src: ROUTER_OUT, sport: 50000, ...drop('LOCAL_IN') }),
  ]);
  assert.deepEqual(
    merge(rtr, server).connections.map((c) => c.trips.map((t) => [t.sent?.id, t.path])),
    [[[1, 'dropped-at-sender']], [[2, 'dropped-at-receiver']], [[3, 'lost-on-path']]],
  );
});

test('an IPv6 datagram through a forwarder: matched by the tuple it left with, the one the receiver got', () => {
  const udp = (id: number, o: Partial<HostPacket>): HostPacket => ({
    ...tcp(id, 'out', 0, '', 0, o),
    family: 'ipv6',
    proto: 'udp',
    tcp_flags: null,
    seq: undefined,
    ack: undefined,
    len: 12,
    ...o,
  });
  const [c, vip, s] = ['fd00:198:18:1::1', 'fd00:198:18:1::fe', 'fd00:198:18:2::2'];
  const sent = forwarded(
    udp(1, { src: c, dst: vip, sport: 5000, dport: 53, translated: { src: c, dst: s, sport: 5000, dport: 5353 } }),
    T0,
    'eth-cli',
    'eth-srv',
  );
  const got = udp(4, {
    src: c,
    dst: s,
    sport: 5000,
    dport: 5353,
    direction: 'in',
    fate: 'delivered',
    time_us: T0 + 40,
  });
  got.steps = [{ point: 'netif_receive_skb', t_ns: 0, dev: 'eth0' }];
  const m = merge(
    host('router', [sent], { addresses: new Set([vip]), filter: null }),
    host('server', [got], { addresses: new Set([s]), filter: null }),
  );
  assert.deepEqual(
    m.connections.flatMap((x) => x.trips.map((t) => [t.sent?.id, t.path, t.received?.id])),
    [[1, 'delivered', 4]],
  );
});

test('merge arguments: NAME=FILE names a host, a bare file its base name', () => {
  assert.deepEqual(hostArgument('client=/tmp/c.ndjson'), { name: 'client', file: '/tmp/c.ndjson' });
  assert.deepEqual(hostArgument('/var/tmp/db1.json'), { name: 'db1', file: '/var/tmp/db1.json' });
  assert.deepEqual(hostArgument('./a=b/x.json'), { name: 'x', file: './a=b/x.json' });
});

test("--netns twice: each child gets the user's arguments with its own --netns and --json; a packet as a tagged line", () => {
  assert.deepEqual(childArgs(['--netns', 'a', '-p', '3306', '--netns=b', '--plain', '-nc', '--duration', '5'], 'a'), [
    '-p',
    '3306',
    '--duration',
    '5',
    '--json',
    '--netns',
    'a',
  ]);
  assert.deepEqual(childArgs(['--json', '-n', 'x', '--rule-trace'], 'y'), ['--rule-trace', '--json', '--netns', 'y']);
  // A container is found by the parent: its child is given the namespace.
  assert.deepEqual(childArgs(['--container', 'db', '--pod=a/web', '-p', '1'], '/proc/9/ns/net'), [
    '-p',
    '1',
    '--json',
    '--netns',
    '/proc/9/ns/net',
  ]);
  const line = packetLine(
    'client',
    {
      time: '2026-11-29T13:13:21.203Z',
      direction: 'out',
      tcp_flags: 'S',
      proto: 'tcp',
      src: CLIENT,
      sport: 40000,
      dst: SERVER,
      dport: 3306,
      fate: 'dropped',
      drop: { hook: 'LOCAL_OUT', layer: 'netfilter', reason: 'NETFILTER_DROP' },
    },
    6,
  );
  assert.equal(
    line,
    'client  13:13:21.203 out [S] 198.18.1.1:40000 → 198.18.2.2:3306 dropped at LOCAL_OUT (NETFILTER_DROP)',
  );
});

test("counters of loss beside the netstat ones: each device's drops and errors, and the host's softnet drops", () => {
  const dev = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   16173     149    0    0    0     0          0         0    16173     149    0    0    0     0       0          0
  eth0: 1000 10 1 2 3 4 0 0 2000 20 5 6 7 0 8 0
`;
  const c = parseDeviceCounters(dev);
  assert.deepEqual(
    [c.get('eth0.rx_errors'), c.get('eth0.rx_dropped'), c.get('eth0.rx_fifo_errors'), c.get('eth0.rx_frame_errors')],
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    [c.get('eth0.tx_errors'), c.get('eth0.tx_dropped'), c.get('eth0.tx_fifo_errors'), c.get('eth0.tx_carrier_errors')],
    [5, 6, 7, 8],
  );
  assert.equal(c.has('eth0.rx_bytes'), false);
  assert.deepEqual(
    [...parseSoftnet('0ad6b8cc 00000010 00000050\n0204c316 00000002 00000002\n')],
    [['SoftnetDropped', 18]],
  );
  const all = parseAllCounters(['Tcp: InSegs\nTcp: 7\n', '', 'Ip6InReceives 3\n', dev, '00000001 00000001 00000000\n']);
  assert.deepEqual(
    [all.get('TcpInSegs'), all.get('Ip6InReceives'), all.get('eth0.tx_dropped'), all.get('SoftnetDropped')],
    [7, 3, 6, 1],
  );
});
