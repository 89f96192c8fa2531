// The NAT rule behind a rewrite, on captured rulesets: iptables' DNAT, SNAT, MASQUERADE and REDIRECT targets and
// nft's statements (maps too) read into the model, the rule whose match covers the tuple before and whose target
// gives the tuple after, counters that single it out or show no rule counted it (conntrack did), and what a
// rewritten packet can have been to the rules.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { natPacket } from '../../src/correlate/route.js';
import { TCP } from '../../src/correlate/journey.js';
import { parseIptablesSave } from '../../src/rules/iptables.js';
import { ruleKey, type Ruleset } from '../../src/rules/model.js';
import { attributeNat, natGives, type NatContext } from '../../src/rules/nat.js';
import { parseNftJson, parseNftText } from '../../src/rules/nft.js';
import { rewriteStory } from '../../src/report/nat.js';
import { IPPROTO } from '../../src/trace/record.js';
import { kubeProxyRuleset } from '../fixtures/rulesets/kube-proxy.js';
import { FIXTURES } from '../helpers/paths.js';

const corpus = (name: string) => readFileSync(path.join(FIXTURES, 'rulesets', name), 'utf8');
const nft = () => parseNftJson(corpus('nat.nft.json'), parseNftText(corpus('nat.nft.listing')));

/** A SYN from the client to dst:dport, in on eth-cli, rewritten at PRE_ROUTING to `to`. */
function dnatOf(
  rs: Ruleset,
  dst: string,
  dport: number,
  to: { dst: string; dport: number },
  o: Partial<NatContext> = {},
) {
  const packet = { family: 4 as const, proto: 'tcp', src: '198.18.1.1', dst, sport: 40000, dport, iif: 'eth-cli' };
  return attributeNat(rs, {
    family: 4,
    hook: 'PRE_ROUTING',
    after: -Infinity,
    before: Infinity,
    packet,
    to: { src: packet.src, sport: packet.sport, ...to },
    packetKind: 'first',
    counterDeltas: new Map(),
    countersTrusted: false,
    prefix: '',
    ...o,
  });
}

/** A packet from src leaving on oif, its source rewritten at POST_ROUTING to `to`. */
function snatOf(
  rs: Ruleset,
  src: string,
  oif: string,
  to: { src: string; sport?: number },
  o: Partial<NatContext> = {},
) {
  const packet = {
    family: 4 as const,
    proto: 'tcp',
    src,
    dst: '198.18.2.2',
    sport: 40000,
    dport: 22,
    iif: 'eth-cli',
    oif,
  };
  return attributeNat(rs, {
    family: 4,
    hook: 'POST_ROUTING',
    after: -Infinity,
    before: Infinity,
    packet,
    to: { dst: packet.dst, dport: packet.dport, sport: to.sport ?? packet.sport, src: to.src },
    packetKind: 'first',
    counterDeltas: new Map(),
    countersTrusted: false,
    prefix: '',
    ...o,
  });
}

const IPTABLES_NAT = `*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
[3:180] -A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.2.2:8080
[1:60] -A PREROUTING -p tcp -m tcp --dport 81 -j DNAT --to-destination 198.18.2.2-198.18.2.5:8000-8010
[0:0] -A PREROUTING -p tcp -m tcp --dport 82 -j REDIRECT --to-ports 8080
[0:0] -A PREROUTING -p tcp -m tcp --dport 83 -j DNAT --to-destination 198.18.2.9
[2:120] -A POSTROUTING -o eth-srv -j MASQUERADE --to-ports 20000-30000 --random-fully
[0:0] -A POSTROUTING -s 198.18.1.0/24 -o eth-up -j SNAT --to-source 198.51.100.1
COMMIT
`;

