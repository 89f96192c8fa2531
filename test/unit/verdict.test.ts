// The verdict on plain data: what the correlator saw of a packet's path and flow, and how it stopped.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { delivery, tcpAnswer } from '../../src/correlate/delivery.js';
import type { NamedEvent, PathSeen } from '../../src/correlate/packet.js';
import {
  noteTooBigTold,
  unnamedTcDrop,
  verdict,
  type EndEvent,
  type FlowFacts,
  type JourneySoFar,
} from '../../src/correlate/verdict.js';
import { endpoint } from '../../src/correlate/flows.js';
import type { Journey, Step } from '../../src/correlate/journey.js';
import { MTU_FROM_ROUTE, Point } from '../../src/trace/record.js';

const SYN = 0x02;
const PSH_ACK = 0x18;

const seen = (p: Partial<PathSeen> = {}): PathSeen => ({
  seenRx: false,
  seenXmit: false,
  localInExit: false,
  forward: false,
  nfHook: null,
  nfExited: false,
  sentReset: false,
  tcpSeen: false,
  groOnly: false,
  segmented: false,
  ...p,
});
/** Received, through PRE_ROUTING, and out of LOCAL_IN: the transport layer has it. */
const arrived = seen({ seenRx: true, nfHook: 'LOCAL_IN', nfExited: true, localInExit: true });
/** Received and inside a hook, not out of it. */
const inHook = (nfHook: PathSeen['nfHook']) => seen({ seenRx: true, nfHook });

const step = (point: string, t: number, p: Partial<Step> = {}): Step => ({ point, t, ...p });
/** An incoming TCP segment to 198.18.0.2:80, received at t 1, out of LOCAL_IN at t 5. */
const segment = (p: Partial<JourneySoFar> = {}): JourneySoFar => ({
  family: 4,
  proto: 6,
  flags: PSH_ACK,
  direction: 'in',
  start: 1,
  dst: '198.18.0.2',
  dport: 80,
  translated: undefined,
  seq: 1000,
  retransmit: 0,
  steps: [
    step('netif_receive_skb', 1),
    step('netfilter', 2, { hook: 'PRE_ROUTING', at: 'entry' }),
    step('netfilter', 3, { hook: 'PRE_ROUTING', at: 'exit' }),
    step('netfilter', 4, { hook: 'LOCAL_IN', at: 'entry' }),
    step('netfilter', 5, { hook: 'LOCAL_IN', at: 'exit' }),
  ],
  ...p,
});
const outgoing = (p: Partial<JourneySoFar> = {}) => segment({ direction: 'out', steps: [], ...p });
const flow = (p: Partial<FlowFacts> = {}): FlowFacts => ({
  lastAnswer: -Infinity,
  lastAnswerIcmp: null,
  replies: [],
  states: [],
  tooBigTold: null,
  ...p,
});
const kfree = (reasonName: string | null, location: string, t = 10): EndEvent => ({
  point: Point.KFREE_SKB,
  t,
  reason: 0,
  reasonName,
  location,
});
const consume = (location: string, t = 10): EndEvent => ({ point: Point.CONSUME_SKB, t, reason: 0, location });
/** A verdict without a drop. */
const ok = (fate: string, ending: string) => ({ fate, drop: null, ending });
const dropped = (drop: object) => ({ fate: 'dropped', drop, ending: 'freed' });
/** A state change of the socket at addr:port (as FlowTable.stateChange notes it). */
const state = (t: number, from: string, to: string, addr = '198.18.0.2', port = 80) => ({
  t,
  from,
  to,
  local: endpoint(addr, port, 4),
});

test('delivered: it left LOCAL_IN, however its observation ended', () => {
  assert.deepEqual(verdict(segment(), arrived, flow(), 'idle'), ok('delivered', 'left'));
  assert.deepEqual(verdict(segment(), arrived, flow(), 'silent'), ok('delivered', 'left'));
  assert.deepEqual(verdict(segment(), arrived, flow(), 'end'), ok('delivered', 'trace-ended'));
  assert.deepEqual(
    verdict(segment(), arrived, flow(), 'read', { point: Point.SKB_COPY_DATAGRAM, t: 9, reason: 0 }),
    ok('delivered', 'read'),
  );
  // Looped through lo or a veth pair in this namespace: sent, then delivered.
  assert.equal(verdict(segment(), { ...arrived, seenXmit: true }, flow(), 'idle').fate, 'delivered');
});

