// The ruleset model and the read-only attribution, on captured tool output.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { attributeDrop, ruleCovers, type DropContext } from '../../src/rules/attribute.js';
import { parseIptablesSave } from '../../src/rules/iptables.js';
import { chainOwner, ownerHint, policyKey, ruleKey, type Ruleset } from '../../src/rules/model.js';
import { parseNftJson, parseNftText } from '../../src/rules/nft.js';
import { layoutChanges, layoutSignature, planGaps } from '../../src/rules/plan.js';
import { assemble, failed, notInstalled, RulesetReader } from '../../src/rules/read.js';
import { parsePacketFields, parseTraceLine, traceRules } from '../../src/rules/ruletrace.js';
import { emptyService, kubeProxyRuleset } from '../fixtures/rulesets/kube-proxy.js';
import { FIXTURES } from '../helpers/paths.js';

// `nft -j list ruleset` of: iptables-nft raw PREROUTING accept + filter INPUT drop, and inet t c at priority 10.
const NFT_JSON = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6' } },
    { table: { family: 'ip', name: 'raw', handle: 1 } },
    {
      chain: {
        family: 'ip',
        table: 'raw',
        name: 'PREROUTING',
        handle: 1,
        type: 'filter',
        hook: 'prerouting',
        prio: -300,
        policy: 'accept',
      },
    },
    {
      rule: {
        family: 'ip',
        table: 'raw',
        chain: 'PREROUTING',
        handle: 2,
        expr: [
          { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 3306 } },
          { counter: { packets: 5, bytes: 300 } },
          { accept: null },
        ],
      },
    },
    { table: { family: 'ip', name: 'filter', handle: 2 } },
    {
      chain: {
        family: 'ip',
        table: 'filter',
        name: 'INPUT',
        handle: 1,
        type: 'filter',
        hook: 'input',
        prio: 0,
        policy: 'accept',
      },
    },
    {
      rule: {
        family: 'ip',
        table: 'filter',
        chain: 'INPUT',
        handle: 2,
        expr: [
          { match: { op: '==', left: { payload: { protocol: 'udp', field: 'dport' } }, right: 53 } },
          { counter: { packets: 0, bytes: 0 } },
          { drop: null },
        ],
      },
    },
    {
      rule: {
        family: 'ip',
        table: 'filter',
        chain: 'INPUT',
        handle: 3,
        expr: [
          { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 3306 } },
          { counter: { packets: 7, bytes: 420 } },
          { drop: null },
        ],
      },
    },
    { table: { family: 'inet', name: 't', handle: 3 } },
    {
      chain: {
        family: 'inet',
        table: 't',
        name: 'c',
        handle: 1,
        type: 'filter',
        hook: 'input',
        prio: 10,
        policy: 'accept',
      },
    },
    {
      rule: {
        family: 'inet',
        table: 't',
        chain: 'c',
        handle: 2,
        expr: [
          {
            match: {
              op: '==',
              left: { payload: { protocol: 'ip', field: 'saddr' } },
              right: { prefix: { addr: '198.18.0.0', len: 24 } },
            },
          },
          { drop: null },
        ],
      },
    },
    { table: { family: 'inet', name: 'pathtrace_42', handle: 4 } },
    {
      chain: {
        family: 'inet',
        table: 'pathtrace_42',
        name: 'pre',
        handle: 1,
        type: 'filter',
        hook: 'prerouting',
        prio: -2147483648,
        policy: 'accept',
      },
    },
  ],
});
const NFT_TEXT = `table ip filter { # handle 2
\tchain INPUT { # handle 1
\t\ttype filter hook input priority filter; policy accept;
\t\tudp dport 53 counter packets 0 bytes 0 drop # handle 2
\t\ttcp dport 3306 counter packets 7 bytes 420 drop # handle 3
\t}
}
table inet t { # handle 3
\tchain c { # handle 1
\t\ttype filter hook input priority filter + 10; policy accept;
\t\tip saddr 198.18.0.0/24 drop # handle 2
\t}
}`;
const IPT_NFT_SAVE = `*filter
:INPUT ACCEPT [0:0]
[0:0] -A INPUT -p udp -m udp --dport 53 -j DROP
[7:420] -A INPUT -p tcp -m tcp --dport 3306 -j DROP
COMMIT`;
const LEGACY_SAVE = `*filter
:INPUT DROP [3:180]
:FORWARD ACCEPT [0:0]
:f2b-sshd - [0:0]
[2:120] -A INPUT -p tcp -m tcp --dport 22 -j f2b-sshd
[1:60] -A INPUT -s 10.0.0.0/8 -m conntrack --ctstate NEW -j ACCEPT
[0:0] -A f2b-sshd -s 192.0.2.1/32 -j REJECT --reject-with icmp-port-unreachable
COMMIT`;

const rs = () => assemble(NFT_JSON, NFT_TEXT, IPT_NFT_SAVE, '', LEGACY_SAVE, '');
const packet = { family: 4 as const, proto: 'tcp', src: '198.18.0.1', dst: '198.18.0.2', sport: 40000, dport: 3306 };