test('iptables NAT targets: what each rewrites to, by its --to-destination, --to-source and --to-ports', () => {
  const chains = parseIptablesSave(IPTABLES_NAT, 4, 'iptables-legacy');
  const nat = (name: string) => chains.find((c) => c.name === name)!.rules.map((r) => [r.verdict, r.nat]);
  assert.deepEqual(nat('PREROUTING'), [
    ['accept', { kind: 'dnat', addrs: ['198.18.2.2'], ports: ['8080'] }],
    ['accept', { kind: 'dnat', addrs: ['198.18.2.2-198.18.2.5'], ports: ['8000-8010'] }],
    ['accept', { kind: 'redirect', ports: ['8080'] }],
    ['accept', { kind: 'dnat', addrs: ['198.18.2.9'] }],
  ]);
  assert.deepEqual(nat('POSTROUTING'), [
    ['accept', { kind: 'masquerade', ports: ['20000-30000'] }],
    ['accept', { kind: 'snat', addrs: ['198.51.100.1'] }],
  ]);
  // ip6tables brackets an address that has a port.
  const [pre6] = parseIptablesSave(
    '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination [fd00:198:18:2::2]:8080\n-A PREROUTING -p tcp -m tcp --dport 81 -j DNAT --to-destination fd00:198:18:2::3\nCOMMIT\n',
    6,
    'iptables-nft',
  );
  assert.deepEqual(
    pre6!.rules.map((r) => r.nat),
    [
      { kind: 'dnat', addrs: ['fd00:198:18:2::2'], ports: ['8080'] },
      { kind: 'dnat', addrs: ['fd00:198:18:2::3'] },
    ],
  );
});

test('nft NAT statements: dnat, snat, masquerade, redirect, and a dnat by a map of address . port', () => {
  const rs = nft();
  const rule = (chain: string, handle: number) =>
    rs.chains.find((c) => c.name === chain)!.rules.find((r) => r.handle === handle)!;
  assert.deepEqual(rule('endpoint-ZCZBVNAZ-ns1/svc1/tcp/p80__198.18.128.2/80', 23).nat, {
    kind: 'dnat',
    addrs: ['198.18.128.2'],
    ports: [80],
  });
  assert.deepEqual(rule('prerouting', 4).nat, {
    kind: 'dnat',
    map: {
      key: [{ field: 'daddr' }, { field: 'dport', proto: 'tcp' }],
      entries: [
        { key: ['198.18.1.254', 2201], addr: '198.18.2.2', port: 22 },
        { key: ['198.18.1.254', 2202], addr: '198.18.2.3', port: 22 },
      ],
    },
  });
  assert.equal(rule('prerouting', 4).text, 'iifname "eth-cli" dnat ip to ip daddr . tcp dport map @forwards');
  assert.deepEqual(rule('prerouting', 6).nat, { kind: 'redirect', ports: [8080] });
  assert.deepEqual(rule('masquerading', 14).nat, { kind: 'masquerade' });
  assert.deepEqual(rule('postrouting', 8).nat, { kind: 'snat', addrs: ['198.18.2.254'] });
  // `dnat ip to` in an ip table, and every NAT statement ends the chain.
  assert.ok(rs.chains.flatMap((c) => c.rules).every((r) => !r.nat || r.verdict === 'accept'));
});

test('a target gives the new tuple: its address (range) and port (range); DNAT keeps a port it does not name, SNAT may change it', () => {
  const p = { family: 4 as const, proto: 'tcp', src: '198.18.1.1', dst: '198.18.1.254', sport: 40000, dport: 81 };
  const to = (dst: string, dport: number) => ({ src: p.src, sport: p.sport, dst, dport });
  const range = { kind: 'dnat' as const, addrs: ['198.18.2.2-198.18.2.5'], ports: ['8000-8010'] };
  assert.equal(natGives(range, p, to('198.18.2.4', 8005)), true);
  assert.equal(natGives(range, p, to('198.18.2.6', 8005)), false);
  assert.equal(natGives(range, p, to('198.18.2.4', 8011)), false);
  assert.equal(natGives({ kind: 'dnat', addrs: ['198.18.2.9'] }, p, to('198.18.2.9', 81)), true);
  assert.equal(natGives({ kind: 'dnat', addrs: ['198.18.2.9'] }, p, to('198.18.2.9', 8080)), false);
  assert.equal(natGives({ kind: 'redirect', ports: ['8080'] }, p, to('198.18.1.254', 8080)), true);
  const snat = { kind: 'snat' as const, addrs: ['198.51.100.1'] };
  assert.equal(natGives(snat, p, { ...p, src: '198.51.100.1', sport: 1024 }), true, 'a clash may move the port');
  assert.equal(
    natGives({ kind: 'masquerade', ports: ['20000-30000'] }, p, { ...p, src: '198.18.2.254', sport: 1024 }),
    false,
  );
  // A map: the element for the packet, none (the rule does nothing), or a map that could not be read.
  const map = {
    kind: 'dnat' as const,
    map: {
      key: [{ field: 'daddr' as const }, { field: 'dport' as const, proto: 'tcp' as const }],
      entries: [{ key: ['198.18.1.254', 81], addr: '198.18.2.3', port: 22 }],
    },
  };
  assert.equal(natGives(map, p, to('198.18.2.3', 22)), true);
  assert.equal(natGives(map, { ...p, dport: 82 }, to('198.18.2.3', 22)), false);
  assert.equal(natGives(map, { ...p, proto: 'udp' }, to('198.18.2.3', 22)), false, 'a tcp dport key misses udp');
  assert.equal(natGives({ ...map, map: { ...map.map, entries: null } }, p, to('198.18.2.3', 22)), null);
});

