import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dropLayer, isDrop } from '../../src/correlate/classify.js';

test('drop layer: by reason first, else by the freeing function', () => {
  assert.equal(dropLayer('NETFILTER_DROP', 'nft_do_chain'), 'netfilter');
  assert.equal(dropLayer('NETFILTER_DROP', 'nf_hook_slow'), 'netfilter');
  assert.equal(dropLayer('NO_SOCKET', 'tcp_v4_rcv'), 'socket');
  assert.equal(dropLayer('TCP_CSUM', 'tcp_v4_rcv'), 'tcp');
  assert.equal(dropLayer('IP_NOPROTO', 'ip_local_deliver_finish'), 'ip');
  assert.equal(dropLayer('QDISC_DROP', '__dev_xmit_skb'), 'qdisc');
  assert.equal(dropLayer('NOT_SPECIFIED', 'veth_xmit'), 'device');
  assert.equal(dropLayer('NOT_SPECIFIED', 'something_else'), 'kernel');
});

test('NOT_SPECIFIED frees by the transport layer after delivery are not drops; elsewhere they are', () => {
  assert.equal(isDrop('NOT_SPECIFIED', 'tcp_v4_rcv', true), false);
  assert.equal(isDrop('NOT_SPECIFIED', 'tcp_v4_rcv', false), true);
  assert.equal(isDrop('NOT_SPECIFIED', 'veth_xmit', true), true);
  // Answered with a reset (data to a time-wait socket after this side closed): refused, a drop.
  assert.equal(isDrop('NOT_SPECIFIED', 'tcp_v4_rcv', true, true), true);
  assert.equal(isDrop('NETFILTER_DROP', 'nft_do_chain', true), true);
});

test('kernels without drop reasons (< 5.17): kfree_skb means a drop, except TCP freeing what it handled', () => {
  assert.equal(isDrop(null, 'nf_hook_slow', false), true);
  assert.equal(isDrop(null, '__udp4_lib_rcv', true), true, 'a closed UDP port');
  // A retransmitted SYN answered by the request socket is freed at tcp_v4_rcv: handled, not dropped.
  assert.equal(isDrop(null, 'tcp_v4_rcv', true), false);
  // Freed after TCP answered it with a reset: no socket, a drop.
  assert.equal(isDrop(null, 'tcp_v4_rcv', true, true), true);
  assert.equal(dropLayer('', '__udp4_lib_rcv'), 'udp');
});
