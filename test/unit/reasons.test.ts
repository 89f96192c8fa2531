// Every drop reason in words: each of the newest kernel's reasons (the fixture; and this machine's, read from
// its BTF) has a layer and a sentence; context refines the terse ones; an unknown one still reads sensibly.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { dropLayer } from '../../src/classify.js';
import { dropAdvice, explainDrop, NOT_REASONS, REASONS, reasonText } from '../../src/reasons.js';
import { native } from '../../src/native.js';
import { FIXTURES } from '../helpers/paths.js';

const newest = readFileSync(path.join(FIXTURES, 'drop-reasons-6.18.txt'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));

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
  assert.equal(explainDrop({ reason: 'IP_INHDR', location: 'ip_forward', layer: 'ip' }),
    'its TTL (hop limit) ran out while it was forwarded: this host answers with ICMP time exceeded');
  assert.equal(explainDrop({ reason: 'IP_INHDR', location: 'ip6_forward', layer: 'ip' }).startsWith('its TTL (hop limit) ran out'), true);
  assert.match(explainDrop({ reason: 'IP_INHDR', location: 'ip_rcv_core', layer: 'ip' }), /^its IP header is invalid/);
  assert.equal(explainDrop({ reason: null, location: 'nf_hook_slow', layer: 'netfilter' }),
    'a netfilter rule (iptables or nftables) dropped it (nf_hook_slow); this kernel names no drop reasons (Linux < 5.17)');
  assert.equal(explainDrop({ reason: 'NOT_SPECIFIED', location: 'veth_xmit', layer: 'device' }), 'its device dropped it (veth_xmit), naming no reason');
  assert.equal(reasonText('TCP_SOMETHING_NEW'), "the kernel's reason TCP_SOMETHING_NEW, which pathtrace has no words for yet");
  assert.equal(dropLayer('TCP_SOMETHING_NEW', 'x'), 'tcp', 'its layer by the naming rules');
  assert.match(explainDrop({ reason: 'NO_SOCKET', location: 'tcp_v4_rcv', layer: 'socket' }), /^no socket was bound to its destination port/);
});

test("advice: the commands that show the cause, with this packet's values and its namespace", () => {
  const c = { proto: 'tcp', src: '198.18.0.1', dst: '198.18.0.2', dport: 3306, dev: 'eth0', prefix: 'ip netns exec srv ' };
  assert.deepEqual(dropAdvice({ reason: 'NO_SOCKET', location: 'tcp_v4_rcv' }, c), ["ip netns exec srv ss -tlnp 'sport = :3306'"]);
  assert.deepEqual(dropAdvice({ reason: 'NO_SOCKET', location: '__udp4_lib_rcv' }, { ...c, proto: 'udp', dport: 53 }), ["ip netns exec srv ss -ulnp 'sport = :53'"]);
  assert.deepEqual(dropAdvice({ reason: 'TCP_LISTEN_OVERFLOW', location: 'tcp_rcv_state_process' }, c)[1], 'ip netns exec srv sysctl net.core.somaxconn');
  assert.deepEqual(dropAdvice({ reason: 'IP_RPFILTER', location: 'ip_rcv_finish_core' }, c),
    ['ip netns exec srv sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf.eth0.rp_filter', 'ip netns exec srv ip route get 198.18.0.1']);
  assert.deepEqual(dropAdvice({ reason: 'QDISC_DROP', location: '__dev_queue_xmit' }, { ...c, prefix: '' }), ['tc -s qdisc show dev eth0']);
  assert.deepEqual(dropAdvice({ reason: 'NEIGH_FAILED', location: 'neigh_invalidate' }, c), ['ip netns exec srv ip neigh show dev eth0']);
  assert.deepEqual(dropAdvice({ reason: 'NETFILTER_DROP', location: 'nft_do_chain', attribution: {} }, c), [], 'the rule lines say what to inspect');
  assert.deepEqual(dropAdvice({ reason: 'NETFILTER_DROP', location: 'nft_do_chain' }, c)[0], 'ip netns exec srv nft list ruleset');
  assert.deepEqual(dropAdvice({ reason: 'TCP_OLD_DATA', location: 'tcp_validate_incoming' }, c), [], 'nothing to run for a duplicate');
  assert.deepEqual(dropAdvice({ reason: 'IP_INHDR', location: 'ip_forward' }, { ...c, dst: 'fd00::2' }), ['ip netns exec srv ip -6 route get fd00::2 (a loop between routers also exhausts the TTL)']);
});