test('assemble: nft chains, iptables-nft tables marked with iptables texts, legacy chains at standard priorities; our own tables left out', () => {
  const r = rs();
  const input = r.chains.find((c) => c.table === 'filter' && c.name === 'INPUT' && c.source === 'iptables-nft')!;
  assert.deepEqual([input.hook, input.priority, input.rules.length], ['LOCAL_IN', 0, 2]);
  assert.equal(input.rules[1].text, 'iptables -A INPUT -p tcp -m tcp --dport 3306 -j DROP');
  assert.equal(input.rules[1].handle, 3);
  const t = r.chains.find((c) => c.table === 't')!;
  assert.equal(t.rules[0].text, 'ip saddr 198.18.0.0/24 drop');
  const legacy = r.chains.find((c) => c.source === 'iptables-legacy' && c.name === 'INPUT')!;
  assert.deepEqual(
    [legacy.priority, legacy.policy, legacy.rules[0].verdict, legacy.rules[0].target],
    [0, 'drop', 'jump', 'f2b-sshd'],
  );
  assert.equal(legacy.rules[1].matches, null, 'conntrack matches are beyond the model');
  assert.ok(!r.chains.some((c) => c.table.startsWith('pathtrace_')));
  assert.equal(chainOwner('filter', 'f2b-sshd'), 'fail2ban');
});

test('probes go one above each chain priority, between chains only', () => {
  const gaps = planGaps(rs()).filter((g) => g.family === 4 && g.hook === 'LOCAL_IN');
  // iptables-nft filter (0) and legacy filter (0) share a priority; inet t at 10.
  assert.deepEqual(
    gaps.map((g) => [g.priority, g.slot]),
    [[1, 1]],
  );
  assert.ok(
    layoutChanges(layoutSignature({ chains: [] }), layoutSignature(rs())).includes(
      '+ip raw PREROUTING (PRE_ROUTING, priority -300)',
    ),
  );
});

test('a rule covers a packet when every condition holds; unknown conditions make it a maybe', () => {
  const r = rs();
  const [udp, tcp] = r.chains.find((c) => c.table === 'filter' && c.source === 'iptables-nft')!.rules;
  assert.equal(ruleCovers(udp, packet), false);
  assert.equal(ruleCovers(tcp, packet), true);
  assert.equal(ruleCovers(r.chains.find((c) => c.table === 't')!.rules[0], packet), true, 'prefix match');
  assert.equal(
    ruleCovers(r.chains.find((c) => c.source === 'iptables-legacy')!.rules[1], { ...packet, src: '10.1.2.3' }),
    null,
  );
});

function ctx(over: Partial<DropContext>): DropContext {
  return {
    family: 4,
    hook: 'LOCAL_IN',
    after: -2147483647,
    before: 1,
    location: 'nft_do_chain',
    packet,
    counterDeltas: new Map(),
    prefix: '',
    ...over,
  };
}

test('attribution: the bracketed chain; the rule whose counter moved; commands to inspect and remove it', () => {
  const r = rs();
  const input = r.chains.find((c) => c.table === 'filter' && c.source === 'iptables-nft')!;
  const a = attributeDrop(r, ctx({ counterDeltas: new Map([[ruleKey(input, input.rules[1]), 1]]) }))!;
  assert.deepEqual(
    [a.table, a.chain, a.source, a.rule!.position, a.rule!.found],
    ['filter', 'INPUT', 'iptables-nft', 2, 'counters+match'],
  );
  assert.equal(a.remove, 'iptables -D INPUT 2');
  // Without counters, the match alone.
  assert.equal(attributeDrop(r, ctx({}))!.rule!.found, 'match');
  // Bracketed above filter: only inet t c.
  const t = attributeDrop(r, ctx({ after: 1, before: 2147483646 }))!;
  assert.deepEqual(
    [t.table, t.chain, t.rule!.text, t.remove],
    ['t', 'c', 'ip saddr 198.18.0.0/24 drop', 'nft delete rule inet t c handle 2'],
  );
  // Freed by nf_hook_slow: the legacy table; its rules cannot cover the packet, its policy drops.
  const legacy = attributeDrop(r, ctx({ location: 'nf_hook_slow', packet: { ...packet, dport: 80 } }))!;
  assert.equal(legacy.source, 'iptables-legacy');
  assert.ok(legacy.guess || legacy.rule?.found === 'policy');
});

test('attribution from a trampoline: the chain that returned the drop, by its table and priority', () => {
  const r = rs();
  // fexit of nft_do_chain saw table "t" at priority 10 return the drop: not the filter table at 0.
  const t = attributeDrop(r, ctx({ after: 9, before: 11, table: 't', packet: { ...packet, dport: 80 } }))!;
  assert.deepEqual([t.table, t.chain, t.rule!.found], ['t', 'c', 'match']);
  // The table's name decides between chains at one priority; one the ruleset lacks names nothing.
  assert.equal(attributeDrop(r, ctx({ after: -1, before: 1, table: 'filter' }))!.chain, 'INPUT');
  assert.equal(attributeDrop(r, ctx({ after: -1, before: 1, table: 'nosuch' })), null);
});

