// Real firewalls' rulesets in their own shapes (issue "Right answers on real hosts"): ufw's, a
// kube-proxy ruleset, firewalld's nftables ruleset and an nftables.conf with a set and verdict maps,
// each loaded in the server's namespace. Packets one rule or policy drops are sent through it, and
// the kernel's own counters say which did: pathtrace must name that one, or say it does not know.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Lab } from '../../src/lab/lab.js';
import { emptyService, kubeProxyRuleset } from '../fixtures/rulesets/kube-proxy.js';
import { moved, readCounters } from '../helpers/kernel-counters.js';
import { needsRoot, sleep, traceLab, type Packet } from '../helpers/pathtrace.js';
import { FIXTURES } from '../helpers/paths.js';

const fixture = (name: string) => readFileSync(path.join(FIXTURES, 'rulesets', name), 'utf8');
const netfilterDrops = (ps: Packet[]) => ps.filter((p) => p.fate === 'dropped' && p.drop.layer === 'netfilter');

/** Traffic, with what the kernel's counters say counted it. */
async function counted(lab: Lab, netns: string, traffic: () => Promise<unknown>): Promise<{ moved: string[] }> {
  const before = readCounters(lab, netns);
  await traffic();
  await sleep(200);
  return { moved: moved(before, readCounters(lab, netns)) };
}

/** Every drop named with the rule the counters moved on, confidently; or, where not, marked a guess
 *  that lists it. Never a confident wrong rule. confident: at least one is named for sure. */
function agrees(drops: Packet[], truth: string, found: RegExp, confident = true): void {
  assert.ok(drops.length >= 1, 'the packet was dropped');
  const named = drops.filter((d) => d.drop.guess === undefined);
  if (confident)
    assert.ok(
      named.length >= 1,
      `at least one drop named with confidence: ${JSON.stringify(drops.map((d) => d.drop))}`,
    );
  for (const d of drops) {
    if (d.drop.guess) assert.ok(d.drop.candidates.includes(truth), `a guess lists the rule: ${JSON.stringify(d.drop)}`);
    else {
      assert.equal(d.drop.rule.text, truth, JSON.stringify(d.drop));
      assert.match(d.drop.rule.found, found);
    }
  }
}

test("ufw: `ufw reject 3306/tcp` answers with a reset; named by its counter, with ufw's own commands", async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => lab.exec(lab.server.netns, 'iptables-restore', [], fixture('ufw.rules')),
      args: ['--port', '3306'],
      traffic: (lab) => counted(lab, lab.server.netns, () => lab.connect('tcp', lab.server.v4, 3306, 400)),
    },
    ({ result, packets, lab }) => {
      const truth = 'iptables -A ufw-user-input -p tcp -m tcp --dport 3306 -j REJECT --reject-with tcp-reset';
      assert.ok(result.moved.includes(truth), `the kernel counted the reject: ${result.moved}`);
      const drops = netfilterDrops(packets);
      agrees(drops, truth, /^counters/);
      for (const d of drops) {
        assert.equal(d.drop.answered, true, 'the reset went out from inside the hook');
        assert.equal(d.drop.owner, 'ufw');
        assert.match(d.drop.hint, new RegExp(`ip netns exec ${lab.server.netns} ufw status numbered`));
      }
      assert.ok(
        packets.some((p) => p.direction === 'out' && p.tcp_flags?.includes('R') && p.origin === 'netfilter'),
        'the RST, sent by netfilter',
      );
    },
  );
});

test('ufw: default deny incoming drops a port no rule names; the INPUT policy, not a DROP rule', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => lab.exec(lab.server.netns, 'iptables-restore', [], fixture('ufw.rules')),
      args: ['--port', '8080'],
      traffic: (lab) => counted(lab, lab.server.netns, () => lab.connect('tcp', lab.server.v4, 8080, 1500)),
    },
    ({ result, packets }) => {
      assert.ok(result.moved.includes('policy filter INPUT'), `the kernel counted the policy: ${result.moved}`);
      assert.deepEqual(
        result.moved.filter((k) => / -j (DROP|REJECT)/.test(k)),
        [],
        'no DROP or REJECT rule counted it',
      );
      const drops = netfilterDrops(packets);
      agrees(drops, 'policy drop of ip filter INPUT', /^policy$/);
      for (const d of drops) assert.equal(d.drop.answered, false, 'a silent drop');
    },
  );
});

