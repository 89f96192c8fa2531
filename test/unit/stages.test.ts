// The UI's stages of a journey: an XDP drop before the tap, tc drops on each side.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Journey } from '../../src/correlate/journey.js';
import { deathStage, stagesReached } from '../../src/tui/stages.js';

const journey = (p: Partial<Journey>): Journey =>
  ({ steps: [], tcpdumpDevices: [], direction: 'in', drop: null, ...p }) as Journey;
const drop = (layer: 'xdp' | 'tc', direction: 'ingress' | 'egress') =>
  ({
    layer,
    hook: null,
    reason: null,
    location: '',
    device: { hook: layer, dev: 'eth0', direction, program: null },
  }) as const;

test('an XDP drop in generic mode: received, died at XDP, never at the tap', () => {
  const j = journey({ steps: [{ point: 'netif_receive_skb', t: 1, ifindex: 2 }], drop: drop('xdp', 'ingress') });
  assert.equal(deathStage(j), 'xdp');
  assert.deepEqual(stagesReached(j), ['rx', 'xdp']);
});

test('tc drops: ingress after the tap, egress before the qdisc', () => {
  const rx = journey({
    steps: [{ point: 'netif_receive_skb', t: 1, ifindex: 2 }],
    tcpdumpDevices: [2],
    drop: drop('tc', 'ingress'),
  });
  assert.deepEqual(stagesReached(rx), ['rx', 'tap_rx', 'tc_in']);
  const tx = journey({
    direction: 'out',
    steps: [{ point: 'netfilter', hook: 'POST_ROUTING', at: 'exit', t: 1 }],
    drop: drop('tc', 'egress'),
  });
  assert.deepEqual(stagesReached(tx), ['POST_ROUTING', 'tc_out']);
});

test('first seen at PRE_ROUTING (the reply of a DNAT, its ports matched only after NAT): it came in on its device', () => {
  const reply = journey({
    direction: 'forward',
    steps: [
      { point: 'netfilter', hook: 'PRE_ROUTING', at: 'entry', t: 1 },
      { point: 'netfilter', hook: 'FORWARD', at: 'entry', t: 2 },
    ],
    tcpdumpDevices: [3],
    drop: { layer: 'netfilter', hook: 'FORWARD', reason: null, location: '', device: null } as never,
  });
  assert.deepEqual(stagesReached(reply), ['rx', 'tap_rx', 'PRE_ROUTING', 'routing', 'FORWARD']);
  // Sent out of this host: nothing came in.
  const sent = journey({ direction: 'out', steps: [{ point: 'netfilter', hook: 'POST_ROUTING', at: 'exit', t: 1 }] });
  assert.deepEqual(stagesReached(sent), ['POST_ROUTING']);
});