test('counters that predate the drop: a counting rule that did not move did not drop it; the policy did', () => {
  // ufw's shape: INPUT policy DROP, a broad DROP rule that counts (ctstate INVALID: pathtrace cannot match it),
  // and one whose match covers the packet; neither counter moved.
  const save = `*filter
:INPUT DROP [0:0]
[0:0] -A INPUT -m conntrack --ctstate INVALID -j DROP
[0:0] -A INPUT -p tcp -m tcp --dport 3306 -j DROP
COMMIT`;
  const nftJson = JSON.stringify({
    nftables: [
      { table: { family: 'ip', name: 'filter', handle: 1 } },
      {
        chain: {
          family: 'ip',
          table: 'filter',
          name: 'INPUT',
          handle: 1,
          type: 'filter',
          hook: 'input',
          prio: 0,
          policy: 'drop',
        },
      },
      {
        rule: {
          family: 'ip',
          table: 'filter',
          chain: 'INPUT',
          handle: 2,
          expr: [{ xt: { type: 'match', name: 'conntrack' } }, { counter: { packets: 0, bytes: 0 } }, { drop: null }],
        },
      },
      {
        rule: {
          family: 'ip',
          table: 'filter',
          chain: 'INPUT',
          handle: 3,
          expr: [
            { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 3306 } },
            { counter: { packets: 0, bytes: 0 } },
            { drop: null },
          ],
        },
      },
    ],
  });
  const r = assemble(nftJson, '', save, '', '', '');
  // The kernel counted the drop on the policy (iptables-save -c shows policy counters).
  const policyMoved = new Map([[policyKey(r.chains[0]), 1]]);
  const trusted = attributeDrop(r, ctx({ countersTrusted: true, counterDeltas: policyMoved }))!;
  assert.equal(trusted.rule!.found, 'policy');
  assert.equal(trusted.guess, undefined);
  // Nothing moved, not even the policy: nothing explains it, so no answer is given as certain.
  const nothing = attributeDrop(r, ctx({ countersTrusted: true }))!;
  assert.deepEqual([nothing.rule, nothing.guess], [null, true]);
  // A baseline read after the drop may hold it already: then the counters prove nothing, and either rule may have.
  const untrusted = attributeDrop(r, ctx({}))!;
  assert.deepEqual([untrusted.rule, untrusted.guess, untrusted.candidates?.length], [null, true, 2]);
});

test('verdicts of every kind: an iptables-nft REJECT (an xt target in nft JSON) and a verdict map are candidates', () => {
  const nftJson = JSON.stringify({
    nftables: [
      { table: { family: 'ip', name: 'filter', handle: 1 } },
      {
        chain: {
          family: 'ip',
          table: 'filter',
          name: 'INPUT',
          handle: 1,
          type: 'filter',
          hook: 'input',
          prio: 0,
          policy: 'accept',
        },
      },
      {
        rule: {
          family: 'ip',
          table: 'filter',
          chain: 'INPUT',
          handle: 2,
          expr: [
            { match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: 3306 } },
            { counter: { packets: 1, bytes: 60 } },
            { xt: { type: 'target', name: 'REJECT' } },
          ],
        },
      },
      { table: { family: 'inet', name: 'fw', handle: 2 } },
      {
        chain: {
          family: 'inet',
          table: 'fw',
          name: 'in',
          handle: 1,
          type: 'filter',
          hook: 'input',
          prio: 10,
          policy: 'accept',
        },
      },
      {
        rule: {
          family: 'inet',
          table: 'fw',
          chain: 'in',
          handle: 2,
          expr: [
            {
              vmap: {
                key: { payload: { protocol: 'tcp', field: 'dport' } },
                data: {
                  set: [
                    [22, { accept: null }],
                    [3306, { drop: null }],
                  ],
                },
              },
            },
          ],
        },
      },
    ],
  });
  const save = `*filter
:INPUT ACCEPT [0:0]
[1:60] -A INPUT -p tcp -m tcp --dport 3306 -j REJECT --reject-with tcp-reset
COMMIT`;
  const r = assemble(nftJson, '', save, '', '', '');
  const input = r.chains.find((c) => c.name === 'INPUT')!;
  assert.deepEqual([input.rules[0].verdict, input.rules[0].matches?.length], ['reject', 2]);
  const reject = attributeDrop(r, ctx({ before: 1 }))!;
  assert.deepEqual(
    [reject.chain, reject.rule!.text, reject.rule!.found],
    ['INPUT', 'iptables -A INPUT -p tcp -m tcp --dport 3306 -j REJECT --reject-with tcp-reset', 'match'],
  );
  // Without iptables' texts, the xt target alone still reads as a reject.
  assert.equal(
    assemble(nftJson, '', '', '', '', '').chains.find((c) => c.name === 'INPUT')!.rules[0].verdict,
    'reject',
  );
  const vmap = r.chains.find((c) => c.name === 'in')!.rules[0];
  assert.deepEqual([vmap.verdict, vmap.matches], ['drop', null]);
  const fw = attributeDrop(r, ctx({ after: 9, before: 11 }))!;
  assert.deepEqual([fw.table, fw.chain, fw.guess], ['fw', 'in', true]);
});

