import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Correlator, type NamedEvent } from '../../src/correlate/correlate.js';
import { FlowTable, MAX_FLOWS, flowKey } from '../../src/correlate/flows.js';
import { flagLetters } from '../../src/correlate/journey.js';
import { NF_EVAL_NFT, NF_SLOT_ENTRY, NF_SLOT_EXIT, Point } from '../../src/trace/record.js';
import { ev } from '../helpers/events.js';
import { loadEvents, replay } from '../helpers/replay.js';

const kinds = (js: { direction: string; flags: number }[]) => js.map((j) => `${j.direction} ${flagLetters(j.flags)}`);

test('local-in: every SYN is seen by tcpdump and dropped at LOCAL_IN before TCP', () => {
  const { journeys } = replay(loadEvents('local-in'));
  assert.ok(journeys.length >= 3, `expected the SYN and its retransmissions, got ${journeys.length}`);
  journeys.forEach((j, i) => {
    assert.equal(j.direction, 'in');
    assert.equal(flagLetters(j.flags), 'S');
    assert.equal(j.fate, 'dropped');
    assert.deepEqual(j.drop, {
      layer: 'netfilter',
      hook: 'LOCAL_IN',
      reason: 'NETFILTER_DROP',
      location: 'nft_do_chain',
      answered: false,
    });
    assert.equal(j.tcpdump, true);
    assert.equal(j.retransmit, i, 'retransmissions numbered in order');
    assert.deepEqual(j.tcp, { saw: false, reply: null });
    assert.deepEqual(
      j.steps.map((s) => `${s.point}${s.hook ? ` ${s.hook} ${s.at}` : ''}`),
      [
        'netif_rx',
        'netif_receive_skb',
        'netfilter PRE_ROUTING entry',
        'netfilter PRE_ROUTING exit',
        'netfilter LOCAL_IN entry',
        'kfree_skb',
      ],
    );
  });
});

test('local-out: TCP receives each SYN and answers; the SYN-ACKs die at LOCAL_OUT unseen by tcpdump', () => {
  const { journeys, correlator } = replay(loadEvents('local-out'));
  const syns = journeys.filter((j) => j.direction === 'in');
  const synacks = journeys.filter((j) => j.direction === 'out');
  assert.ok(syns.length >= 3 && synacks.length >= syns.length);
  for (const j of syns) {
    assert.equal(flagLetters(j.flags), 'S');
    assert.equal(j.fate, 'delivered');
    assert.equal(j.tcpdump, true);
    assert.deepEqual(j.tcp, { saw: true, reply: 'SA' });
    assert.equal(j.steps.at(-1)!.location, 'tcp_rcv_state_process');
  }
  for (const j of synacks) {
    assert.equal(flagLetters(j.flags), 'SA');
    assert.equal(j.fate, 'dropped');
    assert.deepEqual(j.drop, {
      layer: 'netfilter',
      hook: 'LOCAL_OUT',
      reason: 'NETFILTER_DROP',
      location: 'nft_do_chain',
      answered: false,
    });
    assert.equal(j.tcpdump, false);
  }
  assert.deepEqual(
    syns.map((j) => j.retransmit),
    syns.map((_, i) => i),
  );
  // A SYN-ACK sent again by the request socket's timer is a retransmission of the same ISN.
  assert.ok(synacks.some((j) => j.retransmit > 0));
  // Released in the order they started: each SYN before the SYN-ACK it caused.
  assert.equal(kinds(journeys)[0], 'in S');
  assert.equal(kinds(journeys)[1], 'out SA');
  assert.equal(correlator.flows.size, 1);
});

test('a connection that works: nothing dropped, every packet delivered or sent past tcpdump', () => {
  const { journeys } = replay(loadEvents('connect-ok'));
  assert.deepEqual(kinds(journeys).slice(0, 3), ['in S', 'out SA', 'in A']);
  for (const j of journeys) {
    assert.equal(j.drop, null);
    assert.equal(j.fate, j.direction === 'in' ? 'delivered' : 'sent');
    assert.equal(j.tcpdump, true);
  }
});

test('a closed port: the stack answers RST and frees the SYN as NO_SOCKET, outside netfilter', () => {
  const { journeys, correlator } = replay(loadEvents('closed-port'));
  const [syn, rst] = journeys;
  assert.equal(syn.fate, 'dropped');
  assert.equal(syn.drop!.reason, 'NO_SOCKET');
  assert.equal(syn.drop!.layer, 'socket');
  assert.equal(syn.drop!.hook, null);
  assert.deepEqual(syn.tcp, { saw: true, reply: 'R' });
  assert.ok(syn.steps.some((s) => s.point === 'tcp_send_reset'));
  assert.equal(flagLetters(rst.flags), 'RA');
  assert.equal(rst.fate, 'sent');
  assert.equal([...correlator.flows.values()][0].resetsSent, 1);
});

