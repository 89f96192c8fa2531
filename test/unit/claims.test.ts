// The check every end-to-end trace passes (test/helpers/claims.ts) catches a claim without its evidence: it is not
// vacuous.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { PacketRecord } from '../../src/output/records.js';
import { unsupportedClaims } from '../helpers/claims.js';

const syn = (p: Partial<PacketRecord>): PacketRecord =>
  ({
    type: 'packet',
    id: 1,
    proto: 'tcp',
    tcp_flags: 'S',
    direction: 'in',
    steps: [],
    fate: 'dropped',
    drop: null,
    tcpdump: false,
    tcpdump_devices: [],
    ...p,
  }) as PacketRecord;

const rx = { point: 'netif_receive_skb', dev: 'eth0', t_ns: 1 };
const free = (location: string) => ({ point: 'kfree_skb', dev: 'eth0', location, t_ns: 2 });
const drop = (layer: string, location: string) =>
  ({ layer, hook: null, reason: 'NOT_SPECIFIED', location, explanation: '', advice: [] }) as PacketRecord['drop'];

test('TCP said to have seen a packet no TCP point saw, or one dropped below TCP: flagged', () => {
  const tc = syn({ steps: [rx, free('__netif_receive_skb_core')], drop: drop('tc', '__netif_receive_skb_core') });
  assert.deepEqual(
    unsupportedClaims({ ...tc, tcpdump: true, tcpdump_devices: ['eth0'], tcp: { saw: false, reply: null } }),
    [],
  );
  assert.equal(
    unsupportedClaims({ ...tc, tcpdump: true, tcpdump_devices: ['eth0'], tcp: { saw: true, reply: null } }).length,
    2,
  );
  // Freed by TCP: its evidence.
  const tcp = syn({
    steps: [rx, free('tcp_v4_rcv')],
    tcpdump: true,
    tcpdump_devices: ['eth0'],
    tcp: { saw: true, reply: null },
  });
  assert.deepEqual(unsupportedClaims(tcp), []);
});

test('tcpdump said to have seen what passed no tap, an XDP drop at its tap, an origin of nothing: flagged', () => {
  assert.match(
    unsupportedClaims(syn({ steps: [free('do_xdp_generic')], tcpdump: true, tcpdump_devices: ['eth0'] }))[0]!,
    /no device tap/,
  );
  const xdp = syn({
    steps: [rx, free('do_xdp_generic')],
    drop: drop('xdp', 'do_xdp_generic'),
    tcpdump: true,
    tcpdump_devices: ['eth0'],
  });
  assert.ok(unsupportedClaims(xdp).some((c) => /XDP drop/.test(c)));
  const out = syn({ direction: 'out', steps: [free('veth_xdp_rcv_skb')], origin: 'socket' });
  assert.ok(unsupportedClaims(out).some((c) => /origin socket/.test(c)));
});