test('a chain reached only by a jump whose match cannot fit the packet holds no candidate', () => {
  const nftJson = JSON.stringify({
    nftables: [
      { table: { family: 'inet', name: 'fw', handle: 1 } },
      {
        chain: {
          family: 'inet',
          table: 'fw',
          name: 'in',
          handle: 1,
          type: 'filter',
          hook: 'input',
          prio: 0,
          policy: 'accept',
        },
      },
      {
        rule: {
          family: 'inet',
          table: 'fw',
          chain: 'in',
          handle: 2,
          expr: [
            { match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'nosuch' } },
            { jump: { target: 'other' } },
          ],
        },
      },
      {
        rule: {
          family: 'inet',
          table: 'fw',
          chain: 'in',
          handle: 3,
          expr: [
            { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '198.18.0.1' } },
            { drop: null },
          ],
        },
      },
      { chain: { family: 'inet', table: 'fw', name: 'other', handle: 4 } },
      { rule: { family: 'inet', table: 'fw', chain: 'other', handle: 5, expr: [{ reject: null }] } },
    ],
  });
  const r = assemble(nftJson, '', '', '', '', '');
  const a = attributeDrop(r, ctx({ after: -1, before: 1, packet: { ...packet, iif: 'eth0' } }))!;
  assert.deepEqual([a.chain, a.rule!.handle, a.rule!.found], ['in', 3, 'match']);
});

test('hints in the words of the tool that owns the chain', () => {
  assert.match(
    ownerHint('ufw', 'ufw-user-input', '', 'ip netns exec web ')!,
    /ip netns exec web ufw status numbered, then ip netns exec web ufw delete NUM/,
  );
  assert.match(ownerHint('firewalld', 'filter_IN_public_deny', '', '')!, /firewall-cmd --list-all/);
  assert.match(ownerHint('docker', 'DOCKER-USER', '', '')!, /your own rules/);
  assert.match(ownerHint('docker', 'DOCKER-ISOLATION-STAGE-2', '', '')!, /put rules of your own in DOCKER-USER/);
  assert.match(
    ownerHint(
      'kube-proxy',
      'KUBE-SERVICES',
      'iptables -A KUBE-SERVICES -d 10.0.0.1/32 -p tcp -m comment --comment "default/web has no endpoints" -j REJECT',
      '',
    )!,
    /Service without endpoints/,
  );
  assert.equal(ownerHint(undefined, 'INPUT', '', ''), undefined);
  // In an attribution: a DOCKER-USER drop says whose chain it is and what its user does.
  const r = assemble(
    '',
    '',
    '',
    '',
    `*filter
:FORWARD DROP [0:0]
:DOCKER-USER - [0:0]
[0:0] -A FORWARD -j DOCKER-USER
[1:60] -A DOCKER-USER -p tcp -m tcp --dport 3306 -j DROP
COMMIT`,
    '',
  );
  const a = attributeDrop(r, ctx({ hook: 'FORWARD', location: 'nf_hook_slow' }))!;
  assert.deepEqual([a.chain, a.owner], ['DOCKER-USER', 'docker']);
  assert.match(a.hint!, /your own rules/);
});

test('a named set is matched by its elements; the first rule of a chain that surely matches ended the packet', () => {
  const nftJson = JSON.stringify({
    nftables: [
      { table: { family: 'inet', name: 'fw', handle: 1 } },
      {
        set: {
          family: 'inet',
          table: 'fw',
          name: 'blocklist',
          type: 'ipv4_addr',
          flags: ['interval'],
          elem: ['203.0.113.7', { prefix: { addr: '198.18.0.0', len: 24 } }],
        },
      },
      { set: { family: 'inet', table: 'fw', name: 'empty', type: 'ipv4_addr' } },
      {
        chain: {
          family: 'inet',
          table: 'fw',
          name: 'in',
          handle: 2,
          type: 'filter',
          hook: 'input',
          prio: 0,
          policy: 'accept',
        },
      },
      {
        rule: {
          family: 'inet',
          table: 'fw',
          chain: 'in',
          handle: 3,
          expr: [
            { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '@empty' } },
            { drop: null },
          ],
        },
      },
      {
        rule: {
          family: 'inet',
          table: 'fw',
          chain: 'in',
          handle: 4,
          expr: [
            { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '@blocklist' } },
            { drop: null },
          ],
        },
      },
      { rule: { family: 'inet', table: 'fw', chain: 'in', handle: 5, expr: [{ drop: null }] } },
    ],
  });
  const r = assemble(nftJson, '', '', '', '', '');
  const a = attributeDrop(r, ctx({ after: -1, before: 1 }))!;
  assert.deepEqual([a.rule!.handle, a.rule!.found, a.guess], [4, 'match', undefined]);
  // Not in the set: the unconditional rule after it.
  assert.equal(
    attributeDrop(r, ctx({ after: -1, before: 1, packet: { ...packet, src: '192.0.2.1' } }))!.rule!.handle,
    5,
  );
});