test('consume vs kfree: a consume is no drop, nor a kfree naming no reason once the transport layer had it', () => {
  assert.deepEqual(
    verdict(segment(), arrived, flow(), 'free', consume('tcp_rcv_established')),
    ok('delivered', 'freed'),
  );
  assert.deepEqual(
    verdict(segment(), arrived, flow(), 'free', kfree('NOT_SPECIFIED', 'tcp_v4_rcv')),
    ok('delivered', 'freed'),
  );
  // The same free before the transport layer had it is a drop.
  assert.deepEqual(verdict(segment(), inHook('LOCAL_IN'), flow(), 'free', kfree('NOT_SPECIFIED', 'tcp_v4_rcv')).drop, {
    layer: 'tcp',
    hook: 'LOCAL_IN',
    reason: 'NOT_SPECIFIED',
    location: 'tcp_v4_rcv',
  });
  // A reason that names a drop is one, after LOCAL_IN too.
  assert.deepEqual(
    verdict(segment(), arrived, flow(), 'free', kfree('NO_SOCKET', 'tcp_v4_rcv')),
    dropped({ layer: 'socket', hook: null, reason: 'NO_SOCKET', location: 'tcp_v4_rcv' }),
  );
  // Freed without a path out of the host: an incoming packet was delivered, an outgoing one sent.
  assert.equal(
    verdict(segment(), seen({ seenRx: true }), flow(), 'free', consume('skb_release_data')).fate,
    'delivered',
  );
  const leftLocalOut = seen({ nfHook: 'LOCAL_OUT', nfExited: true });
  assert.equal(verdict(outgoing(), leftLocalOut, flow(), 'free', consume('skb_release_data')).fate, 'sent');
});

test('no hooks, or none after PRE_ROUTING (trampolines): received is at the transport layer', () => {
  const tcpFree = kfree('NOT_SPECIFIED', 'tcp_v4_rcv');
  assert.equal(verdict(segment(), seen({ seenRx: true }), flow(), 'free', tcpFree).drop, null);
  const pastPreRouting = seen({ seenRx: true, nfHook: 'PRE_ROUTING', nfExited: true });
  assert.equal(verdict(segment(), pastPreRouting, flow(), 'free', tcpFree).drop, null);
  assert.equal(verdict(segment(), inHook('PRE_ROUTING'), flow(), 'free', tcpFree).fate, 'dropped');
});

test('a kernel without drop reasons (< 5.17): a kfree is a drop, except TCP freeing a packet it handled', () => {
  assert.deepEqual(verdict(segment(), arrived, flow(), 'free', kfree(null, 'tcp_v4_rcv')), ok('delivered', 'freed'));
  assert.deepEqual(verdict(segment(), inHook('LOCAL_IN'), flow(), 'free', kfree(null, 'nf_hook_slow')).drop, {
    layer: 'netfilter',
    hook: 'LOCAL_IN',
    reason: null,
    location: 'nf_hook_slow',
    answered: false,
  });
  // ...and TCP's free after it answered with a reset: no socket.
  assert.deepEqual(
    verdict(segment(), { ...arrived, sentReset: true }, flow(), 'free', kfree(null, 'tcp_v4_rcv')).drop,
    { layer: 'tcp', hook: null, reason: null, location: 'tcp_v4_rcv' },
  );
});

test('TCP free after a reset: a drop, with the socket state when one was seen (a time-wait socket refusing data)', () => {
  const reset = { ...arrived, sentReset: true };
  const free = kfree('NOT_SPECIFIED', 'tcp_v4_rcv');
  const v = verdict(segment(), reset, flow({ states: [state(0, 'FIN_WAIT2', 'CLOSE')] }), 'free', free);
  const tcpState = { state: 'CLOSE', from: 'FIN_WAIT2', then: [] };
  assert.deepEqual(v, dropped({ layer: 'tcp', hook: null, reason: 'NOT_SPECIFIED', location: 'tcp_v4_rcv', tcpState }));
  // No reason and no state seen: nothing to add.
  assert.equal(verdict(segment(), reset, flow(), 'free', free).drop!.tcpState, undefined);
  // Without the reset the same free is TCP done with it.
  assert.equal(verdict(segment(), arrived, flow(), 'free', free).drop, null);
});