test("kube-proxy: a Service without endpoints is rejected in KUBE-SERVICES, named with kube-proxy's hint", async (t) => {
  if (!needsRoot(t)) return;
  const shape = { services: 60, endpoints: 2, empty: 3 };
  const svc = emptyService(shape, 1);
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => {
        lab.exec(lab.server.netns, 'iptables-restore', [], kubeProxyRuleset(shape).text);
        lab.ip(lab.server.netns, 'route', 'add', '198.19.0.0/16', 'dev', lab.server.ifname);
      },
      args: ['--port', '80'],
      traffic: (lab) => counted(lab, lab.server.netns, () => lab.connect('tcp', svc.ip, svc.port, 400, lab.server)),
    },
    ({ result, packets }) => {
      const truth = result.moved.find((k) => k.includes('has no endpoints'));
      assert.ok(truth?.includes(svc.ip), `the kernel counted that Service's REJECT: ${result.moved}`);
      const drops = netfilterDrops(packets);
      agrees(drops, truth!, /^counters/);
      for (const d of drops) {
        assert.equal(d.drop.hook, 'LOCAL_OUT');
        assert.equal(d.drop.owner, 'kube-proxy');
        assert.match(d.drop.hint, /Service without endpoints/);
      }
    },
  );
});

test('firewalld: a port no zone allows meets the final reject (an ICMP error); a rich rule drops one source silently', async (t) => {
  if (!needsRoot(t)) return;
  // The reject is certain: the ICMP error went out, and only one reject can be reached. The silent drop
  // is not: firewalld's rules have no counters, and "ct state invalid drop" comes first.
  for (const [from, truth, answered] of [
    ['client', 'reject with icmpx admin-prohibited', true],
    ['blocked', 'ip saddr 198.18.0.99 drop', false],
  ] as const) {
    await traceLab(
      {
        traced: (lab) => lab.server.netns,
        setup: (lab) => {
          lab.exec(lab.server.netns, 'nft', ['-f', '-'], fixture('firewalld.nft'));
          // A second address on the client, the one the rich rule drops.
          if (from === 'blocked') lab.ip(lab.client.netns, 'addr', 'add', '198.18.0.99/24', 'dev', lab.client.ifname);
        },
        args: ['--port', '3306'],
        traffic: (lab) =>
          lab.connect(
            'tcp',
            lab.server.v4,
            3306,
            400,
            lab.client,
            ...(from === 'blocked' ? ['--from', '198.18.0.99'] : []),
          ),
      },
      ({ packets }) => {
        const drops = netfilterDrops(packets);
        agrees(drops, truth, /^match$/, answered);
        for (const d of drops) {
          assert.equal(d.drop.answered, answered);
          assert.deepEqual([d.drop.table, d.drop.owner], ['firewalld', 'firewalld'], JSON.stringify(d.drop));
          assert.match(d.drop.hint, /firewall-cmd --list-all/);
          if (!answered)
            assert.ok(!d.drop.candidates?.some((c: string) => c.includes('reject')), 'a silent drop is no reject');
        }
      },
    );
  }
});

test('nftables.conf: a source in a named set dropped by its counted rule; a verdict map to a chain that rejects', async (t) => {
  if (!needsRoot(t)) return;
  for (const blocked of [true, false]) {
    await traceLab(
      {
        traced: (lab) => lab.server.netns,
        setup: (lab) => {
          lab.exec(lab.server.netns, 'nft', ['-f', '-'], fixture('nftables.conf'));
          if (!blocked) lab.exec(lab.server.netns, 'nft', ['flush', 'set', 'inet', 'filter', 'blocklist']);
        },
        args: ['--port', '3306'],
        traffic: (lab) => counted(lab, lab.server.netns, () => lab.connect('tcp', lab.server.v4, 3306, 400)),
      },
      ({ result, packets }) => {
        const drops = netfilterDrops(packets);
        // As nft lists it: a reset needs TCP, which nft adds as a match of its own.
        const truth = blocked ? 'ip saddr @blocklist counter drop' : 'meta l4proto tcp counter reject with tcp reset';
        assert.ok(drops.length >= 1, 'dropped');
        for (const d of drops) {
          assert.equal(d.drop.guess, undefined, JSON.stringify(d.drop));
          assert.equal(d.drop.rule.text, truth);
          assert.equal(d.drop.chain, blocked ? 'input' : 'database');
          assert.ok(
            result.moved.includes(`nft handle ${d.drop.rule.handle}`),
            `the kernel counted it: ${result.moved}`,
          );
          assert.equal(d.drop.answered, !blocked);
        }
      },
    );
  }
});