test('the DNAT rule by its counter and match; conntrack when the packet may be a later one and no rule counted it', () => {
  const rs: Ruleset = { chains: parseIptablesSave(IPTABLES_NAT, 4, 'iptables-legacy') };
  const pre = rs.chains.find((c) => c.name === 'PREROUTING')!;
  const moved = (i: number) => new Map(pre.rules.map((r, k) => [ruleKey(pre, r), k === i ? 1 : 0]));
  const named = dnatOf(
    rs,
    '198.18.1.254',
    80,
    { dst: '198.18.2.2', dport: 8080 },
    { counterDeltas: moved(0), countersTrusted: true, prefix: 'ip netns exec r ' },
  );
  assert.equal(named.by, 'rule');
  assert.deepEqual(
    [named.rule?.rule?.text, named.rule?.rule?.found, named.rule?.table, named.rule?.chain],
    [
      'iptables-legacy -t nat -A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.2.2:8080',
      'counters+match',
      'nat',
      'PREROUTING',
    ],
  );
  assert.equal(named.rule?.inspect, 'ip netns exec r iptables-legacy -t nat -L PREROUTING -v -n --line-numbers');
  // A datagram (a rule or conntrack) whose rule's counter did not move since a baseline from before: conntrack.
  const later = dnatOf(
    rs,
    '198.18.1.254',
    80,
    { dst: '198.18.2.2', dport: 8080 },
    { counterDeltas: moved(-1), countersTrusted: true, packetKind: 'unknown' },
  );
  assert.deepEqual([later.by, later.rule], ['conntrack', undefined]);
  assert.match(later.why!, /no NAT rule that gives it counted a packet/);
  // Without counters that tell, the one rule whose match and target fit, for a first SYN.
  const byMatch = dnatOf(rs, '198.18.1.254', 81, { dst: '198.18.2.3', dport: 8001 });
  assert.deepEqual([byMatch.by, byMatch.rule?.rule?.position, byMatch.rule?.rule?.found], ['rule', 2, 'match']);
  // A rewrite no rule gives: never a rule named.
  const none = dnatOf(rs, '198.18.1.254', 80, { dst: '198.18.2.7', dport: 8080 });
  assert.deepEqual([none.by, none.rule], ['unknown', undefined]);
  assert.match(none.why!, /no NAT rule at PRE_ROUTING \(ip nat PREROUTING\) gives this rewrite/);
  // Only the chains between the probes around the rewrite.
  const outside = dnatOf(rs, '198.18.1.254', 80, { dst: '198.18.2.2', dport: 8080 }, { after: -100, before: 0 });
  assert.match(outside.why!, /no NAT chain at PRE_ROUTING/);
});

