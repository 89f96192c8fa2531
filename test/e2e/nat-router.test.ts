// NAT on a router, in real namespaces: the rule behind a rewrite named (iptables and native nft: DNAT, a DNAT by
// map, MASQUERADE, SNAT), replies and later packets told as conntrack's; and the router traced beside the server
// (--netns twice, and `merge` of two --json files): the packets it forwarded toward the server are the trips
// between them, matched through its NAT, the server's verdicts kept (delivered, dropped by its firewall).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import type { HostRecord, MergeRecord } from '../../src/output/records.js';
import {
  dnatToServer,
  isType,
  needsRoot,
  parseRecords,
  Pathtrace,
  runCli,
  sleep,
  SLOWDOWN,
  startPlain,
  traceLab,
  type Packet,
  type Present,
} from '../helpers/pathtrace.js';

const re = (s: string) => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

/** The rewrites of each packet but the first SYN: conntrack's, the replies marked. */
function laterRewrites(packets: Packet[], syn: Packet): void {
  for (const p of packets.filter((x) => x !== syn)) {
    assert.ok(p.nat?.length, `#${p.id} [${p.tcp_flags}] was rewritten`);
    for (const r of p.nat) {
      assert.deepEqual([r.by, r.packet, r.table], ['conntrack', 'later', undefined], JSON.stringify(r));
      assert.equal(r.reply === true, p.src !== syn.src, `#${p.id} [${p.tcp_flags}] is a reply or not`);
    }
  }
}

for (const iptables of ['iptables', 'iptables-legacy']) {
  test(`DNAT on a router (${iptables}): the SYN's rewrite names the DNAT rule by its counter; replies and later packets are conntrack's`, async (t) => {
    if (!needsRoot(t)) return;
    await traceLab(
      {
        router: true,
        traced: (lab) => lab.router!.netns,
        setup: (lab) => dnatToServer(lab, iptables),
        args: ['--port', '80'],
        traffic: (lab) => lab.connect('tcp', lab.router!.toClient.v4, 80, 2000 * SLOWDOWN),
      },
      ({ lab, result, packets }) => {
        assert.equal(result.ok, true);
        const syn = packets.find((p) => p.tcp_flags === 'S')!;
        assert.equal(syn.nat.length, 1, JSON.stringify(syn.nat));
        const [dnat] = syn.nat;
        assert.deepEqual(
          [dnat.hook, dnat.packet, dnat.by, dnat.family, dnat.table, dnat.chain, dnat.source, dnat.rule.found],
          [
            'PRE_ROUTING',
            'first',
            'rule',
            'ip',
            'nat',
            'PREROUTING',
            iptables === 'iptables' ? 'iptables-nft' : 'iptables-legacy',
            'counters+match',
          ],
        );
        assert.equal(
          dnat.rule.text,
          `${iptables} -t nat -A PREROUTING -p tcp -m tcp --dport 80 -j DNAT --to-destination ${lab.server.v4}:8080`,
        );
        assert.deepEqual(dnat.from, { src: lab.client.v4, sport: syn.sport, dst: lab.router!.toClient.v4, dport: 80 });
        assert.deepEqual(dnat.to, syn.translated);
        assert.match(dnat.inspect, re(`${iptables} -t nat -L PREROUTING -v -n --line-numbers`));
        const synack = packets.find((p) => p.tcp_flags === 'SA')!;
        assert.deepEqual(synack.nat[0]!.hook, 'POST_ROUTING', 'the reply: conntrack undoes the DNAT on its way out');
        laterRewrites(packets, syn);
      },
    );
  });
}

test('DNAT by an nft map on a router: the rule named by its match (no counter), the rewrite told in text', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab({ router: true });
  t.after(() => lab.destroy());
  const [rtr, srv] = [lab.router!.toClient.v4, lab.server.v4];
  lab.exec(
    lab.router!.netns,
    'nft',
    ['-f', '-'],
    `table ip gw {
      map forwards { type ipv4_addr . inet_service : ipv4_addr . inet_service; elements = { ${rtr} . 80 : ${srv} . 8080 } }
      chain pre { type nat hook prerouting priority dstnat; policy accept; dnat ip to ip daddr . tcp dport map @forwards
      }
    }`,
  );
  await lab.listen('tcp', 8080);
  const pt = await startPlain(['--netns', lab.router!.netns, '--port', '80']);
  const r = await lab.connect('tcp', rtr, 80, 2000 * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  pt.child.kill('SIGINT');
  assert.equal(await pt.exit, 0, pt.err());
  assert.equal(r.ok, true);
  const out = pt.out();
  assert.match(
    out,
    re(
      `NAT at PRE_ROUTING: destination rewritten to ${srv}:8080 by rule dnat ip to ip daddr . tcp dport map @forwards (table ip gw chain pre, nft; found by match)`,
    ),
    out,
  );
  assert.match(out, re(`inspect: ip netns exec ${lab.router!.netns} nft -a list chain ip gw pre`));
  assert.match(out, re(`NAT at POST_ROUTING: source rewritten to ${rtr}:80 by conntrack (the reply`));
  assert.match(out, re(`NAT at PRE_ROUTING: destination rewritten to ${srv}:8080 by conntrack (a later packet`));
});

