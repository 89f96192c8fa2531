// What ready says about how netfilter is traced, from what loaded and attached.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NetfilterMechanism, PointStatus } from '../../src/trace/native.js';
import { attachTracer, netfilterTracing, unattached } from '../../src/trace/netfilter-mechanism.js';

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

/** A tracer as attachTracer sees it: what it loaded, what attaches, whether it was closed. */
function fakeTracer(loaded: NetfilterMechanism, statuses: PointStatus[]) {
  return {
    closed: false,
    attachTracepoints: () => statuses,
    netfilterMode: () => loaded,
    close() {
      this.closed = true;
    },
  };
}

test('trampolines that load but do not attach (arm64 before 6.4): closed, kprobes loaded, the failure said', () => {
  const first = fakeTracer('trampolines', [
    { point: 'fentry/nf_hook_slow', attached: false, error: 'not supported by this kernel (ENOTSUPP)' },
    { point: 'fexit/nf_hook_slow', attached: false, error: 'not supported by this kernel (ENOTSUPP)' },
    { point: 'kfree_skb', attached: true },
  ]);
  const second = fakeTracer('kprobes', [
    { point: 'kprobe/nf_hook_slow', attached: true },
    { point: 'kretprobe/nf_hook_slow', attached: true },
  ]);
  const { tracer, statuses } = attachTracer(first, () => second);
  assert.deepEqual([tracer === second, first.closed, second.closed], [true, true, false]);
  const failed = statuses.filter((s) => !s.attached).map((s) => unattached(s.point, s.error));
  const r = netfilterTracing(
    'trampolines',
    tracer.netfilterMode(),
    statuses.filter((s) => s.attached).map((s) => s.point),
    failed,
  );
  assert.equal(r.traced, 'kprobes');
  assert.deepEqual(r.unavailable, [
    {
      point: 'netfilter',
      reason:
        'kprobes trace the hooks, as trampolines could not (trampolines did not attach to nf_hook_slow: ' +
        'not supported by this kernel (ENOTSUPP))',
    },
  ]);
});

test('attached trampolines, or kprobes loaded already: the tracer kept, no second one made', () => {
  for (const t of [
    fakeTracer('trampolines', [{ point: 'fentry/nf_hook_slow', attached: true }]),
    fakeTracer('kprobes', [{ point: 'kprobe/nf_hook_slow', attached: false, error: 'No such file or directory' }]),
  ]) {
    const r = attachTracer(t, () => assert.fail('no second tracer'));
    assert.deepEqual([r.tracer === t, t.closed], [true, false]);
  }
});
