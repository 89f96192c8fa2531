// Every drop reason in words: each of the newest kernel's reasons (the fixture; and this machine's, read from
// its BTF) has a layer and a sentence; context refines the terse ones; an unknown one still reads sensibly.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { dropLayer } from '../../src/correlate/classify.js';
import { NOT_REASONS, REASONS, reasonText, TCP_STATE_REASONS } from '../../src/correlate/drop-reasons.js';
import { dropAdvice, explainDrop } from '../../src/report/reasons.js';
import { native } from '../../src/trace/native.js';
import { FIXTURES } from '../helpers/paths.js';

const newest = readFileSync(path.join(FIXTURES, 'drop-reasons-6.18.txt'), 'utf8')
  .split('\n')
  .filter((l) => l && !l.startsWith('#'));

function uncovered(reasons: string[]): string[] {
  return reasons.filter((r) => !NOT_REASONS.has(r) && !REASONS[r]);
}

test('every reason of Linux 6.18 has a sentence and a layer of its own', () => {
  assert.ok(newest.length > 120, `${newest.length} reasons in the fixture`);
  assert.deepEqual(uncovered(newest), []);
  for (const r of newest.filter((x) => !NOT_REASONS.has(x))) {
    assert.ok(REASONS[r].text.length > 10 && !REASONS[r].text.endsWith('.'), r);
    if (r !== 'NOT_SPECIFIED') assert.equal(dropLayer(r, 'somewhere_unknown'), REASONS[r].layer, r);
  }
});

test("this machine's kernel: every reason its BTF names is in the table", (t) => {
  let names: string[];
  try {
    names = Object.keys(native().kernelEnum('skb_drop_reason')).map((k) => k.replace(/^SKB_DROP_REASON_/, ''));
  } catch (e) {
    t.skip(`cannot read this kernel's BTF: ${(e as Error).message}`);
    return;
  }
  if (!names.length) {
    t.skip('this kernel has no enum skb_drop_reason (Linux < 5.17)');
    return;
  }
  assert.deepEqual(uncovered(names), []);
});

test('context: a TTL that ran out while forwarding, no reason at all, NOT_SPECIFIED, a reason newer than the table', () => {
  assert.equal(
    explainDrop({ reason: 'IP_INHDR', location: 'ip_forward', layer: 'ip' }),
    'its TTL (hop limit) ran out while it was forwarded: this host answers with ICMP time exceeded',
  );
  assert.equal(
    explainDrop({ reason: 'IP_INHDR', location: 'ip6_forward', layer: 'ip' }).startsWith('its TTL (hop limit) ran out'),
    true,
  );
  assert.match(explainDrop({ reason: 'IP_INHDR', location: 'ip_rcv_core', layer: 'ip' }), /^its IP header is invalid/);
  assert.equal(
    explainDrop({ reason: null, location: 'nf_hook_slow', layer: 'netfilter' }),
    'a netfilter rule (iptables or nftables) dropped it (nf_hook_slow); this kernel names no drop reasons (Linux < 5.17)',
  );
  assert.equal(
    explainDrop({ reason: 'NOT_SPECIFIED', location: 'veth_xmit', layer: 'device' }),
    'its device dropped it (veth_xmit), naming no reason',
  );
  assert.equal(
    reasonText('TCP_SOMETHING_NEW'),
    "the kernel's reason TCP_SOMETHING_NEW, which pathtrace has no words for yet",
  );
  assert.equal(dropLayer('TCP_SOMETHING_NEW', 'x'), 'tcp', 'its layer by the naming rules');
  assert.match(
    explainDrop({ reason: 'NO_SOCKET', location: 'tcp_v4_rcv', layer: 'socket' }),
    /^no socket was bound to its destination port/,
  );
});