const nf = (hook: number, exit: boolean, p: Partial<NamedEvent> = {}) =>
  ev({ point: Point.NETFILTER, hook, probe: exit ? NF_SLOT_EXIT : NF_SLOT_ENTRY, ...p });

/** The base SYN received and through PRE_ROUTING and LOCAL_IN (t 1 to 5): TCP has it. */
function arrive(c: Correlator): void {
  c.push(ev({ t: 1 }));
  c.push(nf(0, false, { t: 2 }));
  c.push(nf(0, true, { t: 3 }));
  c.push(nf(1, false, { t: 4 }));
  c.push(nf(1, true, { t: 5 }));
}

test('an address reused by another packet starts a new journey', () => {
  const c = new Correlator({ netns: 5 });
  arrive(c);
  // Same skb address, another segment: the first packet ended silently (delivered).
  c.push(ev({ t: 10, seq: 999, flags: 0x18, len: 10 }));
  c.finish();
  const [a, b] = c.drain();
  assert.equal(a.fate, 'delivered');
  assert.equal(a.ending, 'left');
  assert.equal(b.seq, 999);
  assert.equal(b.fate, 'unfinished');
  assert.equal(b.ending, 'trace-ended');
});

test('a packet that stops mid-path is cut by timeout and reported unfinished, not dropped', () => {
  const c = new Correlator({ netns: 5, idleNs: 1000, queueWaitNs: 5000 });
  c.push(ev({ t: 1 }));
  c.push(nf(0, false, { t: 2 }));
  c.push(nf(0, true, { t: 3 }));
  c.tick(500);
  assert.equal(c.drain().length, 0);
  c.tick(1003);
  const [j] = c.drain();
  assert.equal(j.fate, 'unfinished');
  assert.equal(j.ending, 'timeout');
  assert.equal(j.drop, null);
});

test('inside a hook a packet may wait (NFQUEUE, a slow first packet): its exit, late, continues the journey', () => {
  const c = new Correlator({ netns: 5, idleNs: 1000, queueWaitNs: 5000, graceNs: 10 });
  c.push(ev({ t: 1 }));
  c.push(nf(0, false, { t: 2 }));
  c.tick(2000);
  assert.equal(c.drain().length, 0, 'not cut after the idle time');
  c.push(nf(0, true, { t: 2500 }));
  c.push(nf(1, false, { t: 2501 }));
  c.push(nf(1, true, { t: 2502 }));
  c.tick(3000);
  const [j] = c.drain();
  assert.equal(j.fate, 'delivered');
  assert.equal(j.steps.length, 5);
  c.push(ev({ t: 4000, skb: 7 }));
  c.push(nf(0, false, { t: 4001, skb: 7 }));
  c.tick(9002);
  assert.deepEqual(
    c.drain().map((x) => [x.fate, x.ending]),
    [['unfinished', 'timeout']],
    'but not for ever',
  );
});

test('forwarded: PRE_ROUTING, FORWARD, POST_ROUTING, out a device', () => {
  const c = new Correlator({ netns: 5, graceNs: 10 });
  c.push(ev({ t: 1 }));
  for (const [i, h] of [0, 2, 4].entries()) {
    c.push(nf(h, false, { t: 2 + i * 2 }));
    c.push(nf(h, true, { t: 3 + i * 2 }));
  }
  c.push(ev({ t: 9, point: Point.NET_DEV_START_XMIT, ifindex: 3 }));
  c.tick(100);
  const [j] = c.drain();
  assert.equal(j.direction, 'forward');
  assert.equal(j.fate, 'forwarded');
  assert.deepEqual(j.tcpdumpDevices, [2, 3]);
});

