// Packets through a bridge (issue "Right answers on real hosts"): a Docker-style host whose
// container sits on bridge br0 behind a published port, with Docker's own ruleset; a pure L2
// bridge between two containers; with br_netfilter's bridge-nf-call-iptables on and off. Each
// packet is one journey (port → bridge device → routing or bridging → out), the bridge's own
// netfilter passes are steps, and a drop in DOCKER-USER is named.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Lab } from '../../src/lab/lab.js';
import { moved, readCounters } from '../helpers/kernel-counters.js';
import { needsRoot, traceLab, unexpectedDrops, type Packet, type Summary } from '../helpers/pathtrace.js';
import { FIXTURES } from '../helpers/paths.js';

const PORT = 3306;
const DOCKER_RULES = readFileSync(path.join(FIXTURES, 'rulesets', 'docker.rules'), 'utf8');

/** br_netfilter's switch is per namespace, but only exists once the module is loaded; tests never load it. */
function brNetfilter(t: TestContext): boolean {
  if (existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) return true;
  t.skip('br_netfilter is not loaded (modprobe br_netfilter): the tests do not load modules on the host');
  return false;
}

function dockerHost(lab: Lab, bridgeNf: boolean): void {
  const rtr = lab.router!.netns;
  lab.exec(rtr, 'iptables-restore', [], DOCKER_RULES);
  if (existsSync('/proc/sys/net/bridge/bridge-nf-call-iptables')) {
    lab.sysctl(rtr, 'net.bridge.bridge-nf-call-iptables', bridgeNf ? '1' : '0');
    lab.sysctl(rtr, 'net.bridge.bridge-nf-call-ip6tables', bridgeNf ? '1' : '0');
  }
}

/** A trace of the Docker host (the router), its ruleset loaded and a server listening on port, during traffic. */
function traceDockerHost<T>(
  bridgeNf: boolean,
  port: number,
  traffic: (lab: Lab) => Promise<T>,
  check: Parameters<typeof traceLab<T>>[1],
  setup?: (lab: Lab) => void,
): Promise<void> {
  return traceLab(
    {
      bridge: true,
      traced: (lab) => lab.router!.netns,
      setup: async (lab) => {
        dockerHost(lab, bridgeNf);
        setup?.(lab);
        await lab.listen('tcp', port);
      },
      args: ['--port', String(port)],
      traffic,
    },
    check,
  );
}

/** A graceful exchange: every packet one journey that went somewhere, none resent, none cut short. */
function graceful(packets: Packet[], summary: Summary): void {
  assert.deepEqual(unexpectedDrops(packets), [], 'no drop');
  assert.deepEqual(
    packets.filter((p) => p.fate === 'unfinished').map((p) => p.steps.map((s) => s.point)),
    [],
    'nothing unfinished',
  );
  assert.deepEqual(
    packets.filter((p) => p.retransmit > 0).map((p) => p.id),
    [],
    'no retransmission',
  );
  assert.equal(summary.cut_by_timeout, 0);
}

const points = (p: Packet) =>
  p.steps.map((s) => `${s.point}${s.hook ? `/${s.hook}${s.bridge ? '(bridge)' : ''}` : ''}${s.dev ? `@${s.dev}` : ''}`);

for (const bridgeNf of [true, false]) {
  test(`Docker host, published port, bridge-nf-call-iptables ${bridgeNf ? 'on' : 'off'}: one journey per packet, through the bridge`, async (t) => {
    if (!needsRoot(t) || (bridgeNf && !brNetfilter(t))) return;
    await traceDockerHost(
      bridgeNf,
      PORT,
      (lab) => lab.connect('tcp', lab.router!.toClient.v4, PORT, 800, lab.client, '--send', 'hello'),
      ({ result, packets, summary }) => {
        assert.equal(result.ok, true, JSON.stringify(result));
        graceful(packets, summary);
        assert.ok(packets.length >= 6, `the whole exchange: ${packets.length} packets`);
        for (const p of packets) assert.equal(p.fate, 'forwarded', `${p.id}: ${points(p).join(' ')}`);
        const syn = packets.find((p) => p.tcp_flags === 'S')!;
        // DNAT to the container, routed to br0, then the bridge hands it to the container's port.
        assert.deepEqual(syn.route, { decision: 'forward', in_dev: 'eth-cli', out_dev: 'br0' });
        assert.deepEqual(
          syn.steps.filter((s) => s.point === 'net_dev_start_xmit').map((s) => s.dev),
          ['br0', 'veth-srv'],
        );
        assert.equal(syn.translated.dst, '198.18.2.2');
        const synAck = packets.find((p) => p.tcp_flags === 'SA')!;
        // From the container's port up to the bridge device, then routed out.
        assert.deepEqual(
          synAck.steps.filter((s) => s.point === 'netif_receive_skb').map((s) => s.dev),
          ['veth-srv', 'br0'],
        );
        assert.deepEqual(synAck.route, { decision: 'forward', in_dev: 'br0', out_dev: 'eth-cli' });
        const bridgePass = synAck.steps.filter((s) => s.bridge);
        if (bridgeNf) {
          assert.deepEqual([...new Set(bridgePass.map((s) => s.hook))], ['PRE_ROUTING'], points(synAck).join(' '));
          // br_netfilter's pass comes before the bridge hands it up to br0.
          const up = synAck.steps.findIndex((s) => s.point === 'netif_receive_skb' && s.dev === 'br0');
          assert.ok(synAck.steps.indexOf(bridgePass[0]) < up);
        } else {
          assert.deepEqual(bridgePass, []);
        }
      },
    );
  });

  test(`pure L2 bridge between two containers, bridge-nf-call-iptables ${bridgeNf ? 'on' : 'off'}: bridged, with the bridge's passes as steps`, async (t) => {
    if (!needsRoot(t) || (bridgeNf && !brNetfilter(t))) return;
    await traceDockerHost(
      bridgeNf,
      PORT,
      (lab) => lab.connect('tcp', lab.server.v4, PORT, 800, lab.neighbour!, '--send', 'hello'),
      ({ result, packets, summary }) => {
        assert.equal(result.ok, true, JSON.stringify(result));
        graceful(packets, summary);
        assert.ok(packets.length >= 6, `the whole exchange: ${packets.length} packets`);
        for (const p of packets) {
          assert.equal(p.fate, 'forwarded', `${p.id}: ${points(p).join(' ')}`);
          assert.equal(p.route.decision, 'bridge', `${p.id}: ${JSON.stringify(p.route)}`);
          const hooks = p.steps.filter((s) => s.point === 'netfilter');
          if (bridgeNf) {
            // Docker's "-i br0 -o br0 -j ACCEPT" lets bridged traffic through br_netfilter's FORWARD.
            assert.deepEqual(
              [...new Set(hooks.map((s) => s.hook))],
              ['PRE_ROUTING', 'FORWARD', 'POST_ROUTING'],
              points(p).join(' '),
            );
            assert.ok(
              hooks.every((s) => s.bridge),
              points(p).join(' '),
            );
          } else {
            assert.deepEqual(hooks, [], 'no IP hooks for a bridged frame');
          }
        }
        const syn = packets.find((p) => p.tcp_flags === 'S')!;
        assert.deepEqual(syn.route, { decision: 'bridge', in_dev: 'veth-nb', out_dev: 'veth-srv' });
      },
    );
  });
}