test('a rule that may match (a condition pathtrace cannot check) before one that surely does: a guess, in order', () => {
  const nftJson = JSON.stringify({
    nftables: [
      { table: { family: 'inet', name: 'fw', handle: 1 } },
      {
        chain: {
          family: 'inet',
          table: 'fw',
          name: 'in',
          handle: 2,
          type: 'filter',
          hook: 'input',
          prio: 0,
          policy: 'accept',
        },
      },
      {
        rule: {
          family: 'inet',
          table: 'fw',
          chain: 'in',
          handle: 3,
          expr: [{ match: { op: 'in', left: { ct: { key: 'state' } }, right: 'new' } }, { drop: null }],
        },
      },
      {
        rule: {
          family: 'inet',
          table: 'fw',
          chain: 'in',
          handle: 4,
          expr: [
            { match: { op: '==', left: { payload: { protocol: 'ip', field: 'saddr' } }, right: '198.18.0.1' } },
            { drop: null },
          ],
        },
      },
      { rule: { family: 'inet', table: 'fw', chain: 'in', handle: 5, expr: [{ drop: null }] } },
    ],
  });
  const a = attributeDrop(
    assemble(
      nftJson,
      'table inet fw {\n\tchain in {\n\t\tct state new drop # handle 3\n\t\tip saddr 198.18.0.1 drop # handle 4\n\t\tdrop # handle 5\n\t}\n}',
      '',
      '',
      '',
      '',
    ),
    ctx({ after: -1, before: 1 }),
  )!;
  assert.deepEqual([a.rule, a.guess, a.candidates], [null, true, ['ct state new drop', 'ip saddr 198.18.0.1 drop']]);
});

test('--rule-trace: the marking rules and the trace lines', () => {
  assert.deepEqual(traceRules({ ports: [53, 3306], hosts: [], protos: ['tcp', 'udp'] }, 'pre'), [
    'add rule inet TABLE pre meta l4proto { tcp, udp } th sport { 53, 3306 } meta nftrace set 1',
    'add rule inet TABLE pre meta l4proto { tcp, udp } th dport { 53, 3306 } meta nftrace set 1',
  ]);
  assert.equal(traceRules({ ports: null, hosts: ['198.18.0.1', 'fd00:198:18::1'], protos: ['icmp'] }, 'out').length, 4);
  const rule = parseTraceLine(
    'trace id edbac1dd ip filter INPUT rule tcp dport 3306 counter packets 0 bytes 0 drop # handle 2 (verdict drop)',
  )!;
  assert.deepEqual(
    [rule.id, rule.family, rule.table, rule.chain, rule.kind],
    ['edbac1dd', 'ip', 'filter', 'INPUT', 'rule'],
  );
  const pkt = parseTraceLine(
    'trace id edbac1dd ip filter INPUT packet: iif "eth0" ip saddr 198.18.0.1 ip daddr 198.18.0.2 ip id 65036 tcp sport 40374 tcp dport 3306 tcp flags == syn',
  )!;
  assert.deepEqual(parsePacketFields(pkt.rest), {
    src: '198.18.0.1',
    dst: '198.18.0.2',
    sport: 40374,
    dport: 3306,
    ipId: 65036,
  });
  assert.equal(parseNftText(NFT_TEXT).get('ip filter INPUT 3'), 'tcp dport 3306 counter drop');
});

test('iptables-save lines become rules with counters and the command that made them', () => {
  const [input] = parseIptablesSave(IPT_NFT_SAVE, 6, 'iptables-legacy');
  assert.equal(input.rules[0].text, 'ip6tables-legacy -A INPUT -p udp -m udp --dport 53 -j DROP');
  assert.deepEqual(input.rules[1].counter, { packets: 7, bytes: 420 });
});

// ---- the corpus of real rulesets (test/fixtures/rulesets), matched without the kernel ----
const corpus = (name: string) => readFileSync(path.join(FIXTURES, 'rulesets', name), 'utf8');
const synTo = (dport: number, src = '198.18.0.1') => ({
  family: 4 as const,
  proto: 'tcp',
  src,
  dst: '198.18.0.2',
  sport: 40000,
  dport,
  iif: 'eth0',
});
const atInput = (rs: Ruleset, over: Partial<DropContext>) =>
  attributeDrop(rs, {
    family: 4,
    hook: 'LOCAL_IN',
    after: -Infinity,
    before: Infinity,
    location: 'nft_do_chain',
    packet: synTo(3306),
    counterDeltas: new Map(),
    prefix: '',
    ...over,
  });