test('the same content in the same skb a second later is another packet (a retransmission), not one looped back', () => {
  // A forwarded SYN's skb is freed in the next namespace, unseen, and reused for the client's retransmission a
  // second later while the first journey is still held: it starts its own journey. One that comes back at once
  // (lo, a veth pair) stays one journey.
  const pass = (c: Correlator, t0: number) => {
    c.push(ev({ t: t0 }));
    for (const [i, h] of [0, 2, 4].entries()) {
      c.push(nf(h, false, { t: t0 + 2 + i * 2 }));
      c.push(nf(h, true, { t: t0 + 3 + i * 2 }));
    }
    c.push(ev({ t: t0 + 8, point: Point.NET_DEV_QUEUE, ifindex: 3 }));
    c.push(ev({ t: t0 + 9, point: Point.NET_DEV_START_XMIT, ifindex: 3 }));
  };
  const later = new Correlator({ netns: 5, graceNs: 5e9 });
  pass(later, 1);
  pass(later, 1e9);
  later.finish();
  const journeys = later.drain();
  assert.deepEqual(
    journeys.map((j) => [j.fate, j.steps[0]?.point]),
    [
      ['forwarded', 'netif_receive_skb'],
      ['forwarded', 'netif_receive_skb'],
    ],
  );
  const atOnce = new Correlator({ netns: 5, graceNs: 5e9 });
  pass(atOnce, 1);
  atOnce.push(ev({ t: 20, ifindex: 1 }));
  atOnce.finish();
  assert.equal(atOnce.drain().length, 1);
});

test('stacked devices: a bridge port hands the packet up to the bridge device, a bridge hands it down to a port', () => {
  const c = new Correlator({ netns: 5, graceNs: 10 });
  // From a container's port (ifindex 7) with br_netfilter: PRE_ROUTING names the bridge (4) before
  // the packet is received on it; then routed out of device 2.
  c.push(ev({ t: 1, point: Point.NETIF_RECEIVE_SKB, ifindex: 7 }));
  c.push(nf(0, false, { t: 2, ifindex: 4 }));
  c.push(nf(0, true, { t: 3, ifindex: 4 }));
  c.push(ev({ t: 4, point: Point.NETIF_RECEIVE_SKB, ifindex: 4 }));
  c.push(nf(2, false, { t: 5, ifindex: 4, ifindexOut: 2 }));
  c.push(nf(2, true, { t: 6, ifindex: 4, ifindexOut: 2 }));
  c.push(ev({ t: 7, point: Point.NET_DEV_START_XMIT, ifindex: 2 }));
  // The answer, routed to the bridge, which sends it on to the port.
  const back = { skb: 0xbeef, src: '198.18.1.1', dst: '198.18.2.2', sport: 3306, dport: 40000, seq: 7, ack: 101 };
  c.push(ev({ ...back, t: 10, point: Point.NETIF_RECEIVE_SKB, ifindex: 2 }));
  c.push(nf(2, false, { ...back, t: 11, ifindex: 2, ifindexOut: 4 }));
  c.push(ev({ ...back, t: 12, point: Point.NET_DEV_QUEUE, ifindex: 4 }));
  c.push(ev({ ...back, t: 13, point: Point.NET_DEV_START_XMIT, ifindex: 4 }));
  c.push(ev({ ...back, t: 14, point: Point.NET_DEV_QUEUE, ifindex: 7 }));
  c.push(ev({ ...back, t: 15, point: Point.NET_DEV_START_XMIT, ifindex: 7 }));
  // A pure L2 frame between two ports, no IP hooks.
  const l2 = { skb: 0xf00d, seq: 50 };
  c.push(ev({ ...l2, t: 20, point: Point.NETIF_RECEIVE_SKB, ifindex: 8 }));
  c.push(ev({ ...l2, t: 21, point: Point.NET_DEV_QUEUE, ifindex: 7 }));
  c.push(ev({ ...l2, t: 22, point: Point.NET_DEV_START_XMIT, ifindex: 7 }));
  c.tick(100);
  const [up, down, bridged] = c.drain();
  assert.equal(c.drain().length, 0, 'three journeys, none split');
  assert.equal(up.fate, 'forwarded');
  assert.deepEqual(
    up.steps.map((s) => s.bridge ?? false),
    [false, true, true, false, false, false, false],
    "only the PRE_ROUTING pass was the bridge's",
  );
  assert.deepEqual(up.route, { decision: 'forward', inDev: 4, outDev: 2 });
  assert.deepEqual(up.tcpdumpDevices, [7, 4, 2]);
  assert.equal(down.fate, 'forwarded');
  assert.deepEqual(down.tcpdumpDevices, [2, 4, 7]);
  assert.deepEqual(
    [bridged.direction, bridged.fate, bridged.route],
    ['forward', 'forwarded', { decision: 'bridge', inDev: 8, outDev: 7 }],
  );
});

