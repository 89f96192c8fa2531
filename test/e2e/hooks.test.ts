// A drop at each of the five netfilter hooks, IPv4 and IPv6, made with
// iptables (raw, mangle, filter tables) or native nft (filter, nat, route
// chains), in lab namespaces: pathtrace must name the hook, NETFILTER_DROP,
// and whether tcpdump would have seen the packet.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Lab, type Host } from '../../src/lab/lab.js';
import { isType, needsRoot, Pathtrace } from '../helpers/pathtrace.js';

interface Case {
  hook: 'PRE_ROUTING' | 'LOCAL_IN' | 'FORWARD' | 'LOCAL_OUT' | 'POST_ROUTING';
  family: 4 | 6;
  proto: 'tcp' | 'udp';
  how: string;
  /** Where the rule goes and pathtrace looks: the host the packet dies in. */
  at: 'server' | 'router' | 'client';
  install(lab: Lab, ns: string, port: number): void;
}

const ipt = (cmd: string, rule: string) => (lab: Lab, ns: string, port: number) =>
  lab.exec(ns, cmd, rule.replace('PORT', String(port)).split(' '));
/** A one-line ruleset "table F t { chain c { HEADER; RULE; } }", as nft -f reads it (one statement per line). */
const nft = (ruleset: string) => (lab: Lab, ns: string, port: number) =>
  lab.exec(
    ns,
    'nft',
    ['-f', '-'],
    ruleset.replaceAll('PORT', String(port)).replaceAll('; ', '\n').replaceAll(' }', '\n}').replaceAll('} ', '}\n'),
  );

// On this kernel an nft nat chain alone leaves conntrack off in the namespace,
// and nat chains see only packets that conntrack tracks: a ct rule turns it on.
const CT_ON = (hook: string) => ` chain track { type filter hook ${hook} priority raw; ct state new counter; }`;

const CASES: Case[] = [
  {
    hook: 'PRE_ROUTING',
    family: 4,
    proto: 'udp',
    how: 'iptables raw PREROUTING',
    at: 'server',
    install: ipt('iptables', '-t raw -A PREROUTING -p udp --dport PORT -j DROP'),
  },
  {
    hook: 'PRE_ROUTING',
    family: 6,
    proto: 'tcp',
    how: 'nft nat chain (prerouting, dstnat)',
    at: 'server',
    install: nft(
      `table ip6 t {${CT_ON('prerouting')} chain c { type nat hook prerouting priority dstnat; tcp dport PORT drop; } }`,
    ),
  },
  {
    hook: 'LOCAL_IN',
    family: 4,
    proto: 'tcp',
    how: 'nft inet filter input',
    at: 'server',
    install: nft('table inet t { chain c { type filter hook input priority filter; tcp dport PORT drop; } }'),
  },
  {
    hook: 'LOCAL_IN',
    family: 6,
    proto: 'udp',
    how: 'ip6tables filter INPUT',
    at: 'server',
    install: ipt('ip6tables', '-A INPUT -p udp --dport PORT -j DROP'),
  },
  {
    hook: 'FORWARD',
    family: 4,
    proto: 'tcp',
    how: 'iptables filter FORWARD',
    at: 'router',
    install: ipt('iptables', '-A FORWARD -p tcp --dport PORT -j DROP'),
  },
  {
    hook: 'FORWARD',
    family: 6,
    proto: 'udp',
    how: 'nft ip6 filter forward',
    at: 'router',
    install: nft('table ip6 t { chain c { type filter hook forward priority filter; udp dport PORT drop; } }'),
  },
  {
    hook: 'LOCAL_OUT',
    family: 4,
    proto: 'tcp',
    how: 'iptables mangle OUTPUT',
    at: 'client',
    install: ipt('iptables', '-t mangle -A OUTPUT -p tcp --dport PORT -j DROP'),
  },
  {
    hook: 'LOCAL_OUT',
    family: 6,
    proto: 'tcp',
    how: 'nft ip6 route chain (output)',
    at: 'client',
    install: nft('table ip6 t { chain c { type route hook output priority mangle; tcp dport PORT drop; } }'),
  },
  {
    hook: 'POST_ROUTING',
    family: 4,
    proto: 'tcp',
    how: 'nft ip nat chain (postrouting, srcnat)',
    at: 'client',
    install: nft(
      `table ip t {${CT_ON('output')} chain c { type nat hook postrouting priority srcnat; tcp dport PORT drop; } }`,
    ),
  },
  {
    hook: 'POST_ROUTING',
    family: 6,
    proto: 'udp',
    how: 'ip6tables mangle POSTROUTING',
    at: 'client',
    install: ipt('ip6tables', '-t mangle -A POSTROUTING -p udp --dport PORT -j DROP'),
  },
];

function nsOf(lab: Lab, at: Case['at']): string {
  return at === 'router' ? lab.router!.netns : (lab[at] as Host).netns;
}

for (const c of CASES) {
  test(`drop at ${c.hook}, IPv${c.family} ${c.proto}, ${c.how}`, async (t) => {
    if (!needsRoot(t)) return;
    const lab = new Lab({ router: c.hook === 'FORWARD' });
    let pt: Pathtrace | undefined;
    try {
      const port = 3306;
      const ns = nsOf(lab, c.at);
      c.install(lab, ns, port);
      await lab.listen(c.proto, port);
      pt = await Pathtrace.start(['--netns', ns, '--port', String(port)]);
      const dst = c.family === 4 ? lab.server.v4 : lab.server.v6;
      const client = await lab.connect(c.proto, dst, port, 800);
      assert.equal(client.ok, false, 'the rule must stop the traffic');
      const dropped = await pt.waitFor((p) => p.fate === 'dropped');
      const { code, records } = await pt.stop();
      assert.equal(code, 0);

      assert.ok(
        dropped,
        `no dropped packet reported; got ${JSON.stringify(records.filter((r) => r.type === 'packet'))}`,
      );
      const drops = records.filter(isType('packet')).filter((r) => r.fate === 'dropped');
      for (const p of drops) {
        assert.equal(p.family, `ipv${c.family}`);
        assert.equal(p.proto, c.proto);
        assert.equal(p.dport, port);
        assert.equal(p.dst, dst);
        if (c.proto === 'tcp') assert.equal(p.tcp_flags, 'S');
        assert.deepEqual(
          { layer: p.drop.layer, hook: p.drop.hook, reason: p.drop.reason },
          { layer: 'netfilter', hook: c.hook, reason: 'NETFILTER_DROP' },
        );
        assert.match(p.drop.location, /^(nft_do_chain|nf_hook_slow|ipt_do_table|ip6t_do_table)$/);
        // It entered the hook and never left it.
        const at = p.steps.filter((s) => s.hook === c.hook).map((s) => s.at);
        assert.equal(at[0], 'entry');
        assert.ok(!at.includes('exit'), at.join(' '));
        // Dropped on the way in: after the RX tap. On the way out: before the TX tap.
        const rx = c.hook === 'PRE_ROUTING' || c.hook === 'LOCAL_IN' || c.hook === 'FORWARD';
        assert.equal(p.tcpdump, rx);
        assert.equal(p.direction, c.hook === 'FORWARD' ? 'forward' : rx ? 'in' : 'out');
      }
      const summary = records.find((r) => r.type === 'summary')!;
      assert.equal(summary.dropped, drops.length);
      assert.equal(summary.lost_events, 0);
    } finally {
      await pt?.stop();
      lab.destroy();
    }
  });
}