test("a TCP drop whose meaning depends on the state notes its socket's: when TCP got it, and the changes after", () => {
  const states = [
    state(0, 'ESTABLISHED', 'FIN_WAIT1'),
    state(5, 'FIN_WAIT1', 'FIN_WAIT2'), // at the instant TCP got it: before
    state(7, 'FIN_WAIT2', 'CLOSE'),
    state(8, 'ESTABLISHED', 'CLOSE', '198.18.0.1', 40000), // the other end's socket, on this host too
    state(20, 'CLOSE', 'LISTEN'),
  ];
  const drop = (reason: string, f = flow({ states }), p = arrived, j = segment()) =>
    verdict(j, p, f, 'free', kfree(reason, 'tcp_v4_do_rcv')).drop!;
  // TCP got it at t 5 (LOCAL_IN's exit), dropped it at t 10: the change at t 20 came after it.
  assert.deepEqual(drop('TCP_ABORT_ON_DATA').tcpState, { state: 'FIN_WAIT2', from: 'FIN_WAIT1', then: ['CLOSE'] });
  assert.equal(drop('TCP_CSUM').tcpState, undefined, 'a checksum says nothing of the state');
  // Nothing seen before it came: the first change after tells the state it left.
  const later = flow({ states: [state(7, 'ESTABLISHED', 'CLOSE')] });
  assert.deepEqual(drop('TCP_CLOSE', later).tcpState, { state: 'ESTABLISHED', from: null, then: ['CLOSE'] });
  // Nothing seen at all: unknown, not guessed.
  assert.deepEqual(drop('TCP_OLD_DATA', flow()).tcpState, { state: null, from: null, then: [] });
  // Forwarded TCP met no local socket.
  const fwd = seen({ seenRx: true, forward: true, nfHook: 'FORWARD', nfExited: true });
  assert.equal(drop('TCP_FLAGS', flow({ states }), fwd, segment({ direction: 'forward' })).tcpState, undefined);
});

test('NAT: the socket state is that of the destination after DNAT', () => {
  const states = [state(0, 'ESTABLISHED', 'CLOSE', '10.0.0.5', 8080), state(0, 'FIN_WAIT2', 'CLOSE')];
  const natted = segment({ translated: { src: '198.18.0.1', dst: '10.0.0.5', sport: 40000, dport: 8080 } });
  const drop = verdict(natted, arrived, flow({ states }), 'free', kfree('TCP_FLAGS', 'tcp_v4_do_rcv')).drop!;
  assert.deepEqual(drop.tcpState, { state: 'CLOSE', from: 'ESTABLISHED', then: [] });
});

test('netfilter drops: the hook it was in, or left just before; answered when an answer began since it entered', () => {
  const nfDrop = kfree('NETFILTER_DROP', 'nft_do_chain');
  assert.deepEqual(
    verdict(segment(), inHook('LOCAL_IN'), flow({ lastAnswer: 4 }), 'free', nfDrop),
    dropped({
      layer: 'netfilter',
      hook: 'LOCAL_IN',
      reason: 'NETFILTER_DROP',
      location: 'nft_do_chain',
      answered: true,
    }),
  );
  // The answer began before it entered LOCAL_IN (t 4): another packet's.
  assert.equal(verdict(segment(), inHook('LOCAL_IN'), flow({ lastAnswer: 3 }), 'free', nfDrop).drop!.answered, false);
  // Out of the hook's exit probe, a netfilter drop is still that hook's; another layer's is in no hook.
  const out = seen({ nfHook: 'LOCAL_OUT', nfExited: true });
  const hook = (free: EndEvent) => verdict(outgoing(), out, flow(), 'free', free).drop!.hook;
  assert.equal(hook(kfree('NETFILTER_DROP', 'nf_hook_slow')), 'LOCAL_OUT');
  assert.equal(hook(kfree('IP_OUTNOROUTES', 'ip_route_output_flow')), null);
});