test("advice: the commands that show the cause, with this packet's values and its namespace", () => {
  const c = {
    proto: 'tcp',
    src: '198.18.0.1',
    dst: '198.18.0.2',
    sport: 40000,
    dport: 3306,
    dev: 'eth0',
    prefix: 'ip netns exec srv ',
  };
  assert.deepEqual(dropAdvice({ reason: 'NO_SOCKET', location: 'tcp_v4_rcv' }, c), [
    "ip netns exec srv ss -tlnp 'sport = :3306'",
  ]);
  assert.deepEqual(dropAdvice({ reason: 'NO_SOCKET', location: '__udp4_lib_rcv' }, { ...c, proto: 'udp', dport: 53 }), [
    "ip netns exec srv ss -ulnp 'sport = :53'",
  ]);
  assert.deepEqual(
    dropAdvice({ reason: 'TCP_LISTEN_OVERFLOW', location: 'tcp_rcv_state_process' }, c)[1],
    'ip netns exec srv sysctl net.core.somaxconn',
  );
  const lookup =
    "ip netns exec srv ip route get 198.18.0.2 from 198.18.0.1 iif eth0 (the kernel's lookup for it: an error is the refusal)";
  const rpFilter = 'ip netns exec srv sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.eth0.rp_filter';
  assert.deepEqual(dropAdvice({ reason: 'IP_RPFILTER', location: 'ip_rcv_finish_core' }, c), [rpFilter, lookup]);
  assert.deepEqual(dropAdvice({ reason: 'IP_INNOROUTES', location: 'ip_error' }, c), [lookup]);
  assert.deepEqual(dropAdvice({ reason: 'IP_OUTNOROUTES', location: 'ip_route_output_flow' }, c), [
    'ip netns exec srv ip route get 198.18.0.2',
  ]);
  // Before 5.17, the input route's refusals are freed unnamed in ip_rcv_finish: the same two tell.
  assert.deepEqual(dropAdvice({ reason: null, location: 'ip_rcv_finish' }, c), [lookup, rpFilter]);
  assert.deepEqual(dropAdvice({ reason: 'QDISC_DROP', location: '__dev_queue_xmit' }, { ...c, prefix: '' }), [
    'tc -s qdisc show dev eth0',
  ]);
  assert.deepEqual(dropAdvice({ reason: 'NEIGH_FAILED', location: 'neigh_invalidate' }, c), [
    'ip netns exec srv ip neigh show dev eth0',
  ]);
  assert.deepEqual(
    dropAdvice({ reason: 'NETFILTER_DROP', location: 'nft_do_chain', attribution: {} }, c),
    [],
    'the rule lines say what to inspect',
  );
  assert.deepEqual(
    dropAdvice({ reason: 'NETFILTER_DROP', location: 'nft_do_chain' }, c)[0],
    'ip netns exec srv nft list ruleset',
  );
  assert.deepEqual(
    dropAdvice({ reason: 'TCP_OLD_DATA', location: 'tcp_validate_incoming' }, c),
    [],
    'nothing to run for a duplicate',
  );
  assert.deepEqual(dropAdvice({ reason: 'IP_INHDR', location: 'ip_forward' }, { ...c, dst: 'fd00::2' }), [
    'ip netns exec srv ip -6 route get fd00::2 (a loop between routers also exhausts the TTL)',
  ]);
});

// TCP drops and the state of the socket the packet came to (Drop.tcpState, from the state changes seen).
const tcp = (reason: string, state: string | null, from: string | null = null, then: string[] = []) =>
  explainDrop({ reason, location: 'tcp_v4_do_rcv', layer: 'tcp', tcpState: { state, from, then } });

test('TCP state: data after this side closed, in FIN_WAIT2, which the reset then closed', () => {
  assert.equal(
    tcp('TCP_ABORT_ON_DATA', 'FIN_WAIT2', 'FIN_WAIT1', ['CLOSE']),
    'data came for a socket its application had closed: the connection was aborted with a reset; ' +
      'its socket was in FIN_WAIT2 (this side had closed and the peer had acknowledged its FIN), and went to CLOSE before the drop: ' +
      'the peer still sent data after the application had closed the socket (or shut down reading), and with no one to read it TCP resets the connection (RFC 1122)',
  );
});