test('a netfilter drop is answered when a reset or ICMP error of its flow began while it was in the hook (a REJECT)', () => {
  const c = new Correlator({ netns: 5 });
  c.push(ev({ t: 1 }));
  c.push(nf(1, false, { t: 2 }));
  // REJECT --reject-with tcp-reset: the RST goes out through LOCAL_OUT before the SYN is freed.
  const rst = { skb: 200, src: '198.18.0.2', dst: '198.18.0.1', sport: 80, dport: 40000, flags: 0x14 };
  c.push(nf(3, false, { ...rst, t: 3 }));
  c.push(ev({ t: 4, point: Point.KFREE_SKB, reasonName: 'NETFILTER_DROP', location: 'nft_do_chain' }));
  // A silent drop of the next SYN: the earlier RST does not count.
  c.push(ev({ t: 10, skb: 300, seq: 5 }));
  c.push(nf(1, false, { t: 11, skb: 300, seq: 5 }));
  c.push(
    ev({ t: 12, skb: 300, seq: 5, point: Point.KFREE_SKB, reasonName: 'NETFILTER_DROP', location: 'nft_do_chain' }),
  );
  c.finish();
  const drops = c.drain().filter((j) => j.fate === 'dropped');
  assert.deepEqual(
    drops.map((j) => j.drop!.answered),
    [true, false],
  );
});

test('a drop after the exit probe of a hook is still that hook (netfilter reason)', () => {
  const c = new Correlator({ netns: 5 });
  c.push(nf(3, false, { t: 1 }));
  c.push(nf(3, true, { t: 2 }));
  c.push(ev({ t: 3, point: Point.KFREE_SKB, reasonName: 'NETFILTER_DROP', location: 'nf_hook_slow' }));
  const [j] = c.drain();
  assert.equal(j.direction, 'out');
  assert.equal(j.drop!.hook, 'LOCAL_OUT');
});

test('trampolines on a kernel without drop reasons: the chain step names table and priority, the drop has reason null', () => {
  const c = new Correlator({ netns: 5 });
  c.push(ev({ t: 1 }));
  c.push(nf(1, false, { t: 2 })); // nf_hook_slow's entry: no priority
  c.push(ev({ t: 3, point: Point.NF_CHAIN, hook: 1, probe: NF_EVAL_NFT, priority: 0, comm: 'filter' }));
  c.push(ev({ t: 4, point: Point.KFREE_SKB, reasonName: null, location: 'nf_hook_slow' }));
  const [j] = c.drain();
  assert.deepEqual(j.drop, {
    layer: 'netfilter',
    hook: 'LOCAL_IN',
    reason: null,
    location: 'nf_hook_slow',
    answered: false,
  });
  const chain = j.steps.find((s) => s.at === 'chain')!;
  assert.deepEqual(
    [chain.hook, chain.table, chain.priority, chain.location],
    ['LOCAL_IN', 'filter', 0, 'nft_do_chain'],
  );
  // A chain verdict on a packet never seen starts nothing.
  c.push(ev({ skb: 9, t: 5, point: Point.NF_CHAIN, hook: 1, probe: NF_EVAL_NFT, comm: 'filter' }));
  c.finish();
  assert.equal(c.drain().length, 0);
});

test('trampolines with no hook registered after PRE_ROUTING: a TCP free after delivery is no drop on a kernel without reasons', () => {
  const c = new Correlator({ netns: 5 });
  c.push(ev({ t: 1 }));
  c.push(nf(0, false, { t: 2 }));
  c.push(nf(0, true, { t: 3 }));
  c.push(ev({ t: 4, point: Point.KFREE_SKB, reasonName: null, location: 'tcp_v4_rcv' }));
  const [j] = c.drain();
  assert.equal(j.drop, null);
  assert.equal(j.fate, 'delivered');
});

test("a closed port before 5.17 and 6.10: no reason, no tcp_send_reset; the reset tells the drop and is the kernel's", () => {
  const c = new Correlator({ netns: 5 });
  arrive(c);
  // tcp_v4_send_reset with no socket: the RST goes out (LOCAL_OUT, POST_ROUTING, the device), then the SYN is freed.
  const rst = { skb: 200, src: '198.18.0.2', dst: '198.18.0.1', sport: 80, dport: 40000, flags: 0x14 };
  c.push(nf(3, false, { ...rst, t: 6 }));
  c.push(nf(3, true, { ...rst, t: 7 }));
  c.push(ev({ t: 10, point: Point.KFREE_SKB, reasonName: null, location: 'tcp_v4_rcv' }));
  c.push(nf(4, false, { ...rst, t: 11 }));
  c.push(nf(4, true, { ...rst, t: 12 }));
  c.push(ev({ ...rst, t: 13, point: Point.NET_DEV_START_XMIT }));
  c.finish();
  const [syn, reset] = c.drain();
  assert.deepEqual(syn!.drop, {
    layer: 'socket',
    hook: null,
    reason: 'NO_SOCKET',
    location: 'tcp_v4_rcv',
    inferred: 'TCP answered the SYN with a reset from tcp_v4_rcv, which it does when no socket takes it',
  });
  assert.deepEqual(syn!.tcp, { saw: true, reply: 'R' });
  assert.deepEqual([flagLetters(reset!.flags), reset!.fate, reset!.origin], ['RA', 'sent', 'stack']);
});