test('a SYN the listener consumed with no SYN-ACK or RST since it came: dropped, an inferred listen overflow', () => {
  const syn = segment({ flags: SYN });
  const consumed = consume('tcp_rcv_state_process');
  assert.deepEqual(
    verdict(syn, arrived, flow({ replies: [{ t: 0, kind: 'SA' }] }), 'free', consumed),
    dropped({
      layer: 'tcp',
      hook: null,
      reason: 'TCP_LISTEN_OVERFLOW',
      location: 'tcp_rcv_state_process',
      inferred: 'the listener consumed the SYN without answering (accept or SYN queue full)',
    }),
  );
  // Answered (the SYN-ACK's journey starts before the SYN is consumed): delivered.
  assert.deepEqual(
    verdict(syn, arrived, flow({ replies: [{ t: 8, kind: 'SA' }] }), 'free', consumed),
    ok('delivered', 'freed'),
  );
  // Not a SYN alone, or consumed elsewhere: delivered.
  assert.equal(verdict(segment({ flags: SYN | 0x10 }), arrived, flow(), 'free', consumed).fate, 'delivered');
  assert.equal(verdict(syn, arrived, flow(), 'free', consume('tcp_v4_rcv')).fate, 'delivered');
});

test('forwarded and sent: it left a device', () => {
  const routed = seen({ seenRx: true, seenXmit: true, forward: true, nfHook: 'POST_ROUTING', nfExited: true });
  assert.deepEqual(verdict(segment({ direction: 'forward' }), routed, flow(), 'idle'), ok('forwarded', 'left'));
  const sent = seen({ seenXmit: true, nfHook: 'POST_ROUTING', nfExited: true });
  assert.deepEqual(verdict(outgoing(), sent, flow(), 'idle'), ok('sent', 'left'));
  assert.deepEqual(verdict(outgoing(), sent, flow(), 'end'), ok('sent', 'trace-ended'));
});

test('GSO: a packet cut into segments, all of which went out, was sent and ended segmented', () => {
  const cut = seen({ seenXmit: true, segmented: true, nfHook: 'POST_ROUTING', nfExited: true });
  assert.deepEqual(verdict(outgoing(), cut, flow(), 'free'), ok('sent', 'segmented'));
  assert.deepEqual(verdict(outgoing(), cut, flow(), 'idle'), ok('sent', 'segmented'));
  // No segment seen going out: unfinished, cut by time.
  const waiting = seen({ segmented: true, nfHook: 'POST_ROUTING', nfExited: true });
  assert.deepEqual(verdict(outgoing(), waiting, flow(), 'idle'), ok('unfinished', 'timeout'));
});

test('unfinished: stopped mid-path; seen by GRO only, it went up merged into another packet', () => {
  assert.deepEqual(verdict(segment(), inHook('PRE_ROUTING'), flow(), 'idle'), ok('unfinished', 'timeout'));
  assert.deepEqual(verdict(segment(), inHook('PRE_ROUTING'), flow(), 'silent'), ok('unfinished', 'timeout'));
  assert.deepEqual(verdict(segment(), inHook('PRE_ROUTING'), flow(), 'end'), ok('unfinished', 'trace-ended'));
  const gro = seen({ groOnly: true });
  assert.deepEqual(verdict(segment(), gro, flow(), 'idle'), ok('unfinished', 'merged'));
  assert.deepEqual(verdict(segment(), gro, flow(), 'end'), ok('unfinished', 'trace-ended'));
});