test('ufw (iptables-nft): a reset names `ufw reject` by its match alone; a silent drop with no rule counting it is the policy', () => {
  const ufw: Ruleset = { chains: parseIptablesSave(corpus('ufw.rules'), 4, 'iptables-nft') };
  const reject = atInput(ufw, { answered: true })!;
  assert.equal(
    reject.rule?.text,
    'iptables -A ufw-user-input -p tcp -m tcp --dport 3306 -j REJECT --reject-with tcp-reset',
  );
  assert.deepEqual([reject.rule?.found, reject.guess, reject.owner], ['match', undefined, 'ufw']);
  // iptables-nft counts every rule (the fixture was saved without -c). None moved since a baseline from
  // before the drop, the INPUT policy's counter did: the INPUT policy.
  for (const c of ufw.chains) for (const r of c.rules) r.counter ??= { packets: 0, bytes: 0 };
  const zero = new Map(ufw.chains.flatMap((c) => c.rules.map((r) => [ruleKey(c, r), 0] as [string, number])));
  zero.set(policyKey(ufw.chains.find((c) => c.name === 'INPUT')!), 1);
  const silent = atInput(ufw, { packet: synTo(8080), answered: false, countersTrusted: true, counterDeltas: zero })!;
  assert.deepEqual([silent.rule?.text, silent.rule?.found], ['policy drop of ip filter INPUT', 'policy']);
  // Without counters or the answer: never a confident rule, the candidates in the order they run.
  const unsure = atInput(ufw, { packet: synTo(8080) })!;
  assert.equal(unsure.guess, true);
  assert.ok(unsure.candidates!.length > 1);
});

test('kube-proxy (6,683 rules): the REJECT of the Service without endpoints, among thousands of rules', () => {
  const shape = { services: 830, endpoints: 2, empty: 20 };
  const { text, rules } = kubeProxyRuleset(shape);
  assert.ok(rules >= 6000, `${rules} rules`);
  const kube: Ruleset = { chains: parseIptablesSave(text, 4, 'iptables-nft') };
  const svc = emptyService(shape, 7);
  const a = attributeDrop(kube, {
    family: 4,
    hook: 'LOCAL_OUT',
    after: -Infinity,
    before: Infinity,
    location: 'nft_do_chain',
    answered: true,
    packet: { family: 4, proto: 'tcp', src: '198.18.0.2', dst: svc.ip, sport: 40000, dport: svc.port, oif: 'eth0' },
    counterDeltas: new Map(),
    prefix: '',
  })!;
  for (const part of [`-d ${svc.ip} `, 'empty7:p80 has no endpoints', '-j REJECT'])
    assert.ok(a.rule!.text.includes(part), a.rule!.text);
  assert.deepEqual([a.chain, a.owner, a.guess], ['KUBE-SERVICES', 'kube-proxy', undefined]);
  assert.match(a.hint!, /Service without endpoints/);
});

test('nftables.conf: a named set by its elements; a verdict map jumps to a chain whose reject is the candidate', () => {
  // nftables.conf loaded in a namespace, as `nft -j list ruleset` and `nft -a list ruleset` printed it.
  const rs = parseNftJson(corpus('nftables.conf.json'), parseNftText(corpus('nftables.conf.listing')));
  // Without counters, the state map (it drops invalid packets, a state pathtrace cannot see) may have: a guess.
  const unsure = atInput(rs, { answered: false })!;
  assert.deepEqual(
    [unsure.guess, unsure.candidates],
    [
      true,
      ['ct state vmap { invalid : drop, established : accept, related : accept }', 'ip saddr @blocklist counter drop'],
    ],
  );
  const counted = rs.chains.find((c) => c.name === 'input')!;
  const setRule = counted.rules.find((r) => r.text.includes('@blocklist'))!;
  const blocked = atInput(rs, {
    answered: false,
    countersTrusted: true,
    counterDeltas: new Map([[ruleKey(counted, setRule), 1]]),
  })!;
  assert.deepEqual([blocked.rule?.text, blocked.rule?.found], ['ip saddr @blocklist counter drop', 'counters+match']);
  const viaMap = atInput(rs, { packet: synTo(3306, '198.18.0.7'), answered: true })!;
  assert.equal(viaMap.chain, 'database');
  assert.match(viaMap.rule!.text, /reject with tcp reset/);
});