test("a reset that left the host before the SYN it answers was freed is still the kernel's", () => {
  const c = new Correlator({ netns: 5 });
  arrive(c);
  // The RST goes out and is freed on the way (its whole journey ended) before tcp_v4_rcv frees the SYN.
  const rst = { skb: 200, src: '198.18.0.2', dst: '198.18.0.1', sport: 80, dport: 40000, flags: 0x14 };
  c.push(nf(3, false, { ...rst, t: 6 }));
  c.push(nf(3, true, { ...rst, t: 7 }));
  c.push(nf(4, false, { ...rst, t: 8 }));
  c.push(nf(4, true, { ...rst, t: 9 }));
  c.push(ev({ ...rst, t: 10, point: Point.NET_DEV_START_XMIT }));
  c.push(ev({ ...rst, t: 11, point: Point.CONSUME_SKB }));
  c.push(ev({ t: 12, point: Point.KFREE_SKB, reasonName: null, location: 'tcp_v4_rcv' }));
  c.finish();
  const [syn, reset] = c.drain();
  assert.equal(syn!.drop?.reason, 'NO_SOCKET');
  assert.deepEqual([flagLetters(reset!.flags), reset!.fate, reset!.origin], ['RA', 'sent', 'stack']);
});

test('events of other namespaces and consumes of unseen packets start nothing', () => {
  const c = new Correlator({ netns: 5 });
  c.push(ev({ netns: 6 }));
  c.push(ev({ skb: 7, point: Point.CONSUME_SKB }));
  c.push(ev({ skb: 8, point: Point.KFREE_SKB, netns: 0, reasonName: 'NO_SOCKET' }));
  c.finish();
  assert.deepEqual(c.drain(), []);
});

test('socket events go to the flow: states, SYN-ACK retransmissions, resets', () => {
  const c = new Correlator({ netns: 5 });
  c.push(ev({ point: Point.INET_SOCK_SET_STATE, skb: 0, oldState: 2, newState: 1 }));
  c.push(ev({ point: Point.TCP_RETRANSMIT_SYNACK, skb: 0 }));
  c.push(ev({ point: Point.TCP_RECEIVE_RESET, skb: 0, src: '198.18.0.2', dst: '198.18.0.1', sport: 80, dport: 40000 }));
  const [f] = c.flows.values();
  assert.deepEqual(
    f.states.map((s) => `${s.from}>${s.to}`),
    ['SYN_SENT>ESTABLISHED'],
  );
  assert.equal(f.synackRetransmits, 1);
  assert.equal(f.resetsReceived, 1);
});