test('delivery and TCP answer: the socket it found, its read, and what TCP answered a SYN', () => {
  const j = { ...segment(), flags: SYN } as Journey;
  const noSocket = { layer: 'socket', hook: null, reason: 'NO_SOCKET', location: 'tcp_v4_rcv' } as const;
  assert.deepEqual(delivery(j, arrived, true, 'dropped', noSocket), { socket: false, read: null });
  assert.deepEqual(delivery(j, arrived, true, 'delivered', null), { socket: true, read: null });
  const read = { point: Point.SKB_COPY_DATAGRAM, t: 25, pid: 7, comm: 'app', aux: 100 } as NamedEvent;
  // Read 20 ns after it left LOCAL_IN.
  assert.deepEqual(delivery(j, arrived, true, 'delivered', null, read)!.read, {
    pid: 7,
    comm: 'app',
    bytes: 100,
    queuedNs: 20,
  });
  assert.equal(delivery(j, inHook('LOCAL_IN'), false, 'unfinished', null), undefined, 'never reached a socket');
  const replies = [
    { t: 0, kind: 'R' },
    { t: 6, kind: 'SA' },
  ]; // the first one since it came
  assert.deepEqual(tcpAnswer(j, arrived, true, null, replies), { saw: true, reply: 'SA' });
  assert.deepEqual(tcpAnswer(j, { ...arrived, sentReset: true }, true, noSocket, []), { saw: true, reply: 'R' });
  const nfDrop = { layer: 'netfilter', hook: 'LOCAL_IN', reason: 'NETFILTER_DROP', location: 'nft_do_chain' } as const;
  assert.deepEqual(tcpAnswer(j, inHook('LOCAL_IN'), false, nfDrop, []), { saw: false, reply: null });
});

test('TCP saw it only where a TCP point tells so; it did not where it died below TCP; else nothing tells', () => {
  const ack = { ...segment(), flags: 0x10 } as Journey;
  const syn = { ...segment(), flags: SYN } as Journey;
  const rx = seen({ seenRx: true });
  // Dropped at tc ingress and by generic XDP, with no netfilter hook in between: received, never in TCP.
  const tc = { layer: 'tc', hook: null, reason: 'TC_INGRESS', location: '__netif_receive_skb_core' } as const;
  assert.deepEqual(tcpAnswer(syn, rx, false, tc, []), { saw: false, reply: null });
  const xdp = { layer: 'xdp', hook: null, reason: 'NOT_SPECIFIED', location: 'do_xdp_generic' } as const;
  assert.deepEqual(tcpAnswer(syn, rx, false, xdp, []), { saw: false, reply: null });
  // Dropped by IP after LOCAL_IN (no protocol handler): not TCP's either.
  const ip = { layer: 'ip', hook: null, reason: 'IP_NOPROTO', location: 'ip_local_deliver_finish' } as const;
  assert.deepEqual(tcpAnswer(syn, arrived, false, ip, []), { saw: false, reply: null });
  // Freed by TCP (consumed by the listener; freed after its reset): TCP had it.
  assert.deepEqual(tcpAnswer(syn, { ...arrived, tcpSeen: true }, true, null, []), { saw: true, reply: null });
  // An ACK out of LOCAL_IN and freed silently (TCP frees pure ACKs without a tracepoint): nothing tells.
  assert.deepEqual(tcpAnswer(ack, arrived, true, null, []), { saw: null, reply: null });
  // A SYN out of LOCAL_IN that TCP answered (consume_skb names no function before 6.3): its answer tells.
  assert.deepEqual(tcpAnswer(syn, arrived, true, null, [{ t: 6, kind: 'SA' }]), { saw: true, reply: 'SA' });
});

