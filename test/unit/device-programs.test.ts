// What on a device can drop a packet, and which of it a drop names: tc's filters as `tc -j filter show` writes
// them (test/fixtures/tc-filters-ingress.json: iproute2 6.1 on Linux 6.18, a cls_bpf direct-action filter, a u32
// filter redirecting with mirred, a u32 filter that only classifies), XDP's modes, several candidates.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { deviceHookDrop, dropSite, parseTcFilters, type Attached } from '../../src/trace/device-programs.js';
import { FIXTURES } from '../helpers/paths.js';

const json = readFileSync(path.join(FIXTURES, 'tc-filters-ingress.json'), 'utf8');

test('tc filters that can drop: a BPF classifier, a filter with an action that can; not one that only classifies', () => {
  const list = parseTcFilters(json, 'eth0', 'ingress', 'ip netns exec web ');
  assert.deepEqual(list, [
    {
      hook: 'tc',
      direction: 'ingress',
      mode: 'bpf filter pref 10 direct-action',
      name: 'tc_drop_3306_in',
      id: 1491,
      tag: '8d0032b7377b00f4',
      remove: 'ip netns exec web tc filter del dev eth0 ingress pref 10',
    },
    {
      hook: 'tc',
      direction: 'ingress',
      mode: 'u32 filter pref 20',
      name: 'u32 action mirred redirect lo',
      remove: 'ip netns exec web tc filter del dev eth0 ingress pref 20',
    },
  ]);
  assert.deepEqual(parseTcFilters('[]', 'eth0', 'egress'), []);
  assert.deepEqual(parseTcFilters('not json', 'eth0', 'egress'), []);
});

test('a drop names the one program that can have dropped it, candidates when several can', () => {
  const xdp = (mode: string, id: number): Attached => ({ hook: 'xdp', direction: 'ingress', mode, name: `x${id}`, id });
  const generic = { layer: 'xdp', reason: 'NOT_SPECIFIED', location: 'do_xdp_generic' } as const;
  const native = { layer: 'xdp', reason: 'NOT_SPECIFIED', location: 'veth_xdp_rcv_skb' } as const;
  const both = { list: [xdp('generic', 1), xdp('native', 2)], unread: null };
  // Generic and native both attached: the freeing function tells the mode.
  assert.equal(deviceHookDrop(generic, 'eth0', both)?.program?.name, 'x1');
  assert.equal(deviceHookDrop(native, 'eth0', both)?.program?.name, 'x2');
  assert.deepEqual(deviceHookDrop(native, 'eth0', { list: [], unread: null }), {
    hook: 'xdp',
    dev: 'eth0',
    direction: 'ingress',
    program: null,
  });
  const tcIn = { layer: 'tc', reason: 'TC_INGRESS', location: '__netif_receive_skb_core' } as const;
  const filters = { list: parseTcFilters(json, 'eth0', 'ingress'), unread: null };
  assert.deepEqual(deviceHookDrop(tcIn, 'eth0', filters), {
    hook: 'tc',
    dev: 'eth0',
    direction: 'ingress',
    program: null,
    candidates: [
      'tc_drop_3306_in (id 1491, bpf filter pref 10 direct-action)',
      'u32 action mirred redirect lo (u32 filter pref 20)',
    ],
  });
  // tc could not be read: said, not taken for "nothing there".
  assert.equal(
    deviceHookDrop(tcIn, 'eth0', { list: [], unread: 'tc is not installed (iproute2)' })?.unread,
    'tc is not installed (iproute2)',
  );
  // Not a device hook's drop.
  assert.equal(
    deviceHookDrop({ layer: 'netfilter', reason: 'NETFILTER_DROP', location: 'nft_do_chain' }, 'eth0', filters),
    null,
  );
});

test('the site of a drop: XDP on ingress; tc by its reason, or before 5.17 by its freeing function', () => {
  assert.deepEqual(dropSite({ layer: 'xdp', reason: null, location: 'do_xdp_generic' }), {
    hook: 'xdp',
    direction: 'ingress',
  });
  assert.deepEqual(dropSite({ layer: 'tc', reason: 'TC_EGRESS', location: '__dev_queue_xmit' }), {
    hook: 'tc',
    direction: 'egress',
  });
  assert.deepEqual(dropSite({ layer: 'tc', reason: null, location: 'sch_handle_egress' }), {
    hook: 'tc',
    direction: 'egress',
  });
  assert.deepEqual(dropSite({ layer: 'tc', reason: null, location: 'sch_handle_ingress' }), {
    hook: 'tc',
    direction: 'ingress',
  });
  assert.equal(dropSite({ layer: 'qdisc', reason: 'QDISC_DROP', location: '__dev_xmit_skb' }), null);
});