test('fail2ban, as its own action files write its rules: the ban named with its jail, and the hint unbans that address', () => {
  const v6 = { ...synTo(3306, 'fd00:198:18::1'), family: 6 as const, dst: 'fd00:198:18::2' };
  // iptables-multiport: INPUT jumps to the jail's chain, where the banned source meets a REJECT.
  const chain = atInput(
    { chains: parseIptablesSave(corpus('fail2ban-multiport.rules'), 4, 'iptables-nft') },
    { answered: true },
  )!;
  assert.deepEqual(
    [chain.rule?.text, chain.rule?.found, chain.chain, chain.owner],
    [
      'iptables -A f2b-mysqld-auth -s 198.18.0.1/32 -j REJECT --reject-with icmp-port-unreachable',
      'match',
      'f2b-mysqld-auth',
      'fail2ban',
    ],
  );
  assert.equal(
    chain.hint,
    'a fail2ban ban (jail mysqld-auth): fail2ban-client status mysqld-auth, and fail2ban-client set mysqld-auth unbanip 198.18.0.1',
  );
  // iptables-ipset: one rule in INPUT itself matches the ipset f2b-JAIL (f2b-JAIL6 for IPv6), which pathtrace cannot
  // read: its counter names it, and its text its owner.
  for (const [file, family, packet] of [
    ['fail2ban-ipset.rules', 4, synTo(3306)],
    ['fail2ban-ipset.rules6', 6, v6],
  ] as const) {
    const rs: Ruleset = { chains: parseIptablesSave(corpus(file), family, 'iptables-nft') };
    const input = rs.chains.find((c) => c.name === 'INPUT')!;
    const counted = atInput(rs, {
      family,
      packet,
      answered: true,
      countersTrusted: true,
      counterDeltas: new Map([[ruleKey(input, input.rules[0]!), 1]]),
    })!;
    assert.deepEqual([counted.chain, counted.rule?.found, counted.owner], ['INPUT', 'counters', 'fail2ban']);
    assert.match(counted.rule!.text, /--match-set f2b-mysqld-auth6? src -j REJECT/);
    assert.match(
      counted.hint!,
      new RegExp(`status mysqld-auth, and fail2ban-client set mysqld-auth unbanip ${packet.src}$`),
    );
    // Without the counter: a guess, its one candidate fail2ban's all the same.
    const unsure = atInput(rs, { family, packet, answered: true })!;
    assert.deepEqual([unsure.guess, unsure.owner], [true, 'fail2ban']);
    assert.match(unsure.hint!, /fail2ban-client set mysqld-auth unbanip/);
  }
  // nftables: table inet f2b-table, chain f2b-chain, the jail's sets addr-set-JAIL and addr6-set-JAIL.
  const nft = parseNftJson(corpus('fail2ban-nftables.json'), parseNftText(corpus('fail2ban-nftables.listing')));
  for (const [family, packet, rule] of [
    [4, synTo(3306), 'tcp dport 3306 ip saddr @addr-set-mysqld-auth reject with icmp port-unreachable'],
    [6, v6, 'tcp dport 3306 ip6 saddr @addr6-set-mysqld-auth reject with icmpv6 port-unreachable'],
  ] as const) {
    const a = atInput(nft, { family, packet, answered: true })!;
    assert.deepEqual(
      [a.rule?.text, a.rule?.found, a.table, a.chain, a.owner],
      [rule, 'match', 'f2b-table', 'f2b-chain', 'fail2ban'],
    );
    assert.match(a.hint!, new RegExp(`\\(jail mysqld-auth\\): .* unbanip ${packet.src}$`));
  }
  // A jail unknown (a rule without text): fail2ban-client status lists the jails.
  assert.equal(
    ownerHint('fail2ban', 'f2b-chain', '', 'ip netns exec web ', '203.0.113.9'),
    'a fail2ban ban: ip netns exec web fail2ban-client status (lists the jails), and ip netns exec web fail2ban-client set JAIL unbanip 203.0.113.9',
  );
});

