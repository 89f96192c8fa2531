// Addresses, kernel symbols and enum names: the small pure pieces the output rests on.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressBytes, formatAddress } from '../../src/trace/address.js';
import { effectiveCaps, missingCaps } from '../../src/commands/caps.js';
import { Symbolizer } from '../../src/trace/kallsyms.js';
import { EnumNames } from '../../src/trace/kernel-names.js';
import { NetnsError, resolveNetns } from '../../src/trace/netns.js';

test('IPv6 text form follows RFC 5952; bytes round-trip', () => {
  for (const a of ['fd00:198:18::1', '::1', '::', 'fe80::1:0:0:2', '2001:db8:0:1:1:1:1:1', '1::', '198.18.0.2']) {
    const { family, addr } = addressBytes(a);
    assert.equal(formatAddress(addr, 0, family), a);
  }
  assert.equal(formatAddress(addressBytes('::ffff:198.18.0.1').addr, 0, 6), '::ffff:c612:1');
  // The longest run of zeros is compressed, the first of equal runs.
  assert.equal(formatAddress(addressBytes('1:0:0:2:0:0:0:3').addr, 0, 6), '1:0:0:2::3');
});

test('kallsyms: an address inside a function names it; unknown addresses stay hex', () => {
  const s = new Symbolizer(
    [
      'ffffffff81f28dd0 T nf_hook_slow',
      'ffffffff81f63250 T nft_do_chain',
      'ffffffff81f64000 t nft_do_chain_ipv4',
      'ffffffff81f65000 D some_data',
      'ffffffffc0a01000 t veth_xmit\t[veth]',
    ].join('\n'),
  );
  assert.equal(s.size, 4);
  assert.equal(s.lookup(0xffffffff, 0x81f63250), 'nft_do_chain');
  assert.equal(s.lookup(0xffffffff, 0x81f63300), 'nft_do_chain');
  assert.equal(s.lookup(0xffffffff, 0x81f28dd5), 'nf_hook_slow');
  assert.equal(s.lookup(0xffffffff, 0xc0a01010), 'veth_xmit');
  assert.equal(s.lookup(0xffffffff, 0x80000000), '0xffffffff80000000');
  assert.equal(s.lookup(0, 0), '');
  assert.equal(new Symbolizer('0000000000000000 T hidden').size, 0, 'kptr_restrict hides addresses');
});

test('kernel enum names lose their prefix; unknown values print as numbers', () => {
  const reasons = new EnumNames(
    { SKB_NOT_DROPPED_YET: 0, SKB_CONSUMED: 1, SKB_DROP_REASON_NOT_SPECIFIED: 2, SKB_DROP_REASON_NETFILTER_DROP: 12 },
    'SKB_DROP_REASON_',
  );
  assert.equal(reasons.name(12), 'NETFILTER_DROP');
  assert.equal(reasons.name(2), 'NOT_SPECIFIED');
  assert.equal(reasons.name(1), 'SKB_CONSUMED');
  assert.equal(reasons.name(999), '999');
});

test('capabilities: root has all; an unprivileged process is told which it lacks', () => {
  assert.deepEqual(missingCaps(effectiveCaps('CapEff:\t000001ffffffffff\n'), true), []);
  assert.deepEqual(missingCaps(effectiveCaps('CapEff:\t0000000000000000\n'), false), [
    'CAP_BPF',
    'CAP_PERFMON',
    'CAP_NET_ADMIN',
  ]);
  const bpfOnly = (1n << 39n) | (1n << 38n) | (1n << 12n);
  assert.deepEqual(missingCaps(bpfOnly, false), []);
  assert.deepEqual(missingCaps(bpfOnly, true), ['CAP_SYS_ADMIN']);
});

test('--netns: own namespace by default; unknown names and non-namespace files are errors', () => {
  const own = resolveNetns(null);
  assert.equal(own.path, '');
  assert.ok(own.inode > 0);
  assert.throws(() => resolveNetns('surely-not-there', '/nonexistent-run-netns'), NetnsError);
  assert.throws(() => resolveNetns('/etc/hostname'), /not a network namespace file/);
  assert.equal(resolveNetns('/proc/self/ns/net').inode, own.inode);
  // Namespace files of other types live on the same nsfs: named by their type, before anything loads.
  assert.throws(
    () => resolveNetns('/proc/self/ns/mnt'),
    /'\/proc\/self\/ns\/mnt' is a mnt namespace, not a network namespace/,
  );
  assert.throws(() => resolveNetns('/proc/self/ns/pid'), /is a pid namespace, not a network namespace/);
});