const SOURCE_NAT = [
  {
    name: 'iptables MASQUERADE',
    setup: (lab: Lab) =>
      lab.exec(lab.router!.netns, 'iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'eth-srv', '-j', 'MASQUERADE']),
    text: () => 'iptables -t nat -A POSTROUTING -o eth-srv -j MASQUERADE',
    where: ['nat', 'POSTROUTING', 'iptables-nft', 'counters+match'],
  },
  {
    name: 'nft snat',
    setup: (lab: Lab) =>
      lab.exec(
        lab.router!.netns,
        'nft',
        ['-f', '-'],
        `table ip gw { chain post { type nat hook postrouting priority srcnat; oifname "eth-srv" snat to ${lab.router!.toServer.v4}\n }\n}`,
      ),
    text: (lab: Lab) => `oifname "eth-srv" snat to ${lab.router!.toServer.v4}`,
    where: ['gw', 'post', 'nft', 'match'],
  },
];

for (const nat of SOURCE_NAT) {
  test(`${nat.name} on a router toward the server: the SYN's source rewrite names the rule; the replies are conntrack's`, async (t) => {
    if (!needsRoot(t)) return;
    await traceLab(
      {
        router: true,
        traced: (lab) => lab.router!.netns,
        setup: async (lab) => {
          nat.setup(lab);
          await lab.listen('tcp', 3306);
        },
        args: ['--port', '3306'],
        traffic: (lab) => lab.connect('tcp', lab.server.v4, 3306, 2000 * SLOWDOWN),
      },
      ({ lab, result, packets }) => {
        assert.equal(result.ok, true);
        const syn = packets.find((p) => p.tcp_flags === 'S')!;
        const [snat] = syn.nat;
        assert.equal(syn.nat.length, 1, JSON.stringify(syn.nat));
        assert.deepEqual([snat!.hook, snat!.packet, snat!.by], ['POST_ROUTING', 'first', 'rule']);
        assert.deepEqual([snat!.table, snat!.chain, snat!.source, snat!.rule.found], nat.where);
        assert.equal(snat!.rule.text, nat.text(lab));
        assert.equal(snat!.to.src, lab.router!.toServer.v4);
        assert.equal(syn.translated.src, lab.router!.toServer.v4);
        const synack = packets.find((p) => p.tcp_flags === 'SA')!;
        assert.equal(synack.dst, lab.router!.toServer.v4, 'the server answers the router');
        assert.equal(synack.nat[0]!.hook, 'PRE_ROUTING', "the reply's destination restored as it comes in");
        laterRewrites(packets, syn);
      },
    );
  });
}

/** --netns ROUTER --netns SERVER with the router's DNAT to the server's 8080: the children's records (tagged by
 *  host) and the merge's. */
async function acrossRouter(t: TestContext, setup: (lab: Lab) => void, connectMs: number) {
  const lab = new Lab({ router: true });
  t.after(() => lab.destroy());
  await dnatToServer(lab);
  setup(lab);
  const pt = await Pathtrace.start(['--netns', lab.router!.netns, '--netns', lab.server.netns, '--port', '80,8080']);
  const records = () => pt.records as Present<HostRecord | MergeRecord>[];
  for (let i = 0; i < 200 * SLOWDOWN && records().filter(isType('ready')).length < 2; i++) await sleep(50);
  assert.equal(records().filter(isType('ready')).length, 2, 'a ready record from each');
  const result = await lab.connect('tcp', lab.router!.toClient.v4, 80, connectMs * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  const done = await pt.stop();
  assert.equal(done.code, 0, done.stderr);
  const all = done.records as Present<HostRecord | MergeRecord>[];
  return {
    lab,
    result,
    packets: all.filter(isType('packet')),
    trips: all.filter(isType('trip')),
    text: JSON.stringify(all.filter(isType('trip')), null, 1),
  };
}

test('--netns ROUTER --netns SERVER through a DNAT: the forwarded packets are the trips between them, the SYN the server answered', async (t) => {
  if (!needsRoot(t)) return;
  const { lab, result, packets, trips, text } = await acrossRouter(t, () => {}, 2000);
  assert.equal(result.ok, true);
  const [router, server] = [lab.router!.netns, lab.server.netns];
  const syn = trips.find((x) => x.tcp_flags === 'S')!;
  assert.deepEqual(
    [syn.from, syn.to, syn.path, syn.dst, syn.dport],
    [router, server, 'delivered', lab.router!.toClient.v4, 80],
    text,
  );
  assert.deepEqual(syn.translated, { src: lab.client.v4, sport: syn.sport, dst: lab.server.v4, dport: 8080 });
  assert.deepEqual([syn.sent.fate, syn.received.fate], ['forwarded', 'delivered']);
  const synack = trips.find((x) => x.tcp_flags === 'SA')!;
  assert.deepEqual(
    [synack.from, synack.to, synack.path, synack.received.fate],
    [server, router, 'arrived', 'forwarded'],
    text,
  );
  // Every packet either way went between them, and arrived.
  assert.ok(trips.length >= 6, text);
  assert.deepEqual(new Set(trips.map((x) => x.path)), new Set(['delivered', 'arrived']), text);
  assert.equal(new Set(trips.map((x) => x.flow)).size, 1, 'one connection');
  // The router's own record names the DNAT rule.
  const routerSyn = packets.find((p) => p.host === router && p.tcp_flags === 'S')!;
  assert.match(routerSyn.nat[0]!.rule.text, /-j DNAT --to-destination/);
});

test("--netns ROUTER --netns SERVER, the server's firewall drops the DNAT'd SYN: dropped at the receiver, by the server's rule", async (t) => {
  if (!needsRoot(t)) return;
  const { lab, result, trips, text } = await acrossRouter(
    t,
    (lab) =>
      lab.exec(
        lab.server.netns,
        'nft',
        ['-f', '-'],
        'table inet fw { chain input { type filter hook input priority filter; tcp dport 8080 counter drop\n }\n}',
      ),
    1500,
  );
  assert.equal(result.ok, false);
  assert.ok(trips.length >= 1, text);
  for (const x of trips) {
    assert.deepEqual(
      [x.from, x.to, x.tcp_flags, x.path],
      [lab.router!.netns, lab.server.netns, 'S', 'dropped-at-receiver'],
      text,
    );
    assert.deepEqual(
      [x.sent.fate, x.received.drop.hook, x.received.drop.table, x.received.drop.chain],
      ['forwarded', 'LOCAL_IN', 'fw', 'input'],
    );
    assert.equal(x.received.drop.rule.text, 'tcp dport 8080 counter drop');
  }
});

test("merge of the router's and the server's --json, through the router's MASQUERADE: matched on the tuple it left with", async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab({ router: true });
  t.after(() => lab.destroy());
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-nat-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  SOURCE_NAT[0]!.setup(lab);
  await lab.listen('tcp', 3306);
  const router = await Pathtrace.start(['--netns', lab.router!.netns, '--port', '3306']);
  const server = await Pathtrace.start(['--netns', lab.server.netns, '--port', '3306']);
  const r = await lab.connect('tcp', lab.server.v4, 3306, 2000 * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  const files = ['router', 'server'].map((n) => path.join(dir, `${n}.ndjson`));
  for (const [i, pt] of [router, server].entries()) writeFileSync(files[i]!, (await pt.stop()).stdout);
  assert.equal(r.ok, true);
  const args = [`router=${files[0]}`, `server=${files[1]}`];
  const json = runCli(['merge', '--json', ...args]);
  assert.equal(json.code, 0, json.stderr);
  const trips = parseRecords(json.stdout).filter(isType('trip'));
  const text = runCli(['merge', ...args]).stdout;
  const syn = trips.find((x) => x.tcp_flags === 'S')!;
  assert.deepEqual(
    [syn.from, syn.path, syn.translated.src, syn.translated.dst],
    ['router', 'delivered', lab.router!.toServer.v4, lab.server.v4],
    text,
  );
  const synack = trips.find((x) => x.tcp_flags === 'SA')!;
  assert.deepEqual([synack.from, synack.path, synack.dst], ['server', 'arrived', lab.router!.toServer.v4], text);
  assert.deepEqual(new Set(trips.map((x) => x.path)), new Set(['delivered', 'arrived']), text);
  assert.match(text, re(`left router's eth-srv as ${lab.router!.toServer.v4}:`));
  assert.match(text, re(`router's NAT at POST_ROUTING: source rewritten to ${lab.router!.toServer.v4}:`));
  assert.match(
    text,
    re('by rule iptables -t nat -A POSTROUTING -o eth-srv -j MASQUERADE (table ip nat chain POSTROUTING'),
  );
  assert.doesNotMatch(text, /no packet went between/);
});