test("Docker's published port: the DNAT behind the addrtype jump; its MASQUERADE for a container's way out", () => {
  const docker: Ruleset = { chains: parseIptablesSave(corpus('docker.rules'), 4, 'iptables-nft') };
  const published = dnatOf(docker, '198.18.1.254', 3306, { dst: '198.18.2.2', dport: 3306 });
  assert.deepEqual(
    [published.by, published.rule?.rule?.text, published.rule?.owner],
    [
      'rule',
      'iptables -t nat -A DOCKER ! -i br0 -p tcp -m tcp --dport 3306 -j DNAT --to-destination 198.18.2.2:3306',
      'docker',
    ],
  );
  const out = snatOf(docker, '198.18.2.2', 'eth-up', { src: '198.18.1.254' });
  assert.equal(out.rule?.rule?.text, 'iptables -t nat -A POSTROUTING -s 198.18.2.0/24 ! -o br0 -j MASQUERADE');
  assert.equal(snatOf(docker, '198.18.2.2', 'br0', { src: '198.18.1.254' }).by, 'unknown', 'not toward br0');
});

test('kube-proxy (iptables): the endpoint the statistic picked is the KUBE-SEP whose DNAT gives the new address', () => {
  const { text } = kubeProxyRuleset({ services: 3, endpoints: 3, empty: 1 });
  const kube: Ruleset = { chains: parseIptablesSave(text, 4, 'iptables-nft') };
  // Service 2 (198.19.0.2:80) has pods 4 to 6; the SYN went to the fifth pod.
  const a = dnatOf(kube, '198.19.0.2', 80, { dst: '198.18.128.5', dport: 80 });
  assert.equal(a.by, 'rule');
  assert.match(a.rule!.rule!.text, /^iptables -t nat -A KUBE-SEP-\w+ .*-j DNAT --to-destination 198\.18\.128\.5:80$/);
  assert.deepEqual([a.rule?.owner, a.rule?.rule?.found], ['kube-proxy', 'match']);
});

test('kube-proxy (nftables): through the service map and the numgen map to the endpoint chain; a gateway map', () => {
  const rs = nft();
  const a = dnatOf(rs, '198.19.0.1', 80, { dst: '198.18.128.2', dport: 80 });
  assert.deepEqual(
    [a.by, a.rule?.chain, a.rule?.rule?.text, a.rule?.rule?.handle, a.rule?.owner],
    [
      'rule',
      'endpoint-ZCZBVNAZ-ns1/svc1/tcp/p80__198.18.128.2/80',
      'meta l4proto tcp dnat to 198.18.128.2:80',
      23,
      'kube-proxy',
    ],
  );
  assert.equal(a.rule?.inspect, 'nft -a list chain ip kube-proxy endpoint-ZCZBVNAZ-ns1/svc1/tcp/p80__198.18.128.2/80');
  // The gateway's port forward by its map: the element for 198.18.1.254:2202.
  const fwd = dnatOf(rs, '198.18.1.254', 2202, { dst: '198.18.2.3', dport: 22 });
  assert.deepEqual(
    [fwd.rule?.rule?.text, fwd.rule?.rule?.found],
    ['iifname "eth-cli" dnat ip to ip daddr . tcp dport map @forwards', 'match'],
  );
  assert.equal(
    dnatOf(rs, '198.18.1.254', 2202, { dst: '198.18.2.2', dport: 22 }).by,
    'unknown',
    'not what the map gives',
  );
  // A counted rule whose counter moved.
  const gw = rs.chains.find((c) => c.table === 'gateway' && c.name === 'prerouting')!;
  const counted = gw.rules.find((r) => r.handle === 5)!;
  const by = dnatOf(
    rs,
    '198.18.1.254',
    8443,
    { dst: '198.18.2.2', dport: 443 },
    {
      counterDeltas: new Map([[ruleKey(gw, counted), 1]]),
      countersTrusted: true,
    },
  );
  assert.deepEqual([by.rule?.rule?.handle, by.rule?.rule?.found], [5, 'counters+match']);
});

