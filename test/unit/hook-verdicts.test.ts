// The programs' own answers joined to their packets: an XDP verdict (no skb) claimed by the XDP-layer free of the
// same content on the same device; one no free claims is a packet of its own that died there; a tc verdict and an
// XDP failure are steps of their skb's journey. Synthetic events through the generated record layout.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Correlator, type NamedEvent } from '../../src/correlate/correlate.js';
import { XDP_WAIT_NS } from '../../src/correlate/hook-verdicts.js';
import { AT_EGRESS, AT_INGRESS, Point } from '../../src/trace/record.js';
import { deviceHookDrop, verdictTargets, classicHooks } from '../../src/trace/device-programs.js';
import { ev } from '../helpers/events.js';

const XDP_ABORTED = 0;
const XDP_DROP = 1;
const XDP_TX = 3;
const TC_ACT_SHOT = 2;
/** An XDP program's verdict (id 42): no skb. */
const xdpVerdict = (t: number, aux: number, p: Partial<NamedEvent> = {}) =>
  ev({ t, point: Point.XDP_VERDICT, skb: 0, aux, locLo: 42, comm: 'xdp_drop_3306', ...p });
const free = (t: number, location: string, p: Partial<NamedEvent> = {}) =>
  ev({ t, point: Point.KFREE_SKB, location, reasonName: null, ...p });
const points = (j: { steps: { point: string }[] }) => j.steps.map((s) => s.point);

test('generic XDP: the verdict before the free of the same packet on the same device is its program answer', () => {
  const c = new Correlator({ netns: 5 });
  c.push(ev({ t: 1 }));
  c.push(xdpVerdict(2, XDP_DROP));
  c.push(free(3, 'do_xdp_generic'));
  c.finish();
  const [j, ...rest] = c.drain();
  assert.equal(rest.length, 0, 'the verdict is no packet of its own');
  assert.deepEqual(points(j!), ['netif_receive_skb', 'xdp_verdict', 'kfree_skb']);
  assert.equal(j!.drop?.layer, 'xdp');
  assert.deepEqual(j!.drop?.told, { id: 42, name: 'xdp_drop_3306', verdict: 'XDP_DROP' });
  assert.deepEqual(j!.steps[1]!.program, j!.drop?.told);
  assert.equal(j!.steps[1]!.ifindex, 2);
});

test('a verdict is claimed only by its own packet: another device, other content, or too long before do not', () => {
  for (const other of [{ ifindex: 3 }, { seq: 2 }, { t: 2 + 25_000_000 }] as Partial<NamedEvent>[]) {
    const c = new Correlator({ netns: 5 });
    c.push(xdpVerdict(2, XDP_DROP));
    c.push(ev({ t: 1, skb: 200, ...other, ...(other.t && { t: other.t - 1 }) }));
    c.push(free(other.t ?? 3, 'do_xdp_generic', { skb: 200, ...other }));
    c.finish();
    const journeys = c.drain();
    const freed = journeys.find((j) => j.steps.some((s) => s.point === 'kfree_skb'))!;
    assert.equal(freed.drop?.told, undefined, `not joined across ${JSON.stringify(other)}`);
    const alone = journeys.find((j) => j !== freed)!;
    assert.deepEqual(points(alone), ['xdp_verdict'], 'the unclaimed drop is a packet of its own');
  }
});

test('native XDP with no free (the driver recycles): the XDP_DROP waits, then is a packet that died there', () => {
  const c = new Correlator({ netns: 5 });
  c.push(xdpVerdict(10, XDP_DROP));
  // A packet that started after it and ended: it waits behind the verdict (start order).
  c.push(ev({ t: 20, skb: 300, sport: 1, dport: 2 }));
  c.push(ev({ t: 21, skb: 300, sport: 1, dport: 2, point: Point.CONSUME_SKB, location: 'tcp_v4_rcv' }));
  c.tick(10 + XDP_WAIT_NS - 1);
  assert.deepEqual(c.drain(), [], 'the verdict may still be claimed: nothing after it goes out');
  c.tick(10 + XDP_WAIT_NS);
  const [dead, later] = c.drain();
  assert.equal(later?.start, 20, 'then both, in start order');
  assert.deepEqual(
    [dead!.direction, dead!.fate, dead!.ending, points(dead!), dead!.tcpdump, dead!.tcp],
    ['in', 'dropped', 'verdict', ['xdp_verdict'], false, { saw: false, reply: null }],
  );
  assert.deepEqual(dead!.drop, {
    layer: 'xdp',
    hook: null,
    reason: null,
    location: '',
    told: { id: 42, name: 'xdp_drop_3306', verdict: 'XDP_DROP' },
  });
});

test('an XDP_TX or XDP_REDIRECT no free claims sent its packet on: no journey; an XDP_ABORTED is a drop', () => {
  const c = new Correlator({ netns: 5 });
  c.push(xdpVerdict(1, XDP_TX));
  c.push(xdpVerdict(2, XDP_ABORTED, { seq: 9 }));
  c.finish();
  const all = c.drain();
  assert.deepEqual(
    all.map((j) => j.drop?.told?.verdict),
    ['XDP_ABORTED'],
  );
});

test('a failed XDP_TX claimed by its free: the verdict says what the program asked for', () => {
  const c = new Correlator({ netns: 5 });
  c.push(ev({ t: 1 }));
  c.push(xdpVerdict(2, XDP_TX));
  c.push(free(3, 'generic_xdp_tx'));
  c.finish();
  const [j] = c.drain();
  assert.equal(j!.drop?.told?.verdict, 'XDP_TX');
});