test('TCP state: a segment after the connection closed meets the listener; after an active close, TIME_WAIT is named as what the kernel normally keeps', () => {
  const gone = tcp('TCP_FLAGS', 'CLOSE', 'LAST_ACK');
  assert.match(
    gone,
    /; its connection's socket had closed \(LAST_ACK>CLOSE\): a listening socket on its port got it, and a listener takes only a SYN \(a segment with ACK gets a reset\)$/,
  );
  const tw = tcp('TCP_FLAGS', 'CLOSE', 'FIN_WAIT2');
  assert.match(
    tw,
    /; its socket had gone from FIN_WAIT2 to CLOSE \(normally a time-wait socket then takes over the connection, shown by ss as TIME-WAIT or FIN-WAIT-2, which no state change reports\): a listening socket/,
  );
  assert.match(
    tcp('TCP_FLAGS', 'CLOSE', 'FIN_WAIT1'),
    /its connection's socket had closed \(FIN_WAIT1>CLOSE\)/,
    'FIN_WAIT1>CLOSE is an abort, not a hand-over',
  );
  assert.doesNotMatch(tw, /its socket was in TIME_WAIT/, 'the tracepoint never reports TIME_WAIT: not stated as seen');
  assert.match(
    tcp('TCP_FLAGS', 'LISTEN'),
    /; it came to a listening socket \(LISTEN\): a listening socket takes only a SYN/,
  );
});

test('TCP state: TCP_FLAGS in a synchronized connection and in SYN_SENT', () => {
  assert.match(
    tcp('TCP_FLAGS', 'ESTABLISHED', 'SYN_RECV'),
    /; its connection was ESTABLISHED, where every segment must carry ACK, RST or SYN, and it had none of them$/,
  );
  assert.match(
    tcp('TCP_FLAGS', 'SYN_SENT', 'CLOSE'),
    /its socket was in SYN_SENT \(connect\(\) waiting for the SYN-ACK\): waiting for a SYN-ACK, it drops a segment that acknowledges its SYN without a SYN of its own$/,
  );
});

test('TCP state: sequence numbers in ESTABLISHED are a retransmission, an old duplicate, or a disagreement', () => {
  assert.match(
    tcp('TCP_OLD_DATA', 'ESTABLISHED'),
    /^all its data had been received already .*; its connection was ESTABLISHED: a copy the peer resent because this host's ACK was lost or late, or one the network duplicated$/,
  );
  assert.match(
    tcp('TCP_OLD_SEQUENCE', 'ESTABLISHED'),
    /ESTABLISHED: an old duplicate delayed in the network, or a segment of an earlier connection on the same ports$/,
  );
  assert.match(
    tcp('TCP_INVALID_SEQUENCE', 'CLOSE_WAIT'),
    /its socket was in CLOSE_WAIT \(.*\): either the peer overran the window this host offered, or the segment is stale, forged or rewritten by a middlebox \(TCP answers with a duplicate ACK\)$/,
  );
  assert.match(tcp('TCP_INVALID_SYN', 'ESTABLISHED'), /challenge ACK \(RFC 5961\) instead of a new connection/);
});

test('TCP state: resets, and a socket closed before TCP processed the packet', () => {
  assert.match(
    tcp('TCP_RESET', 'ESTABLISHED'),
    /^a reset \(RST\) that TCP refused as invalid; .*in the window but not the next expected one, so TCP kept the connection and sent a challenge ACK \(RFC 5961\)$/,
  );
  assert.match(
    tcp('TCP_RESET', 'SYN_SENT'),
    /takes a reset only along with an ACK of its SYN, and this one had no ACK$/,
  );
  assert.match(
    tcp('TCP_CLOSE', 'ESTABLISHED', 'SYN_RECV', ['CLOSE']),
    /; its connection was ESTABLISHED, and went to CLOSE before the drop: it closed after the packet arrived and before TCP processed it/,
  );
  assert.match(
    tcp('TCP_INVALID_ACK_SEQUENCE', 'SYN_SENT'),
    /the ACK is not for its SYN .* so TCP answers with a reset$/,
  );
  assert.match(
    tcp('TCP_OLD_ACK', 'SYN_RECV'),
    /the handshake's last ACK does not acknowledge its SYN-ACK, so TCP answers with a reset$/,
  );
});