test('two source NAT rules that both fit and count nothing: a guess with both, never one named', () => {
  const rs = nft();
  // kube-proxy's masquerade (returns unmarked packets first: beyond the model) and the gateway's snat both give it.
  const a = snatOf(rs, '198.18.1.1', 'eth-srv', { src: '198.18.2.254' });
  assert.deepEqual([a.by, a.rule?.rule, a.rule?.guess], ['rule', null, true]);
  assert.deepEqual(a.rule?.candidates, [
    'masquerade fully-random',
    'ip saddr 198.18.1.0/24 oifname "eth-srv" snat to 198.18.2.254',
  ]);
  // A datagram: a rule, or conntrack.
  const d = snatOf(rs, '198.18.1.1', 'eth-srv', { src: '198.18.2.254' }, { packetKind: 'unknown' });
  assert.equal(d.by, 'unknown');
  assert.match(d.why!, /or conntrack did/);
});

test('what the NAT rules can have seen: a first SYN, a later packet or the reply once the flow was NAT-ed, or either', () => {
  const syn = { proto: IPPROTO.TCP, flags: TCP.SYN, retransmit: 0, src: 'c', dst: 'r', sport: 40000, dport: 80 };
  const noNat = { nat: null };
  assert.deepEqual(natPacket(syn, noNat), { packet: 'first' });
  assert.deepEqual(natPacket({ ...syn, retransmit: 1 }, noNat), { packet: 'unknown' }, 'its first copy may have died');
  assert.deepEqual(natPacket({ ...syn, flags: TCP.ACK }, noNat), { packet: 'later' });
  assert.deepEqual(natPacket({ ...syn, proto: IPPROTO.UDP, flags: 0 }, noNat), { packet: 'unknown' });
  const kept = { nat: { final: { src: 'c', dst: 's', sport: 40000, dport: 8080 }, first: true } };
  const reply = { ...syn, flags: TCP.SYN | TCP.ACK, src: 's', dst: 'c', sport: 8080, dport: 40000 };
  assert.deepEqual(natPacket(reply, kept), { packet: 'later', reply: true });
  assert.deepEqual(natPacket({ ...syn, proto: IPPROTO.UDP, flags: 0 }, kept), { packet: 'later' });
  assert.deepEqual(
    natPacket(reply, { nat: { ...kept.nat, first: false } }),
    { packet: 'later' },
    'which way is the reply is not known',
  );
});

test('a rewrite in words: the end it changed, to what, and who', () => {
  const base = {
    hook: 'PRE_ROUTING' as const,
    from: { src: '198.18.1.1', dst: '198.18.1.254', sport: 40000, dport: 80 },
    to: { src: '198.18.1.1', dst: '198.18.2.2', sport: 40000, dport: 8080 },
  };
  assert.equal(
    rewriteStory({ ...base, packet: 'later', by: 'conntrack' }, 4, true),
    'NAT at PRE_ROUTING: destination rewritten to 198.18.2.2:8080 by conntrack (a later packet of the connection; NAT rules see only its first)',
  );
  const rule = dnatOf({ chains: parseIptablesSave(IPTABLES_NAT, 4, 'iptables-nft') }, '198.18.1.254', 80, {
    dst: '198.18.2.2',
    dport: 8080,
  });
  assert.equal(
    rewriteStory({ ...base, packet: 'first', ...rule }, 4, true),
    'NAT at PRE_ROUTING: destination rewritten to 198.18.2.2:8080 by rule iptables -t nat -A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination 198.18.2.2:8080 (table ip nat chain PREROUTING, iptables-nft; found by match)',
  );
  // ICMP has no ports: an error's are those of the packet it quotes, which conntrack rewrites too.
  const icmp = { ...base, from: { ...base.from, sport: 53 }, to: { ...base.to, sport: 5353 } };
  assert.equal(
    rewriteStory({ ...icmp, packet: 'later', by: 'conntrack' }, 4, false),
    'NAT at PRE_ROUTING: destination rewritten to 198.18.2.2 by conntrack (a later packet of the connection; NAT rules see only its first)',
  );
  const both = {
    ...base,
    to: { src: '198.18.2.254', dst: '198.18.2.2', sport: 1024, dport: 8080 },
    hook: 'POST_ROUTING' as const,
  };
  assert.equal(
    rewriteStory({ ...both, packet: 'first' }, 4, true),
    'NAT at POST_ROUTING: destination rewritten to 198.18.2.2:8080 and source to 198.18.2.254:1024 by what is not known: the ruleset could not be read',
  );
});