test("a TCP drop notes its socket's state: the last change before TCP got it, the changes up to the drop; that socket's only", () => {
  const c = new Correlator({ netns: 5 });
  const server = { src: '198.18.0.2', dst: '198.18.0.1', sport: 80, dport: 40000 };
  const state = (t: number, oldState: number, newState: number, p: Partial<NamedEvent> = server) =>
    c.push(ev({ t, point: Point.INET_SOCK_SET_STATE, skb: 0, oldState, newState, ...p }));
  const data = (skb: number, t: number, reasonName: string, p: Partial<NamedEvent> = {}) => {
    const d = { skb, seq: 7, flags: 0x18, len: 5, ...p };
    c.push(ev({ t, ...d }));
    c.push(nf(1, false, { t: t + 1, ...d }));
    c.push(nf(1, true, { t: t + 2, ...d }));
  };
  state(1, 1, 4); // ESTABLISHED>FIN_WAIT1: the server closed
  state(2, 4, 5); // FIN_WAIT1>FIN_WAIT2
  // The client's own socket on this host (loopback, say): another local endpoint, not the one the data came to.
  state(3, 1, 8, { src: '198.18.0.1', dst: '198.18.0.2', sport: 40000, dport: 80 });
  data(1, 10, 'TCP_ABORT_ON_DATA');
  state(13, 5, 7); // FIN_WAIT2>CLOSE: the reset this data caused
  c.push(
    ev({
      t: 14,
      skb: 1,
      seq: 7,
      flags: 0x18,
      len: 5,
      point: Point.KFREE_SKB,
      reasonName: 'TCP_ABORT_ON_DATA',
      location: 'tcp_v4_do_rcv',
    }),
  );
  // A later segment meets the closed connection's listener.
  data(2, 20, 'TCP_FLAGS', { seq: 12 });
  c.push(
    ev({
      t: 23,
      skb: 2,
      seq: 12,
      flags: 0x18,
      len: 5,
      point: Point.KFREE_SKB,
      reasonName: 'TCP_FLAGS',
      location: 'tcp_v4_do_rcv',
    }),
  );
  // Another connection, no state change seen: unknown, not guessed; a checksum drop notes no state.
  data(3, 30, 'TCP_OLD_DATA', { sport: 40001 });
  c.push(
    ev({
      t: 33,
      skb: 3,
      seq: 7,
      flags: 0x18,
      len: 5,
      sport: 40001,
      point: Point.KFREE_SKB,
      reasonName: 'TCP_OLD_DATA',
      location: 'tcp_rcv_established',
    }),
  );
  data(4, 40, 'TCP_CSUM', { sport: 40002 });
  c.push(
    ev({
      t: 43,
      skb: 4,
      seq: 7,
      flags: 0x18,
      len: 5,
      sport: 40002,
      point: Point.KFREE_SKB,
      reasonName: 'TCP_CSUM',
      location: 'tcp_v4_rcv',
    }),
  );
  // Nothing seen before it came, but a change after: the state it left is the one the packet met.
  data(5, 50, 'TCP_CLOSE', { sport: 40003 });
  state(53, 1, 7, { ...server, dport: 40003 });
  c.push(
    ev({
      t: 54,
      skb: 5,
      seq: 7,
      flags: 0x18,
      len: 5,
      sport: 40003,
      point: Point.KFREE_SKB,
      reasonName: 'TCP_CLOSE',
      location: 'tcp_rcv_state_process',
    }),
  );
  // Answered with a reset and freed naming no reason (a time-wait socket's reset): a drop, with the state where seen.
  state(60, 5, 7, { ...server, dport: 40004 }); // FIN_WAIT2>CLOSE: the time-wait socket took over
  for (const [skb, t, sport] of [
    [6, 70, 40004],
    [7, 80, 40005],
  ]) {
    data(skb, t, 'NOT_SPECIFIED', { sport });
    c.push(ev({ t: t + 3, skb, seq: 7, flags: 0x18, len: 5, sport, point: Point.TCP_SEND_RESET }));
    c.push(
      ev({
        t: t + 4,
        skb,
        seq: 7,
        flags: 0x18,
        len: 5,
        sport,
        point: Point.KFREE_SKB,
        reasonName: 'NOT_SPECIFIED',
        location: 'tcp_v4_rcv',
      }),
    );
  }
  c.finish();
  const [abort, flags, old, csum, closed, timeWait, unseen] = c.drain();
  assert.deepEqual(
    [timeWait.fate, timeWait.drop!.layer, timeWait.drop!.tcpState],
    ['dropped', 'tcp', { state: 'CLOSE', from: 'FIN_WAIT2', then: [] }],
  );
  assert.deepEqual(
    [unseen.fate, unseen.drop!.tcpState],
    ['dropped', undefined],
    'no reason and no state seen: nothing to add',
  );
  assert.deepEqual(closed.drop!.tcpState, { state: 'ESTABLISHED', from: null, then: ['CLOSE'] });
  assert.deepEqual(abort.drop!.tcpState, { state: 'FIN_WAIT2', from: 'FIN_WAIT1', then: ['CLOSE'] });
  assert.deepEqual(flags.drop!.tcpState, { state: 'CLOSE', from: 'FIN_WAIT2', then: [] });
  assert.deepEqual(old.drop!.tcpState, { state: null, from: null, then: [] });
  assert.equal(csum.drop!.tcpState, undefined);
});