test('a container to a service on the Docker host (through the bridge device): delivered, one journey', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      bridge: true,
      traced: (lab) => lab.router!.netns,
      setup: async (lab) => {
        dockerHost(lab, true);
        await lab.listen('tcp', PORT, lab.router!.toServer);
      },
      args: ['--port', String(PORT)],
      traffic: (lab) => lab.connect('tcp', lab.router!.toServer.v4, PORT, 800, lab.server, '--send', 'hello'),
    },
    ({ result, packets, summary }) => {
      assert.equal(result.ok, true, JSON.stringify(result));
      graceful(packets, summary);
      const inbound = packets.filter((p) => p.direction === 'in');
      assert.ok(inbound.length >= 3);
      for (const p of inbound) {
        assert.equal(p.fate, 'delivered', `${p.id}: ${points(p).join(' ')}`);
        assert.deepEqual(
          p.steps.filter((s) => s.point === 'netif_receive_skb').map((s) => s.dev),
          ['veth-srv', 'br0'],
        );
        assert.equal(p.route.in_dev, 'br0');
      }
      for (const p of packets.filter((x) => x.direction === 'out')) {
        assert.deepEqual(
          p.steps.filter((s) => s.point === 'net_dev_start_xmit').map((s) => s.dev),
          ['br0', 'veth-srv'],
        );
        assert.equal(p.fate, 'sent');
      }
    },
  );
});

test('a drop in DOCKER-USER on a Docker host: FORWARD, the rule by its counter, Docker named as the owner', async (t) => {
  if (!needsRoot(t)) return;
  await traceDockerHost(
    true,
    PORT,
    (lab) => lab.connect('tcp', lab.router!.toClient.v4, PORT, 800),
    ({ lab, result, packets }) => {
      assert.equal(result.ok, false);
      const drops = packets.filter((p) => p.fate === 'dropped');
      assert.ok(drops.length >= 1, 'the SYN was dropped');
      for (const d of drops) {
        assert.equal(d.drop.hook, 'FORWARD');
        assert.deepEqual([d.drop.table, d.drop.chain, d.drop.owner], ['filter', 'DOCKER-USER', 'docker']);
        assert.equal(
          d.drop.rule.text,
          `iptables -A DOCKER-USER -s ${lab.client.v4}/32 -p tcp -m tcp --dport ${PORT} -j DROP`,
        );
        assert.equal(d.drop.guess, undefined, JSON.stringify(d.drop));
        assert.match(d.drop.hint, /DOCKER-USER holds your own rules/);
      }
    },
    (lab) =>
      lab.exec(lab.router!.netns, 'iptables', [
        '-I',
        'DOCKER-USER',
        '-s',
        lab.client.v4,
        '-p',
        'tcp',
        '--dport',
        String(PORT),
        '-j',
        'DROP',
      ]),
  );
});

test("Docker's FORWARD policy drops a port the container did not publish: the policy, as the kernel counted", async (t) => {
  if (!needsRoot(t)) return;
  let policyMoved = false;
  await traceDockerHost(
    true,
    5432,
    async (lab) => {
      const before = readCounters(lab, lab.router!.netns);
      const r = await lab.connect('tcp', lab.server.v4, 5432, 800);
      policyMoved = moved(before, readCounters(lab, lab.router!.netns)).includes('policy filter FORWARD');
      return r;
    },
    ({ result, packets }) => {
      assert.equal(result.ok, false);
      assert.ok(policyMoved, 'the kernel counted the FORWARD policy');
      const drops = packets.filter((p) => p.fate === 'dropped');
      assert.ok(drops.length >= 1);
      for (const d of drops) {
        assert.equal(d.drop.hook, 'FORWARD');
        assert.deepEqual(
          [d.drop.rule?.text, d.drop.rule?.found, d.drop.answered],
          ['policy drop of ip filter FORWARD', 'policy', false],
          JSON.stringify(d.drop),
        );
      }
    },
  );
});