test('no reason named (before 5.17): the one answer only one path of the freeing function sends tells it', () => {
  const udp = segment({ proto: 17, flags: 0 });
  const portUnreachable = flow({ lastAnswer: 6, lastAnswerIcmp: { type: 3, code: 3 } });
  assert.deepEqual(
    verdict(udp, arrived, portUnreachable, 'free', kfree(null, '__udp4_lib_rcv')),
    dropped({
      layer: 'socket',
      hook: null,
      reason: 'NO_SOCKET',
      location: '__udp4_lib_rcv',
      inferred: 'this host answered with ICMP port unreachable, which UDP sends only for a datagram no socket takes',
    }),
  );
  // IPv6 numbers its errors otherwise: port unreachable is type 1 code 4; type 3 code 3 is nothing of the sort.
  const udp6 = segment({ proto: 17, flags: 0, family: 6 });
  const v6 = (icmp: { type: number; code: number }) =>
    verdict(udp6, arrived, flow({ lastAnswer: 6, lastAnswerIcmp: icmp }), 'free', kfree(null, '__udp6_lib_rcv')).drop!;
  assert.equal(v6({ type: 1, code: 4 }).reason, 'NO_SOCKET');
  assert.deepEqual([v6({ type: 3, code: 3 }).reason, v6({ type: 3, code: 3 }).inferred], [null, undefined]);
  // An answer begun before this packet came is another packet's: nothing is told.
  const earlier = flow({ lastAnswer: 0, lastAnswerIcmp: { type: 3, code: 3 } });
  assert.deepEqual(verdict(udp, arrived, earlier, 'free', kfree(null, '__udp4_lib_rcv')).drop, {
    layer: 'udp',
    hook: null,
    reason: null,
    location: '__udp4_lib_rcv',
  });
  // Where the kernel named a reason, its own stands.
  assert.equal(
    verdict(udp, arrived, portUnreachable, 'free', kfree('UDP_CSUM', '__udp4_lib_rcv')).drop!.inferred,
    undefined,
  );

  // Forwarding: time exceeded is the TTL; net unreachable from ip_error is no route (in, or out for ip6's own).
  const fwd = seen({ seenRx: true, forward: true, nfHook: 'PRE_ROUTING', nfExited: true });
  const told = (j: JourneySoFar, p: PathSeen, icmp: { type: number; code: number } | null, location: string) => {
    const d = verdict(j, p, flow({ lastAnswer: 6, lastAnswerIcmp: icmp }), 'free', kfree(null, location)).drop!;
    return [d.layer, d.reason, d.inferred !== undefined];
  };
  assert.deepEqual(told(segment({ direction: 'forward' }), fwd, { type: 11, code: 0 }, 'ip_forward'), [
    'ip',
    'IP_INHDR',
    true,
  ]);
  assert.deepEqual(told(segment({ direction: 'forward', family: 6 }), fwd, { type: 3, code: 0 }, 'ip6_forward'), [
    'ip',
    'IP_INHDR',
    true,
  ]);
  assert.deepEqual(told(segment(), inHook('PRE_ROUTING'), { type: 3, code: 0 }, 'ip_error'), [
    'ip',
    'IP_INNOROUTES',
    true,
  ]);
  assert.deepEqual(told(outgoing({ family: 6 }), seen(), { type: 1, code: 0 }, 'ip6_pkt_discard_out'), [
    'ip',
    'IP_OUTNOROUTES',
    true,
  ]);
  // A prohibit route's answer (administratively prohibited) is not "no route".
  assert.equal(told(segment(), inHook('PRE_ROUTING'), { type: 3, code: 13 }, 'ip_error')[1], null);

  // TCP: a reset to a SYN from tcp_v4_rcv is no socket; to another segment it may be a TIME_WAIT socket's.
  // Before 6.10 tcp_send_reset is silent for both (no full socket): the reset begun in the flow tells it was sent.
  const reset = arrived;
  assert.deepEqual(told(segment({ flags: SYN }), seen({ ...arrived, sentReset: true }), null, 'tcp_v4_rcv'), [
    'socket',
    'NO_SOCKET',
    true,
  ]);
  // Without a reset, TCP's free of a segment it handled is no drop (before 5.17 TCP frees them so).
  assert.equal(verdict(segment(), arrived, flow(), 'free', kfree(null, 'tcp_v4_rcv')).fate, 'delivered');
  assert.deepEqual(told(segment({ flags: SYN }), reset, null, 'tcp_v4_rcv'), ['socket', 'NO_SOCKET', true]);
  assert.deepEqual(told(segment(), reset, null, 'tcp_v4_rcv'), ['tcp', null, false]);
  // An ICMP answer to a SYN tells nothing of TCP.
  assert.deepEqual(
    told(segment({ flags: SYN }), seen({ ...arrived, sentReset: true }), { type: 3, code: 3 }, 'tcp_v4_rcv'),
    ['tcp', null, false],
  );
});