test('TCP state: unknown since tracing began is said so, never guessed; other reasons and drops without a state are as before', () => {
  for (const reason of TCP_STATE_REASONS) {
    assert.equal(
      tcp(reason, null),
      `${reasonText(reason)}; its connection's state was not seen since tracing began`,
      reason,
    );
    const known = tcp(reason, 'FIN_WAIT1');
    assert.ok(!known.endsWith('.') && known.startsWith(reasonText(reason)), reason);
  }
  assert.equal(
    explainDrop({ reason: 'TCP_FLAGS', location: 'tcp_v4_do_rcv', layer: 'tcp' }),
    reasonText('TCP_FLAGS'),
    'no state noted: the reason alone',
  );
  assert.equal(tcp('TCP_CSUM', 'ESTABLISHED'), reasonText('TCP_CSUM'), 'a bad checksum does not depend on the state');
  assert.equal(
    tcp('TCP_FLAGS', 'BOUND_INACTIVE'),
    `${reasonText('TCP_FLAGS')}; its socket was in BOUND_INACTIVE`,
    'a state without words: its name',
  );
});

test('TCP state where TCP named no reason: a time-wait socket refusing data after this side closed', () => {
  const tw = { state: 'CLOSE', from: 'FIN_WAIT2', then: [] };
  assert.equal(
    explainDrop({ reason: 'NOT_SPECIFIED', location: 'tcp_v4_rcv', layer: 'tcp', tcpState: tw }),
    'TCP refused it (tcp_v4_rcv), naming no reason; its socket had gone from FIN_WAIT2 to CLOSE (normally a time-wait socket then ' +
      'takes over the connection, shown by ss as TIME-WAIT or FIN-WAIT-2, which no state change reports): a time-wait socket takes no data',
  );
  assert.match(
    explainDrop({ reason: null, location: 'tcp_v4_rcv', layer: 'tcp', tcpState: tw }),
    /^TCP refused it \(tcp_v4_rcv\); this kernel names no drop reasons \(Linux < 5\.17\); its socket had gone from FIN_WAIT2/,
  );
  assert.equal(
    explainDrop({
      reason: 'NOT_SPECIFIED',
      location: 'tcp_v4_rcv',
      layer: 'tcp',
      tcpState: { state: 'ESTABLISHED', from: 'SYN_RECV', then: [] },
    }),
    'TCP refused it (tcp_v4_rcv), naming no reason; its connection was ESTABLISHED',
    'no why without a reason to go by',
  );
  assert.equal(
    explainDrop({ reason: 'NOT_SPECIFIED', location: 'tcp_v4_rcv', layer: 'tcp' }),
    'TCP refused it (tcp_v4_rcv), naming no reason',
  );
});

test('TCP state advice: the connection from this side with ss, and the counter of what TCP did', () => {
  const c = {
    proto: 'tcp',
    src: '198.18.0.1',
    dst: '198.18.0.2',
    sport: 40000,
    dport: 8080,
    dev: 'eth0',
    prefix: 'ip netns exec srv ',
  };
  assert.deepEqual(dropAdvice({ reason: 'TCP_ABORT_ON_DATA', location: 'tcp_v4_do_rcv' }, c), [
    "ip netns exec srv ss -tanoi 'sport = :8080 and dport = :40000'",
    'ip netns exec srv nstat -az TcpExtTCPAbortOnData',
  ]);
  assert.deepEqual(dropAdvice({ reason: 'TCP_FLAGS', location: 'tcp_v4_do_rcv' }, { ...c, prefix: '' }), [
    "ss -tanoi 'sport = :8080 and dport = :40000'",
  ]);
  assert.deepEqual(
    dropAdvice({ reason: 'TCP_INVALID_SYN', location: 'tcp_validate_incoming' }, c)[1],
    'ip netns exec srv nstat -az TcpExtTCPSYNChallenge TcpExtTCPChallengeACK',
  );
  assert.deepEqual(
    dropAdvice({ reason: 'TCP_OLD_SEQUENCE', location: 'tcp_validate_incoming' }, c),
    [],
    'nothing to run for an old duplicate',
  );
});