test('a TCP read settles every unread segment of its direction up to the end of the copy, and none of the other', () => {
  const c = new Correlator({ netns: 5, readWaitNs: 1e12 });
  const segment = (skb: number, t: number, seq: number, p: Partial<NamedEvent> = {}) => {
    const s = { skb, seq, len: 100, flags: 0x18, ...p };
    c.push(ev({ t, ...s }));
    c.push(nf(1, false, { t: t + 1, ...s }));
    c.push(nf(1, true, { t: t + 2, ...s }));
  };
  segment(1, 10, 1000);
  segment(2, 20, 1100); // coalesced into the first skb's queue entry by TCP
  segment(3, 30, 1200);
  // The reply direction: another sequence space; its end (1150) would cover the first two by number.
  segment(4, 40, 1050, { src: '198.18.0.2', dst: '198.18.0.1', sport: 80, dport: 40000 });
  const read = { point: Point.SKB_COPY_DATAGRAM, skb: 1, pid: 42, comm: 'server' };
  c.push(
    ev({ t: 50, ...read, seq: 1050, aux: 100, src: '198.18.0.2', dst: '198.18.0.1', sport: 80, dport: 40000, skb: 4 }),
  );
  c.push(ev({ t: 60, ...read, seq: 1000, aux: 200 }));
  c.finish(); // journeys are released in the order they started
  const all = c.drain();
  assert.deepEqual(
    all.map((j) => [j.seq, j.ending]),
    [
      [1000, 'read'],
      [1100, 'read'],
      [1200, 'trace-ended'],
      [1050, 'read'],
    ],
  );
  for (const j of all.filter((j) => j.ending === 'read'))
    assert.equal(j.steps.at(-1)!.point, 'skb_copy_datagram_iovec');
});

test('past MAX_FLOWS connections, the least recently active tenth is forgotten and counted', () => {
  const flows = new FlowTable();
  const tuple = (i: number) => ({
    proto: 6,
    family: 4,
    src: '198.18.0.1',
    dst: '198.18.0.2',
    sport: 1024 + i,
    dport: 80,
  });
  const forgotten: string[] = [];
  flows.onEvict((keys) => forgotten.push(...keys));
  const kept = flows.of(tuple(0));
  for (let i = 1; i < MAX_FLOWS; i++) {
    if (i % 100 === 0) flows.generation++;
    flows.of(tuple(i));
  }
  flows.generation++;
  flows.of(tuple(0)); // active again: not among the oldest
  flows.of(tuple(MAX_FLOWS)); // one past the bound
  assert.equal(flows.evicted, MAX_FLOWS / 10);
  assert.equal(flows.size, MAX_FLOWS + 1 - MAX_FLOWS / 10);
  assert.equal(forgotten.length, MAX_FLOWS / 10);
  assert.equal(flows.of(tuple(0)), kept);
  assert.ok(!flows.byKey(flowKey(tuple(1))), 'an old one is gone');
});

test('a TCP read in parts: each part continues where the last ended in the same skb', () => {
  const c = new Correlator({ netns: 5, readWaitNs: 1e12 });
  for (const [skb, t, seq] of [
    [1, 10, 1000],
    [2, 20, 1100],
  ]) {
    c.push(ev({ t, skb, seq, len: 100, flags: 0x18 }));
    c.push(nf(1, false, { t: t + 1, skb, seq, len: 100, flags: 0x18 }));
    c.push(nf(1, true, { t: t + 2, skb, seq, len: 100, flags: 0x18 }));
  }
  const read = (t: number, aux: number) =>
    c.push(ev({ t, point: Point.SKB_COPY_DATAGRAM, skb: 1, seq: 1000, aux, pid: 7, comm: 'app' }));
  read(30, 50); // bytes 1000-1049: the first segment's
  assert.deepEqual(
    c.drain().map((j) => [j.seq, j.ending]),
    [[1000, 'read']],
  );
  read(40, 100); // 1050-1149: into the second segment, which TCP had coalesced into skb 1
  assert.deepEqual(
    c.drain().map((j) => [j.seq, j.ending, j.delivery!.read!.queuedNs]),
    [[1100, 'read', 40 - 22]],
  );
});