test('a match that drops by itself (hotdrop): connlimit, hashlimit, ct count; named where nothing else can have', () => {
  // As iptables-save and nft -j print them (iptables-nft: the xt match, then the counter, then the target).
  const save = `*filter
:INPUT ACCEPT [0:0]
[0:0] -A INPUT -p tcp -m tcp --dport 3306 -m connlimit --connlimit-above 100 --connlimit-mask 32 --connlimit-saddr -j REJECT --reject-with icmp-port-unreachable
[0:0] -A INPUT -p tcp -m tcp --dport 80 -m hashlimit --hashlimit-upto 10/sec --hashlimit-mode srcip --hashlimit-name web -j ACCEPT
COMMIT`;
  const legacy = parseIptablesSave(save, 4, 'iptables-legacy')[0]!;
  const tcpTo = (port: number) => [
    { field: 'l4proto', negate: false, values: ['tcp'] },
    { field: 'dport', negate: false, values: [String(port)] },
  ];
  assert.deepEqual(
    legacy.rules.map((r) => r.hotdrop),
    [
      { match: 'connlimit', before: tcpTo(3306) },
      { match: 'hashlimit', before: tcpTo(80) },
    ],
  );
  const tcpDport = (port: number) => ({
    match: { op: '==', left: { payload: { protocol: 'tcp', field: 'dport' } }, right: port },
  });
  const nftRule = (handle: number, expr: object[]) => ({
    rule: { family: 'inet', table: 't', chain: 'c', handle, expr },
  });
  const nft = parseNftJson(
    JSON.stringify({
      nftables: [
        { table: { family: 'inet', name: 't', handle: 1 } },
        {
          chain: {
            family: 'inet',
            table: 't',
            name: 'c',
            handle: 1,
            type: 'filter',
            hook: 'input',
            prio: 0,
            policy: 'accept',
          },
        },
        nftRule(2, [
          tcpDport(22),
          { 'ct count': { val: 5, inv: true } },
          { reject: { type: 'icmpx', expr: 'port-unreachable' } },
        ]),
        nftRule(3, [
          tcpDport(3306),
          { xt: { type: 'match', name: 'connlimit' } },
          { counter: { packets: 0, bytes: 0 } },
          { xt: { type: 'target', name: 'REJECT' } },
        ]),
      ],
    }),
  );
  assert.deepEqual(
    nft.chains[0]!.rules.map((r) => [r.hotdrop?.match, r.hotdrop?.before?.find((m) => m.field === 'dport')?.values]),
    [
      ['ct count', [22]],
      ['connlimit', [3306]],
    ],
  );

  // A silent drop in INPUT (policy accept): the REJECT did not answer it, so only connlimit's own drop is left.
  const rs: Ruleset = { chains: [legacy] };
  const at = (over: Partial<DropContext>) =>
    attributeDrop(rs, ctx({ location: 'nf_hook_slow', packet: synTo(3306), ...over }))!;
  const sure = at({ answered: false });
  assert.deepEqual(
    [sure.rule?.found, sure.rule?.position, sure.hotdrop?.match, sure.hotdrop?.sure, sure.guess],
    ['hotdrop', 1, 'connlimit', true, undefined],
  );
  assert.equal(sure.remove, 'iptables-legacy -D INPUT 1');
  // A reject answers: the rule's verdict (its one candidate, whose limit pathtrace cannot check), not a hotdrop.
  const answered = at({ answered: true });
  assert.deepEqual([answered.guess, answered.candidates?.length, answered.hotdrop], [true, 1, undefined]);
  // To port 8080 no rule's conditions hold up to its match: no hotdrop to name, the chain a guess as before.
  const elsewhere = at({ answered: false, packet: synTo(8080) });
  assert.deepEqual([elsewhere.hotdrop, elsewhere.guess, elsewhere.candidates], [undefined, true, ['ip filter INPUT']]);
  // With a drop policy whose counter did not move (or has none), either may have: a guess naming both.
  const dropPolicy: Ruleset = { chains: [{ ...legacy, policy: 'drop' }] };
  const either = attributeDrop(dropPolicy, ctx({ location: 'nf_hook_slow', packet: synTo(3306), answered: false }))!;
  assert.deepEqual([either.guess, either.hotdrop?.sure, either.candidates?.length], [true, false, 2]);
  assert.equal(either.candidates![0], 'policy drop of ip filter INPUT');
  assert.match(either.candidates![1]!, /-m connlimit/);
  // The policy's counter moved: the policy did.
  const policyMoved = new Map([[policyKey(dropPolicy.chains[0]!), 1]]);
  const counted = attributeDrop(
    { chains: [{ ...dropPolicy.chains[0]!, policyCounter: { packets: 1, bytes: 60 } }] },
    ctx({ location: 'nf_hook_slow', packet: synTo(3306), answered: false, counterDeltas: policyMoved }),
  )!;
  assert.deepEqual([counted.rule?.found, counted.hotdrop], ['policy', undefined]);
});

test("a tool that fails is said with its first line of stderr; iptables' save tools may be missing, nft may not", () => {
  const unread: string[] = [];
  const nftFailed = Object.assign(new Error('Command failed: nft -j list ruleset'), {
    status: 1,
    stderr: 'netlink: Error: cache initialization failed: Operation not permitted\nmore\n',
  });
  assert.equal(failed('nft', ['-j', 'list', 'ruleset'], nftFailed, unread), '');
  const gone = Object.assign(new Error('spawn iptables-nft-save ENOENT'), { code: 'ENOENT' });
  failed('iptables-nft-save', ['-c'], gone, unread);
  failed('nft', ['-a', 'list', 'ruleset'], Object.assign(new Error('spawn nft ENOENT'), { code: 'ENOENT' }), unread);
  // nsenter's own exit status when the tool it runs is not there.
  failed('iptables-legacy-save', ['-c'], Object.assign(new Error('x'), { status: 127, stderr: 'nsenter: …' }), unread);
  assert.deepEqual(unread, [
    '`nft -j list ruleset` failed: netlink: Error: cache initialization failed: Operation not permitted',
    'nft is not installed',
    'iptables-legacy-save is not installed',
  ]);
  // Said at start already (trace/tools.ts): the session does not say those again.
  assert.deepEqual(unread.map(notInstalled), [false, true, true]);
});

test('a reading where the tools fail says so, once per reading, and is no empty ruleset', () => {
  const told: string[][] = [];
  const rs = new RulesetReader('/nonexistent/netns', (u) => told.push(u)).readSync();
  assert.deepEqual(rs.chains, []);
  assert.match(rs.unread?.[0] ?? '', /^`nft -j list ruleset` failed: nsenter: .*\/nonexistent\/netns/);
  assert.deepEqual(told, [rs.unread]);
});