test('before the kernel named tc drops: a free by the device core where only a tc filter frees the packet', () => {
  const rx = seen({ seenRx: true });
  const tx = seen({ nfHook: 'POST_ROUTING', nfExited: true });
  assert.match(unnamedTcDrop(segment(), rx, '__netif_receive_skb_core') ?? '', /tc ingress filter's drop/);
  assert.match(unnamedTcDrop(outgoing(), tx, '__dev_queue_xmit') ?? '', /tc egress filter's drop/);
  // Elsewhere, or not yet received, or already sent: not told.
  assert.equal(unnamedTcDrop(segment(), seen(), '__netif_receive_skb_core'), null);
  assert.equal(unnamedTcDrop(segment(), rx, 'ip_rcv_core'), null);
  assert.equal(unnamedTcDrop(outgoing(), seen({ seenXmit: true }), '__dev_queue_xmit'), null);
  // The verdict: a tc drop, the reason left as the kernel gave it, what told it said.
  const v = verdict(segment(), rx, flow(), 'free', kfree(null, '__netif_receive_skb_core'));
  assert.deepEqual([v.drop?.layer, v.drop?.reason], ['tc', null]);
  assert.match(v.drop?.inferred ?? '', /^freed by __netif_receive_skb_core after the capture tap/);
});

// A packet too big for its way out (PKT_TOO_BIG): its way out read at the drop, the ICMP error sent with it.
const received = seen({ seenRx: true, nfHook: 'PRE_ROUTING', nfExited: true });
/** The ICMP error this host began at t 5, while the packet was in the stack. */
const answered = (type: number, code: number, mtu?: number) =>
  flow({ lastAnswer: 5, lastAnswerIcmp: { type, code, ...(mtu && { mtu }) } });
/** A kfree with the way out read there (bpf/record.h): device 3, MTU 1280 (aux), length 1452. */
const tooBigFree = (reasonName: string | null, location: string, way: Partial<EndEvent> = {}): EndEvent => ({
  ...kfree(reasonName, location),
  ifindexOut: 3,
  aux: 1280,
  ipLen: 1452,
  ...way,
});

test('PKT_TOO_BIG named at ip_forward: the size, the MTU from the ICMP error sent with it, the device, told', () => {
  const d = verdict(segment(), received, answered(3, 4, 1280), 'free', tooBigFree('PKT_TOO_BIG', 'ip_forward')).drop!;
  assert.deepEqual([d.layer, d.reason, d.inferred], ['ip', 'PKT_TOO_BIG', undefined]);
  assert.deepEqual(d.tooBig, {
    size: 1452,
    mtu: 1280,
    mtuFrom: 'icmp',
    routeMtu: null,
    outDev: 3,
    told: true,
    resentAfterTold: 0,
  });
  // No ICMP error seen (rate-limited): the MTU read at the drop, the device's or the route's metric.
  const quiet = verdict(segment(), received, flow(), 'free', tooBigFree('PKT_TOO_BIG', 'ip_forward')).drop!.tooBig!;
  assert.deepEqual([quiet.mtu, quiet.mtuFrom, quiet.told], [1280, 'device', false]);
  const metric = tooBigFree('PKT_TOO_BIG', 'ip_forward', { aux: (MTU_FROM_ROUTE | 1300) >>> 0 });
  const byRoute = verdict(segment(), received, flow(), 'free', metric).drop!.tooBig!;
  assert.deepEqual([byRoute.mtu, byRoute.mtuFrom, byRoute.routeMtu], [1300, 'route', 1300]);
  // A reading that would not have refused the packet is not the MTU that did: unknown, not a wrong number.
  const bigger = tooBigFree('PKT_TOO_BIG', 'ip_forward', { aux: 1500, ipLen: 1452 });
  assert.deepEqual(verdict(segment(), received, flow(), 'free', bigger).drop!.tooBig!.mtu, null);
  // An answer of another kind (a reset, a time exceeded) tells nothing of the MTU.
  const ttl = verdict(segment(), received, answered(11, 0), 'free', tooBigFree('PKT_TOO_BIG', 'ip_forward')).drop!;
  assert.deepEqual([ttl.tooBig!.told, ttl.tooBig!.mtuFrom], [false, 'device']);
});

test('no reason named: the ICMP error sent with it tells PKT_TOO_BIG, forwarded (< 5.18) or sent by this host', () => {
  const v4 = verdict(segment(), received, answered(3, 4, 1280), 'free', tooBigFree(null, 'ip_forward')).drop!;
  assert.equal(v4.reason, 'PKT_TOO_BIG');
  assert.equal(
    v4.inferred,
    'this host sent ICMP fragmentation needed (MTU 1280) from ip_forward, which does so only for a packet bigger than the MTU of its way out',
  );
  assert.equal(v4.tooBig!.mtu, 1280);
  // IPv6 numbers it otherwise: packet too big is type 2; type 3 is time exceeded.
  const six = segment({ family: 6, dst: 'fd00:198:18:2::2' });
  assert.equal(
    verdict(six, received, answered(2, 0, 1280), 'free', tooBigFree(null, 'ip6_forward')).drop!.reason,
    'PKT_TOO_BIG',
  );
  assert.equal(verdict(six, received, answered(3, 4), 'free', tooBigFree(null, 'ip6_forward')).drop!.reason, null);
  // Fragmentation refusing a packet this host sent names no reason on any kernel: NOT_SPECIFIED, told by the
  // ICMP error to its own socket.
  const out = segment({ direction: 'out', steps: [] });
  const sent = verdict(
    out,
    { ...received, seenRx: false },
    answered(3, 4, 1280),
    'free',
    tooBigFree('NOT_SPECIFIED', 'ip_fragment'),
  ).drop!;
  assert.deepEqual([sent.reason, sent.layer], ['PKT_TOO_BIG', 'ip']);
  assert.match(sent.inferred!, /from ip_fragment/);
  // Elsewhere, or without that answer, NOT_SPECIFIED stays as the kernel said.
  const noAnswer = verdict(out, received, flow(), 'free', tooBigFree('NOT_SPECIFIED', 'ip_fragment')).drop!;
  assert.deepEqual([noAnswer.reason, noAnswer.tooBig], ['NOT_SPECIFIED', undefined]);
  const elsewhere = verdict(
    out,
    received,
    answered(3, 4, 1280),
    'free',
    tooBigFree('NOT_SPECIFIED', 'ip_finish_output2'),
  ).drop!;
  assert.equal(elsewhere.reason, 'NOT_SPECIFIED');
  // An answer begun before this packet came is another packet's.
  const earlier = flow({ lastAnswer: 0, lastAnswerIcmp: { type: 3, code: 4, mtu: 1280 } });
  assert.equal(verdict(segment(), received, earlier, 'free', tooBigFree(null, 'ip_forward')).drop!.reason, null);
});

test('a path MTU black hole: the same segment, sent again after the sender was told, is refused again', () => {
  const f = answered(3, 4, 1280);
  const first = segment();
  const d1 = verdict(first, received, f, 'free', tooBigFree('PKT_TOO_BIG', 'ip_forward')).drop!;
  assert.equal(d1.tooBig!.resentAfterTold, 0);
  noteTooBigTold(f, first, d1.tooBig!);
  const again = segment({ start: 200, retransmit: 1 });
  f.lastAnswer = 205;
  const d2 = verdict(again, received, f, 'free', tooBigFree('PKT_TOO_BIG', 'ip_forward')).drop!;
  assert.equal(d2.tooBig!.resentAfterTold, 1);
  noteTooBigTold(f, again, d2.tooBig!);
  // The ICMP errors rate-limited by then: not told this time, still the same black hole.
  const third = segment({ start: 400, retransmit: 2 });
  const d3 = verdict(third, received, f, 'free', tooBigFree('PKT_TOO_BIG', 'ip_forward')).drop!;
  assert.deepEqual([d3.tooBig!.told, d3.tooBig!.resentAfterTold], [false, 2]);
  // Sent again smaller (the sender learnt the MTU), or another segment: no black hole.
  const smaller = verdict(again, received, f, 'free', tooBigFree('PKT_TOO_BIG', 'ip_forward', { ipLen: 1300 })).drop!;
  assert.equal(smaller.tooBig!.resentAfterTold, 0);
  const other = verdict(
    segment({ seq: 2400, retransmit: 1 }),
    received,
    f,
    'free',
    tooBigFree('PKT_TOO_BIG', 'ip_forward'),
  );
  assert.equal(other.drop!.tooBig!.resentAfterTold, 0);
});