test('GSO: each wire segment joins the latest packet that holds its bytes, and a packet ends once all went out', () => {
  const c = new Correlator({ netns: 5 });
  const data = { flags: 0x18, ifindex: 2 };
  const sent = (skb: number, t: number, seq: number, len: number) => {
    for (const [i, [hook, exit]] of (
      [
        [3, false],
        [3, true],
        [4, false],
        [4, true],
      ] as const
    ).entries()) {
      c.push(nf(hook, exit, { t: t + i, skb, seq, len, ...data }));
    }
    c.push(ev({ t: t + 4, point: Point.CONSUME_SKB, skb, seq, len, location: 'validate_xmit_skb', ...data }));
  };
  const wire = (skb: number, t: number, seq: number) =>
    c.push(ev({ t, point: Point.NET_DEV_START_XMIT, skb, seq, len: 1000, ...data }));
  sent(10, 10, 1000, 3000);
  wire(11, 20, 1000);
  sent(30, 30, 1000, 2000); // a retransmission of the first 2000 bytes while the first packet still waits
  wire(31, 40, 1000);
  wire(32, 41, 2000);
  wire(12, 50, 2000);
  wire(13, 51, 3000);
  c.finish();
  const all = c.drain();
  const [first, retransmitted] = all.filter((j) => j.segments);
  const segs = (p: typeof first) => p.segments!.map((id) => all.find((j) => j.id === id)!.seq);
  assert.deepEqual([first.len, segs(first)], [3000, [1000, 2000, 3000]]);
  assert.deepEqual([retransmitted.len, segs(retransmitted)], [2000, [1000, 2000]]);
  for (const p of [first, retransmitted]) assert.deepEqual([p.fate, p.ending, p.tcpdump], ['sent', 'segmented', true]);
});

test('a pure ACK and the first segment of the data after it share seq, ack and flags: the length tells them apart', () => {
  const c = new Correlator({ netns: 5 });
  const tcp = { flags: 0x10, seq: 5000, ack: 7, ifindex: 2 };
  c.push(nf(3, false, { t: 1, skb: 50, len: 0, ...tcp }));
  c.push(ev({ t: 2, point: Point.NET_DEV_START_XMIT, skb: 50, len: 0, ...tcp }));
  c.push(nf(3, false, { t: 10, skb: 60, len: 2000, ...tcp }));
  c.push(ev({ t: 11, point: Point.CONSUME_SKB, skb: 60, len: 2000, location: 'validate_xmit_skb', ...tcp }));
  c.push(ev({ t: 12, point: Point.NET_DEV_START_XMIT, skb: 50, len: 1000, ...tcp })); // at the ACK's address
  c.push(ev({ t: 13, point: Point.NET_DEV_START_XMIT, skb: 51, len: 1000, ...tcp, seq: 6000 }));
  c.finish();
  const all = c.drain();
  assert.deepEqual(
    all.find((j) => j.len === 0)!.steps.map((s) => s.point),
    ['netfilter', 'net_dev_start_xmit'],
  );
  const parent = all.find((j) => j.len === 2000)!;
  assert.deepEqual(
    parent.segments!.map((id) => all.find((j) => j.id === id)!.seq),
    [5000, 6000],
  );
});

test('journeys held back behind one still under way go out past maxHeld: memory stays bounded', () => {
  const c = new Correlator({ netns: 5, maxHeld: 3, readWaitNs: 1e12 });
  const udp = { proto: 17, flags: 0, len: 10, dport: 53 };
  // A datagram delivered and waiting for its read (which may never come, if events were lost).
  c.push(ev({ t: 1, skb: 1, ...udp }));
  c.push(nf(1, false, { t: 2, skb: 1, ...udp }));
  c.push(nf(1, true, { t: 3, skb: 1, ...udp }));
  const quick = (i: number) => {
    c.push(ev({ t: 10 + i, skb: 100 + i, ...udp, ipId: i }));
    c.push(
      ev({
        t: 10.5 + i,
        point: Point.KFREE_SKB,
        skb: 100 + i,
        ...udp,
        ipId: i,
        reasonName: 'NO_SOCKET',
        location: 'x',
      }),
    );
  };
  for (let i = 0; i < 3; i++) quick(i);
  assert.deepEqual(c.drain(), [], 'three held back for start order');
  quick(3);
  assert.deepEqual(
    c.drain().map((j) => j.ipId),
    [0, 1, 2, 3],
    'past maxHeld they go out',
  );
  assert.equal(c.activeCount, 1, 'the waiting one still waits');
});

test('read queues let go of packets settled without their read', () => {
  const c = new Correlator({ netns: 5, readWaitNs: 1000 });
  const udp = { proto: 17, flags: 0, len: 10, dport: 53 };
  for (let i = 0; i < 100; i++) {
    c.push(ev({ t: i, skb: 1 + i, ...udp, ipId: i }));
    c.push(nf(1, true, { t: i + 0.5, skb: 1 + i, ...udp, ipId: i }));
  }
  c.tick(2000); // their reads never came: settled
  assert.equal(c.activeCount, 0);
  c.tick(1e9); // and the queue that held them for reads is gone
  assert.equal((c as unknown as { udpQueues: Map<number, unknown> }).udpQueues.size, 0);
});
