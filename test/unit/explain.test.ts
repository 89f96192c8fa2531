// "What tcpdump shows, and why": each thing said once over the connections that show it, and who answered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { explain } from '../../src/report/explain.js';
import { connectionVerdict } from '../../src/report/story.js';
import type { FlowSummary, PacketGroup, Summary } from '../../src/report/summary.js';

function group(o: Partial<PacketGroup>): PacketGroup {
  return {
    direction: 'in',
    kind: 'S',
    fate: 'dropped',
    hook: 'LOCAL_IN',
    reason: 'NETFILTER_DROP',
    location: 'nft_do_chain',
    layer: 'netfilter',
    origin: null,
    count: 1,
    tcpdump: 1,
    tcpSaw: 0,
    answered: 0,
    replies: {},
    retransmits: 0,
    bytes: 0,
    read: 0,
    ...o,
  };
}

function flow(port: number, groups: PacketGroup[]): FlowSummary {
  const f: FlowSummary = {
    flow: `6 198.18.0.1:${port} 198.18.0.2:3306`,
    proto: 'tcp',
    a: `198.18.0.1:${port}`,
    b: '198.18.0.2:3306',
    packets: groups.reduce((n, g) => n + g.count, 0),
    ids: [],
    groups,
    states: [],
    socketStates: {},
    owner: null,
    synackRetransmits: 0,
    retransmits: 0,
    resetsSent: 0,
    resetsReceived: 0,
    verdict: '',
  };
  f.verdict = connectionVerdict(f);
  return f;
}

function summary(flows: FlowSummary[]): Summary {
  return {
    packets: flows.reduce((n, f) => n + f.packets, 0),
    byFate: { delivered: 0, sent: 0, forwarded: 0, dropped: 0, unfinished: 0 },
    drops: [],
    flows,
    counters: null,
    lostEvents: 0,
    events: 0,
    cutByTimeout: 0,
    incomplete: 0,
    evictedFlows: 0,
    durationNs: 1e9,
    stoppedBy: 'signal',
    unavailable: [],
  };
}

const ports = [40001, 40002, 40003, 40004, 40005, 40006, 40007, 40008, 40009];

test('SYNs dropped alike on nine connections: said once, counts summed, over 9 connections', () => {
  const s = summary(ports.map((p) => flow(p, [group({ count: 2, tcpdump: 2, retransmits: 1 })])));
  assert.deepEqual(explain(s), [
    'tcpdump shows 18 SYN arriving over 9 connections: it captures them at the device, before netfilter. ' +
      'They were dropped afterwards, at LOCAL_IN (NETFILTER_DROP). TCP never saw them, so it never answered.',
  ]);
});

test('a kernel without drop reasons (before 5.17): the hook alone, no empty brackets', () => {
  const s = summary([flow(40001, [group({ reason: null, location: 'nf_hook_slow' })])]);
  assert.deepEqual(explain(s), [
    'tcpdump shows 1 SYN arriving: it captures them at the device, before netfilter. ' +
      'They were dropped afterwards, at LOCAL_IN. TCP never saw them, so it never answered.',
  ]);
});

test('a connection alone says no "over"; drops at different places are said apart', () => {
  const s = summary([
    flow(40001, [group({ count: 3, tcpdump: 3 })]),
    flow(40002, [group({ hook: 'PRE_ROUTING', count: 2, tcpdump: 2 })]),
    flow(40003, [group({ hook: 'PRE_ROUTING', count: 1, tcpdump: 1 })]),
  ]);
  const said = explain(s);
  assert.equal(said.length, 2);
  assert.match(said[0]!, /^tcpdump shows 3 SYN arriving: .* at LOCAL_IN /);
  assert.match(said[1]!, /^tcpdump shows 3 SYN arriving over 2 connections: .* at PRE_ROUTING /);
});

test('a REJECT rule answered: the firewall answered for TCP, with what it sent; never "it never answered"', () => {
  const rejected = (p: number) =>
    flow(p, [
      group({ answered: 1 }),
      group({
        direction: 'out',
        kind: 'RA',
        fate: 'sent',
        hook: null,
        reason: null,
        location: null,
        layer: null,
        origin: 'netfilter',
      }),
    ]);
  const said = explain(summary(ports.slice(0, 3).map(rejected)));
  assert.deepEqual(said, [
    'tcpdump shows 3 SYN arriving over 3 connections: it captures them at the device, before netfilter. ' +
      'They were dropped afterwards, at LOCAL_IN (NETFILTER_DROP). ' +
      'TCP never saw them: the firewall answered each for it, with RST ×3 from a REJECT rule.',
  ]);
  // The connection's story says who sent the RST.
  assert.equal(rejected(40001).verdict, 'SYN dropped at LOCAL_IN; RST sent by a netfilter REJECT rule');
});

test('answered where the trace has no answer packet (lost, or filtered out): said all the same, by the drops', () => {
  const f = flow(40001, [group({ count: 3, tcpdump: 3, answered: 2 })]);
  assert.match(
    explain(summary([f]))[0]!,
    /TCP never saw them: the firewall answered 2 of them for it, with an RST or ICMP error from a REJECT rule\.$/,
  );
  assert.equal(f.verdict, 'SYN ×3, each dropped at LOCAL_IN, 2 of them answered by a netfilter REJECT rule');
});

test('SYN-ACKs dropped before the tap on two connections: said once', () => {
  const out = (p: number) =>
    flow(p, [
      group({
        fate: 'delivered',
        hook: null,
        reason: null,
        location: null,
        layer: null,
        count: 2,
        tcpdump: 2,
        tcpSaw: 2,
        replies: { SA: 2 },
      }),
      group({ direction: 'out', kind: 'SA', hook: 'LOCAL_OUT', count: 2, tcpdump: 0 }),
    ]);
  assert.deepEqual(explain(summary([out(40001), out(40002)])), [
    'tcpdump shows 4 SYN arriving over 2 connections, and TCP received every one: ' +
      'it answered each with a SYN-ACK from a request socket in SYN_RECV.',
    'tcpdump shows none of the 4 SYN-ACK sent by this host over 2 connections: they were dropped at LOCAL_OUT ' +
      '(NETFILTER_DROP), before the device where tcpdump captures.',
  ]);
});

test('SYNs an XDP program dropped: tcpdump shows none of them, and why', () => {
  const xdp = group({
    hook: null,
    reason: 'NOT_SPECIFIED',
    location: 'do_xdp_generic',
    layer: 'xdp',
    count: 3,
    tcpdump: 0,
  });
  assert.deepEqual(explain(summary([flow(40001, [xdp])])), [
    'tcpdump shows none of the 3 SYN that arrived: they were dropped in the xdp layer (NOT_SPECIFIED), ' +
      'before the point where tcpdump captures.',
  ]);
});

test('a connection says a SYN reached TCP only where TCP saw it', () => {
  const syn = (o: Partial<PacketGroup>) => group({ hook: null, reason: null, location: null, layer: null, ...o });
  assert.match(flow(1, [syn({ fate: 'delivered', tcpSaw: 1 })]).verdict, /^SYN reached TCP, not answered/);
  // Held in a queue (NFQUEUE's program never answered) or cut by time: not seen reaching TCP.
  assert.match(flow(1, [syn({ fate: 'unfinished', tcpSaw: 0 })]).verdict, /^SYN unfinished, not seen reaching TCP/);
  assert.match(flow(1, [syn({ fate: 'delivered', tcpSaw: 0 })]).verdict, /^SYN delivered to the stack, not seen/);
});
