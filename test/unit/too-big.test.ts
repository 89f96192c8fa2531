// A packet too big for its way out, on plain data: its words and advice, the ICMP error's MTU, the route lookup's
// answer, and a trace recorded on a router (the verdict's part is in verdict.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { icmpMtu } from '../../src/correlate/identity.js';
import type { TooBig } from '../../src/correlate/journey.js';
import { dropAdvice, explainDrop, tooBigWords } from '../../src/report/reasons.js';
import { Point, REASON_NONE, type TraceEvent } from '../../src/trace/record.js';
import { parseRoute, routeAgrees, routeArgs, routeText, takeRoute } from '../../src/trace/routes.js';
import { formatJourney, PLAIN } from '../../src/output/text.js';
import { loadEvents, replay } from '../helpers/replay.js';

const way = (p: Partial<TooBig> = {}): TooBig => ({
  size: 1452,
  mtu: 1280,
  mtuFrom: 'icmp',
  routeMtu: null,
  outDev: 3,
  dev: 'eth-srv',
  route: '198.18.2.0/24 dev eth-srv',
  told: true,
  resentAfterTold: 0,
  ...p,
});

test('the words: size, MTU, device, route; who was told; a black hole; what was not read', () => {
  assert.equal(
    explainDrop({ reason: 'PKT_TOO_BIG', location: 'ip_forward', layer: 'ip', tooBig: way() }),
    'too big for the way out: 1452 bytes, MTU 1280 on eth-srv (route 198.18.2.0/24 dev eth-srv); this host told the sender (ICMP packet too big, MTU 1280)',
  );
  assert.equal(
    tooBigWords(way({ told: false, mtuFrom: 'device' }), 'ip6_forward'),
    'too big for the way out: 1452 bytes, MTU 1280 on eth-srv (route 198.18.2.0/24 dev eth-srv); no ICMP error for it was seen leaving (the kernel rate-limits them per destination)',
  );
  assert.match(
    tooBigWords(way({ resentAfterTold: 2 }), 'ip_forward'),
    /; the sender sent this same segment again after this host had told it the MTU: the ICMP errors do not reach it, or it ignores them \(a path MTU black hole/,
  );
  // Sent by this host, over a route whose MTU metric refused it, which a lookup now does not find.
  assert.equal(
    tooBigWords(
      way({ routeMtu: 1280, dev: 'eth0', route: 'default via 198.18.1.254 dev eth0', routeDiffers: true }),
      'ip_fragment',
    ),
    'too big for the way out: 1452 bytes, MTU 1280 (its route\'s mtu) on eth0 (a route lookup now answers "default via 198.18.1.254 dev eth0", not the way it took: policy routing (ip rule), or a change since); this host sent it, and told its own socket (ICMP packet too big, MTU 1280), which learns the path MTU from it',
  );
  assert.equal(
    tooBigWords(way({ size: null, mtu: null, mtuFrom: null, dev: undefined, route: null, told: false }), 'ip_forward'),
    'too big for the way out; its MTU was not read; no ICMP error for it was seen leaving (the kernel rate-limits them per destination)',
  );
  // TCP over IPv6 bigger than its socket's route: ip6_xmit reports it to the socket, with no ICMP error.
  assert.match(
    tooBigWords(way({ told: false, mtuFrom: 'route', routeMtu: 1280 }), 'ip6_xmit'),
    /; this host sent it, and the kernel told its socket \(EMSGSIZE\) directly$/,
  );
  // Without its way out (a kernel that named it elsewhere), the reason's own sentence.
  assert.equal(
    explainDrop({ reason: 'PKT_TOO_BIG', location: 'do_output', layer: 'ip' }),
    'bigger than the MTU of the way out, and not to be fragmented',
  );
});

test('advice: the route, the out device, the path beyond, MSS clamping for TCP; a packet this host sent, ip rule', () => {
  const c = {
    proto: 'tcp',
    src: '198.18.1.1',
    dst: '198.18.2.2',
    sport: 40000,
    dport: 3306,
    dev: 'eth-cli',
    prefix: 'ip netns exec rtr ',
  };
  assert.deepEqual(dropAdvice({ reason: 'PKT_TOO_BIG', location: 'ip_forward', tooBig: way() }, c), [
    'ip netns exec rtr ip route get 198.18.2.2',
    'ip netns exec rtr ip link show dev eth-srv',
    'ip netns exec rtr tracepath -n 198.18.2.2',
    'MSS clamping: ip netns exec rtr iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu (nft, in a forward chain: tcp flags syn tcp option maxseg size set rt mtu)',
  ]);
  const v6 = dropAdvice(
    { reason: 'PKT_TOO_BIG', location: 'ip6_forward', tooBig: way() },
    { ...c, proto: 'udp', dst: 'fd00:198:18:2::2', prefix: '' },
  );
  assert.deepEqual(v6, [
    'ip -6 route get fd00:198:18:2::2',
    'ip link show dev eth-srv',
    'tracepath -n fd00:198:18:2::2',
  ]);
  assert.deepEqual(dropAdvice({ reason: 'PKT_TOO_BIG', location: 'ip6_fragment', tooBig: way({ dev: 'eth0' }) }, c), [
    'ip netns exec rtr ip route get 198.18.2.2',
    'ip netns exec rtr ip link show dev eth0',
    "ip netns exec rtr ip rule (a mark or a rule can route it elsewhere than its socket's route)",
  ]);
});

test("an ICMP error's MTU: frag needed's low 16 bits, packet too big's 32; none where the router sent 0", () => {
  const icmp = (family: number, icmpType: number, icmpCode: number, seq: number) =>
    ({ family, proto: family === 4 ? 1 : 58, icmpType, icmpCode, seq, innerProto: 6 }) as TraceEvent;
  assert.equal(icmpMtu(icmp(4, 3, 4, 1280)), 1280);
  assert.equal(icmpMtu(icmp(4, 3, 4, 0x12340500)), 0x500, 'the unused high half is not the MTU');
  assert.equal(icmpMtu(icmp(6, 2, 0, 1280)), 1280);
  assert.equal(icmpMtu(icmp(4, 3, 4, 0)), undefined, "RFC 792's routers send no MTU");
  assert.equal(icmpMtu(icmp(4, 3, 3, 1280)), undefined, 'port unreachable carries none');
  assert.equal(icmpMtu({ ...icmp(6, 2, 0, 1280), innerProto: 0 }), undefined, 'not an error about a packet');
});

test("the route lookup: ip's arguments, its answer in ip route's words, and whether it agrees with the kernel's", () => {
  const q = {
    family: 4 as const,
    dst: '198.18.2.2',
    src: '198.18.1.1',
    iif: 'eth-cli',
    proto: 'tcp',
    sport: 4,
    dport: 5,
  };
  assert.deepEqual(routeArgs(q), [
    '-j',
    'route',
    'get',
    'fibmatch',
    '198.18.2.2',
    'from',
    '198.18.1.1',
    'iif',
    'eth-cli',
    'ipproto',
    'tcp',
    'sport',
    '4',
    'dport',
    '5',
  ]);
  assert.deepEqual(routeArgs({ ...q, family: 6, dst: 'fd00::2', iif: null, proto: 'icmpv6' }, false), [
    '-j',
    '-6',
    'route',
    'get',
    'fibmatch',
    'fd00::2',
  ]);
  // As iproute2 writes them.
  const link = parseRoute(
    '[{"dst":"198.18.2.0/24","dev":"eth-srv","protocol":"kernel","scope":"link","prefsrc":"198.18.2.254","flags":[]}]\n',
  )!;
  const gw = parseRoute(
    '[{"dst":"198.18.9.0/24","gateway":"198.18.1.254","dev":"eth0","flags":[],"metrics":[{"mtu":1300}]}]',
  )!;
  assert.equal(routeText(link), '198.18.2.0/24 dev eth-srv');
  assert.equal(routeText(gw), '198.18.9.0/24 via 198.18.1.254 dev eth0 mtu 1300');
  assert.equal(parseRoute(''), null);
  assert.equal(parseRoute('[]'), null);
  // Agrees: the same device; and where the kernel's route metric gave the MTU, the same metric.
  assert.equal(routeAgrees(link, 'eth-srv', null), true);
  assert.equal(routeAgrees(link, 'eth0', null), false);
  assert.equal(routeAgrees(gw, 'eth0', 1300), true);
  assert.equal(routeAgrees(link, 'eth-srv', 1280), false, 'the route that refused it had an MTU this one lacks');
  const t = way({ route: undefined, routeMtu: 1280, dev: 'eth-srv' });
  takeRoute(t, link);
  assert.deepEqual([t.route, t.routeDiffers], ['198.18.2.0/24 dev eth-srv', true]);
  const none = way({ route: undefined });
  takeRoute(none, null);
  assert.deepEqual([none.route, none.routeDiffers], [null, undefined]);
});

test('recorded on a router whose way to the server is narrower (6.18): each refusal, its ICMP error, the black hole', () => {
  // test/helpers/record-fixture.ts too-big: eth-srv (ifindex 3) at MTU 1280, the client's firewall drops the errors.
  const { journeys } = replay(loadEvents('too-big-forward'));
  const drops = journeys.filter((j) => j.drop?.reason === 'PKT_TOO_BIG');
  assert.ok(drops.length >= 2, `the segment and its retransmissions: ${drops.length}`);
  for (const d of drops) {
    const t = d.drop!.tooBig!;
    assert.deepEqual([d.drop!.location, d.len, t.size, t.mtu, t.outDev], ['ip_forward', 1400, 1452, 1280, 3]);
  }
  assert.deepEqual(
    drops.map((d) => d.drop!.tooBig!.resentAfterTold > 0),
    drops.map((_, i) => i > 0),
    'told about the first copy, the sender sent the others all the same',
  );
  // The same on a kernel that names no reasons (< 5.17): the ICMP error sent with each tells it; a copy sent while
  // the kernel sent none (rate-limited) stays unnamed, never guessed.
  const unnamed = loadEvents('too-big-forward').map((e) =>
    e.point === Point.KFREE_SKB ? { ...e, reason: REASON_NONE, reasonName: null } : e,
  );
  const old = replay(unnamed).journeys.filter((j) => j.drop?.location === 'ip_forward');
  assert.deepEqual(
    old.map((j) => [j.drop!.reason, j.drop!.inferred !== undefined, j.drop!.tooBig?.mtu]),
    drops.map((d) => (d.drop!.tooBig!.told ? ['PKT_TOO_BIG', true, 1280] : [null, false, undefined])),
  );
  const errors = journeys.filter((j) => j.icmp);
  assert.ok(errors.length >= 1 && errors.every((e) => e.icmp!.mtu === 1280 && e.flow === drops[0]!.flow));
  assert.match(
    formatJourney(errors[0]!, { name: (i) => `if${i}` }, 0, PLAIN).split('\n')[0]!,
    / out ICMP packet too big, MTU 1280 198\.18\.1\.254 → 198\.18\.1\.1 about tcp 198\.18\.1\.1:\d+ → 198\.18\.2\.2:3306$/,
  );
});