test('xdp_exception and xdp_redirect_err come with their packet (its skb) as steps before the free', () => {
  const c = new Correlator({ netns: 5 });
  c.push(ev({ t: 1, point: Point.XDP_REDIRECT_ERR, aux: -100 >>> 0, locLo: 7, comm: 'xdp_fwd' }));
  c.push(free(2, 'do_xdp_generic'));
  c.push(ev({ t: 5, skb: 101, seq: 5, point: Point.XDP_EXCEPTION, aux: XDP_ABORTED, locLo: 8, comm: 'xdp_bad' }));
  c.push(free(6, 'netif_receive_generic_xdp', { skb: 101, seq: 5 }));
  c.finish();
  const [redirected, aborted] = c.drain();
  assert.equal(redirected!.direction, 'in', 'a packet first seen at an XDP point came in');
  assert.deepEqual(redirected!.drop?.told, { id: 7, name: 'xdp_fwd', verdict: 'XDP_REDIRECT', error: -100 });
  assert.deepEqual(aborted!.drop?.told, { id: 8, name: 'xdp_bad', verdict: 'XDP_ABORTED' });
  // The session names the program from them.
  const reading = {
    list: [{ hook: 'xdp' as const, direction: 'ingress' as const, mode: 'generic', name: 'xdp_fwd', id: 7, tag: 'ab' }],
    unread: null,
  };
  assert.deepEqual(deviceHookDrop(redirected!.drop!, 'eth0', reading)?.program, {
    mode: 'generic',
    name: 'xdp_fwd',
    id: 7,
    tag: 'ab',
    found: 'verdict',
    verdict: 'XDP_REDIRECT',
    error: 'ENETDOWN',
  });
});

test("a tc verdict is a step of its skb: ingress after the receive; a free right after TC_ACT_SHOT is tc's drop", () => {
  const c = new Correlator({ netns: 5 });
  c.push(ev({ t: 1 }));
  const shot = { point: Point.TC_VERDICT, aux: TC_ACT_SHOT, locLo: 9, comm: 'tc_drop_in' };
  c.push(ev({ t: 2, ...shot, probe: AT_INGRESS }));
  c.push(free(3, 'sch_handle_ingress'));
  // Egress on 5.10: no reason, and the hook's code inlined into __dev_queue_xmit (the device layer by its name).
  c.push(ev({ t: 4, skb: 400, seq: 7, point: Point.NETFILTER, hook: 4, probe: 7 }));
  c.push(ev({ t: 5, skb: 400, seq: 7, ...shot, probe: AT_EGRESS }));
  c.push(free(6, '__dev_queue_xmit', { skb: 400, seq: 7 }));
  c.finish();
  const [inbound, outbound] = c.drain();
  assert.deepEqual(points(inbound!), ['netif_receive_skb', 'tc_verdict', 'kfree_skb']);
  assert.equal(inbound!.direction, 'in');
  assert.deepEqual(inbound!.drop?.told, { id: 9, name: 'tc_drop_in', verdict: 'TC_ACT_SHOT', direction: 'ingress' });
  assert.deepEqual([outbound!.drop?.layer, outbound!.drop?.told?.direction], ['tc', 'egress']);
  // Several filters there: the verdict names the one that dropped it, no candidates.
  const filter = (id: number, name: string) => ({
    hook: 'tc' as const,
    direction: 'ingress' as const,
    mode: `bpf filter pref ${id} direct-action`,
    name,
    id,
    remove: `tc filter del dev eth0 ingress pref ${id}`,
  });
  const device = deviceHookDrop(inbound!.drop!, 'eth0', {
    list: [filter(3, 'other'), filter(9, 'tc_drop_in')],
    unread: null,
  });
  assert.deepEqual(device, {
    hook: 'tc',
    direction: 'ingress',
    dev: 'eth0',
    program: {
      mode: 'bpf filter pref 9 direct-action',
      name: 'tc_drop_in',
      id: 9,
      found: 'verdict',
      verdict: 'TC_ACT_SHOT',
      remove: 'tc filter del dev eth0 ingress pref 9',
    },
  });
});

test('whose verdicts can be traced: XDP but offloaded, tcx, direct-action BPF filters; the hooks that hold filters', () => {
  const a = (hook: 'xdp' | 'tc', mode: string, id?: number) => ({
    hook,
    direction: 'ingress' as const,
    mode,
    name: 'p',
    ...(id !== undefined && { id }),
  });
  assert.deepEqual(
    verdictTargets([
      a('xdp', 'generic', 1),
      a('xdp', 'offload', 2),
      a('tc', 'tcx', 3),
      a('tc', 'bpf filter pref 1 direct-action', 4),
      a('tc', 'bpf filter pref 2', 5),
      a('tc', 'u32 filter pref 3'),
      a('xdp', 'native', 1),
    ]),
    [
      { id: 1, hook: 'xdp' },
      { id: 3, hook: 'tc' },
      { id: 4, hook: 'tc' },
    ],
  );
  const qdiscs = JSON.stringify([
    { kind: 'noqueue', dev: 'lo' },
    { kind: 'clsact', dev: 'eth0', parent: 'ffff:fff1' },
    { kind: 'ingress', dev: 'eth1', parent: 'ffff:fff1' },
  ]);
  assert.deepEqual(classicHooks(qdiscs), [
    ['eth0', ['ingress', 'egress']],
    ['eth1', ['ingress']],
  ]);
  assert.deepEqual(classicHooks('oops'), []);
});
