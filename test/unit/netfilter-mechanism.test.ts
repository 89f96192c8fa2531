// What ready says about how netfilter is traced, from what loaded and attached.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { netfilterTracing, unattached } from '../../src/trace/netfilter-mechanism.js';

const TRAMPOLINES = ['fentry/nf_hook_slow', 'fexit/nf_hook_slow', 'kfree_skb'];

test('trampolines attached: traced by them; a missing evaluator stays its own line', () => {
  const missing = { point: 'fexit/ipt_do_table', reason: 'ip_tables is not loaded' };
  const r = netfilterTracing('trampolines', 'trampolines', TRAMPOLINES, [missing]);
  assert.equal(r.traced, 'trampolines');
  assert.deepEqual(r.unavailable, [missing]);
});

test('trampolines refused at load, kprobes attached: one line says so and why', () => {
  const r = netfilterTracing(
    'trampolines',
    'kprobes',
    ['kprobe/nf_hook_slow', 'kretprobe/nf_hook_slow'],
    [{ point: 'netfilter trampolines', reason: 'trampolines refused by this kernel: Permission denied' }],
  );
  assert.equal(r.traced, 'kprobes');
  assert.deepEqual(r.unavailable, [
    {
      point: 'netfilter',
      reason:
        'kprobes trace the hooks, as trampolines could not (trampolines refused by this kernel: Permission denied)',
    },
  ]);
});

test('nothing attached on nf_hook_slow: one line with both reasons, the failed points folded into it', () => {
  const r = netfilterTracing(
    'trampolines',
    'kprobes',
    ['kfree_skb'],
    [
      { point: 'netfilter trampolines', reason: 'trampolines refused by this kernel: Operation not permitted' },
      { point: 'kprobe/nf_hook_slow', reason: 'No such file or directory' },
      { point: 'kretprobe/nf_hook_slow', reason: 'No such file or directory' },
      { point: 'kprobe/nft_do_chain', reason: 'No such file or directory' },
      unattached('sock_recv_length', 'this kernel has no tracepoint sock_recv_length'),
    ],
  );
  assert.equal(r.traced, 'none');
  assert.deepEqual(
    r.unavailable.map((u) => u.point),
    ['sock_recv_length', 'netfilter'],
  );
  assert.match(r.unavailable[0].reason, /UDP reads by the application are not seen/);
  assert.match(
    r.unavailable[1].reason,
    /neither trampolines nor kprobes .*\(trampolines refused .*Operation not permitted; kprobes did not attach: No such file or directory\): hooks cannot be named/,
  );
});

test('links: traced by links, nothing added; netfilter not wanted (--points): nothing said', () => {
  assert.deepEqual(netfilterTracing('links', 'links', ['kfree_skb'], []), { traced: 'links', unavailable: [] });
  assert.deepEqual(netfilterTracing('none', 'none', ['kfree_skb'], []), { traced: 'none', unavailable: [] });
});
