// The agent's pure parts: which rules dropped what the kernel counted at a hook, how a count's share is split,
// what a count's labels say, the series' bound, and its options.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { labelsOf, type DropCount, type Namer } from '../../src/agent/labels.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { NO_OWNER } from '../../src/agent/owners.js';
import {
  apportion,
  counterValues,
  leftOver,
  rebased,
  ruleLabel,
  ruleShares,
  RULE_LABEL_MAX,
  withCredit,
} from '../../src/agent/rule-shares.js';
import { parseCommandLine, UsageError } from '../../src/commands/options.js';
import { parseIptablesSave } from '../../src/rules/iptables.js';
import type { Ruleset } from '../../src/rules/model.js';
import { HOOK_NONE, REASON_NONE } from '../../src/trace/record.js';
import { ROOT } from '../helpers/paths.js';

const save = (drops: number, policy: number, sshDrops = 0): Ruleset => ({
  chains: parseIptablesSave(
    `*filter
:INPUT DROP [${policy}:${policy * 60}]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:guard - [0:0]
[0:0] -A INPUT -p tcp -m tcp --dport 22 -j guard
[${drops}:${drops * 60}] -A INPUT -p tcp -m tcp --dport 3306 -j DROP
[0:0] -A INPUT -p udp -m udp --dport 53 -j DROP
[${sshDrops}:0] -A guard -s 198.18.0.9/32 -j REJECT
[0:0] -A INPUT -i lo -j ACCEPT
COMMIT
`,
    4,
    'iptables-nft',
  ),
});

// In the order they run: the jump to guard comes first.
test('the drop rules whose counters grew, through jumps, for the protocol counted; the policy by its counter', () => {
  const before = counterValues(save(2, 1));
  const shares = ruleShares(before, save(5, 4, 1), 4, 'LOCAL_IN', 'tcp');
  assert.deepEqual(shares, [
    { table: 'filter', chain: 'guard', rule: 'iptables -A guard -s 198.18.0.9/32 -j REJECT', packets: 1 },
    { table: 'filter', chain: 'INPUT', rule: 'iptables -A INPUT -p tcp -m tcp --dport 3306 -j DROP', packets: 3 },
    { table: 'filter', chain: 'INPUT', rule: 'policy drop', packets: 3 },
  ]);
  // A UDP count: neither TCP rule can have dropped it, nor can a rule reached only by a TCP jump.
  assert.deepEqual(
    ruleShares(before, save(5, 4, 1), 4, 'LOCAL_IN', 'udp').map((s) => s.rule),
    ['policy drop'],
  );
  // Another hook's chains are not this one's.
  assert.deepEqual(ruleShares(before, save(5, 4), 4, 'FORWARD', 'tcp'), []);
});

test('a count is split among the rules by what each counted, whole drops, the rest unnamed', () => {
  assert.deepEqual(apportion(3, [3], 3), { named: [3], unnamed: 0 });
  // Two counts (devices) of one hook, 4 drops in all, one rule that counted 4: each count all its own.
  assert.deepEqual(apportion(1, [4], 4), { named: [1], unnamed: 0 });
  // Rules that counted less than the kernel did (an nft rule without a counter dropped the rest).
  assert.deepEqual(apportion(4, [1], 4), { named: [1], unnamed: 3 });
  // Two rules: largest remainder first, and the total kept.
  const split = apportion(5, [2, 1], 3);
  assert.deepEqual(split, { named: [3, 2], unnamed: 0 });
  // A rule that counted more than the kernel (drops after the counts were read): no more than the count.
  assert.deepEqual(apportion(2, [5], 2), { named: [2], unnamed: 0 });
  assert.deepEqual(apportion(2, [], 2), { named: [], unnamed: 2 });
});

test('a drop in one reading of the counters and in the next counts of the kernel is named the next interval', () => {
  const rule = { table: 'filter', chain: 'INPUT', rule: 'r' };
  // Interval 1: the rule counted 2, the kernel 1 (its second drop came between the two readings).
  const first = withCredit('1/4/tcp', [{ ...rule, packets: 2 }], new Map());
  const one = apportion(1, [first[0]!.packets], 1);
  first[0]!.given += one.named[0]!;
  assert.deepEqual(one, { named: [1], unnamed: 0 });
  const credit = leftOver(first);
  assert.deepEqual([...credit.values()], [{ ...rule, packets: 1 }]);
  // Interval 2: the counter did not move, the kernel counts that drop: the credit names it.
  const second = withCredit('1/4/tcp', [], credit);
  assert.deepEqual(apportion(1, [second[0]!.packets], 1), { named: [1], unnamed: 0 });
  second[0]!.given = 1;
  assert.equal(leftOver(second).size, 0, 'given, the credit is spent');
  // Another hook's credit is not this one's; an unclaimed credit lasts one interval.
  assert.deepEqual(withCredit('3/4/tcp', [], credit), []);
  assert.equal(leftOver(withCredit('1/4/udp', [], credit)).size, 0);
});

test('a ruleset changed between collections: the old baseline kept for the rules that stay, new ones from zero', () => {
  // The DROP rule had counted 2 at the last collection; the ruleset changed (a rule added) and is read again with
  // the DROP rule at 5: its 3 drops since are still to be named at the next collection.
  const before = counterValues(save(2, 0));
  const now = new Map([...counterValues(save(5, 0)), ['ip/filter/INPUT#new', 4]]);
  const base = rebased(before, now);
  assert.deepEqual(ruleShares(base, save(5, 0), 4, 'LOCAL_IN', 'tcp'), [
    { table: 'filter', chain: 'INPUT', rule: 'iptables -A INPUT -p tcp -m tcp --dport 3306 -j DROP', packets: 3 },
  ]);
  assert.equal(base.has('ip/filter/INPUT#new'), false, 'a new rule counts from zero');
  // A counter that went back (the rule re-created) counts from zero too.
  const back = rebased(counterValues(save(9, 0)), counterValues(save(5, 0)));
  assert.deepEqual(
    ruleShares(back, save(5, 0), 4, 'LOCAL_IN', 'tcp').map((s) => s.packets),
    [5],
  );
});

test("a rule's label: whole when short, cut with a stable id of the whole when long", () => {
  const short = 'iptables -A INPUT -p tcp -m tcp --dport 3306 -j DROP';
  assert.equal(ruleLabel(short), short);
  const long = `iptables -A KUBE-SVC-X -m comment --comment "${'x'.repeat(100)}" -j DROP`;
  const other = long.replace('-j DROP', '-j REJECT');
  assert.ok(ruleLabel(long).length <= RULE_LABEL_MAX);
  assert.match(ruleLabel(long), /^iptables -A KUBE-SVC-X .*… \[[0-9a-f]{8}\]$/);
  assert.equal(ruleLabel(long), ruleLabel(long));
  assert.notEqual(ruleLabel(long), ruleLabel(other));
});

const names: Namer = {
  netns: (inode) => (inode === 1 ? 'srv' : String(inode)),
  owner: (inode) =>
    inode === 7 ? { container: '', k8sNamespace: 'shop', k8sPod: 'db-0' } : { ...NO_OWNER, container: 'mariadb' },
  device: (_, ifindex) => (ifindex === 2 ? 'eth0' : `if${ifindex}`),
  location: (a) => (a === 0x10n ? 'nft_do_chain' : a === 0x20n ? 'tcp_v4_rcv' : a === 0x30n ? 'ip6_mc_input' : '?'),
  reason: (v) => ({ 2: 'NOT_SPECIFIED', 3: 'NO_SOCKET', 8: 'NETFILTER_DROP' })[v] ?? String(v),
};
const count = (c: Partial<DropCount>): DropCount => ({
  location: 0x10n,
  netns: 1,
  ifindex: 2,
  reason: 8,
  port: 0,
  hook: 1,
  family: 4,
  proto: 6,
  packets: 1,
  bytes: 60,
  ...c,
});

test("a count's labels: the hook where netfilter freed it, else its stage; frees that are no drop left out", () => {
  assert.deepEqual(labelsOf(count({}), names), {
    netns: 'srv',
    container: 'mariadb',
    k8s_namespace: '',
    k8s_pod: '',
    device: 'eth0',
    stage: 'netfilter',
    hook: 'LOCAL_IN',
    reason: 'NETFILTER_DROP',
    table: '',
    chain: '',
    rule: '',
    protocol: 'tcp',
  });
  const noSocket = labelsOf(count({ location: 0x20n, reason: 3, hook: HOOK_NONE }), names);
  assert.deepEqual([noSocket?.stage, noSocket?.hook, noSocket?.reason], ['socket', '', 'NO_SOCKET']);
  // TCP finishing with a packet it handled; a kernel before 5.17 (no reason) alike; multicast not joined.
  assert.equal(labelsOf(count({ location: 0x20n, reason: 2, hook: HOOK_NONE }), names), null);
  assert.equal(labelsOf(count({ location: 0x20n, reason: REASON_NONE, hook: HOOK_NONE }), names), null);
  assert.equal(labelsOf(count({ location: 0x30n, reason: 2, hook: HOOK_NONE, family: 6, proto: 58 }), names), null);
  assert.equal(labelsOf(count({ ifindex: 0 }), names)?.device, '');
  // --label-ports: the port the kernel counted it by, as a label; none without.
  assert.equal(labelsOf(count({ port: 3306 }), names)?.port, '3306');
  assert.equal('port' in labelsOf(count({}), names)!, false);
  // A pod's namespace: the pod's labels, no one container's.
  const pod = labelsOf(count({ netns: 7 }), names)!;
  assert.deepEqual([pod.container, pod.k8s_namespace, pod.k8s_pod], ['', 'shop', 'db-0']);
});

test('series are bounded: past the cap drops go to the overflow series; a namespace gone takes its series', async () => {
  const m = new AgentMetrics({ version: '0', kernel: 'k', libbpf: 'v1' }, 2);
  const labels = (netns: string, rule: string, container = '') => ({
    netns,
    container,
    k8s_namespace: '',
    k8s_pod: '',
    device: 'eth0',
    stage: 'netfilter',
    hook: 'LOCAL_IN',
    reason: 'NETFILTER_DROP',
    table: 'filter',
    chain: 'INPUT',
    rule,
    protocol: 'tcp',
  });
  m.add(labels('a', 'r1'), 2, 120);
  m.add(labels('b', 'r1'), 1, 60);
  m.add(labels('b', 'r2'), 5, 300);
  m.add(labels('a', 'r1'), 1, 60);
  let text = await m.text();
  assert.match(text, /^pathtrace_drops_total\{netns="a",.*rule="r1",protocol="tcp"\} 3$/m);
  assert.match(text, /^pathtrace_drops_total\{netns="overflow",.*\} 5$/m);
  assert.match(text, /^pathtrace_series_overflow_total 5$/m);
  m.forget('b');
  text = await m.text();
  assert.doesNotMatch(text, /netns="b"/);
  m.add(labels('c', 'r1'), 1, 60); // room again
  assert.match(await m.text(), /^pathtrace_drops_total\{netns="c",.*\} 1$/m);
  // A container gone from a namespace that stays: its series go, the namespace's others stay.
  m.forget('a');
  m.forget('c');
  m.add(labels('d', 'r1', 'web'), 1, 60);
  m.add(labels('d', 'r1'), 1, 60);
  m.forget('d', (l) => l.container === 'web');
  text = await m.text();
  assert.doesNotMatch(text, /container="web"/);
  assert.match(text, /^pathtrace_drops_total\{netns="d",container="",.*\} 1$/m);
  m.add(labels('e', 'r1'), 1, 60); // its room given back
  assert.match(await m.text(), /^pathtrace_drops_total\{netns="e",.*\} 1$/m);
  // With a port label: a series per port, the overflow's says so too.
  const p = new AgentMetrics({ version: '0', kernel: 'k', libbpf: 'v1' }, 1, true);
  p.add({ ...labels('a', 'r1'), port: '3306' }, 1, 60);
  p.add({ ...labels('a', 'r1'), port: '5432' }, 2, 60);
  text = await p.text();
  assert.match(text, /^pathtrace_drops_total\{netns="a",.*protocol="tcp",port="3306"\} 1$/m);
  assert.match(text, /^pathtrace_drops_total\{netns="overflow",.*port="overflow"\} 2$/m);
  p.addSamplesLost(3);
  assert.match(await p.text(), /^pathtrace_samples_lost_total 3$/m);
});

test('agent options: --listen, --otlp, --port, --interval, --max-series; bad ones refused in a line', () => {
  assert.deepEqual(parseCommandLine(['agent']), {
    kind: 'agent',
    options: {
      listen: { host: '127.0.0.1', port: 9810 },
      otlp: null,
      ports: null,
      labelPorts: false,
      expression: null,
      intervalMs: 5000,
      maxSeries: 2000,
      forgetAfterMs: 600000,
    },
  });
  const o = parseCommandLine(['agent', '--listen', '[::1]:9100', '--interval', '2', '--max-series', '50']);
  assert.ok(o.kind === 'agent');
  assert.deepEqual(
    [o.options.listen, o.options.intervalMs, o.options.maxSeries],
    [{ host: '::1', port: 9100 }, 2000, 50],
  );
  assert.deepEqual(o.kind === 'agent' && parseCommandLine(['agent', '--listen', ':9100']).kind, 'agent');
  const expr = parseCommandLine(['agent', 'tcp', 'port', '3306']);
  assert.deepEqual(expr.kind === 'agent' && expr.options.expression, 'tcp port 3306');
  const ported = parseCommandLine(['agent', '-p', '3306', '--port', '80,8000-8002']);
  assert.deepEqual(ported.kind === 'agent' && ported.options.ports, [80, 3306, 8000, 8001, 8002]);
  const labelled = parseCommandLine(['agent', '-p', '3306', '--label-ports']);
  assert.equal(labelled.kind === 'agent' && labelled.options.labelPorts, true);
  for (const bad of [
    ['--listen', 'localhost'],
    ['--listen', '1.2.3.4:0'],
    ['--listen', 'nohost:9100'],
    ['--interval', '0'],
    ['--max-series', '1.5'],
    ['--netns', 'web'],
    ['--otlp', 'collector:4318'],
    ['--port', '70000'],
    ['--otlp', 'grpc://collector:4317'],
    ['--label-ports'],
  ])
    assert.throws(() => parseCommandLine(['agent', ...bad]), UsageError, bad.join(' '));
});

test('the systemd unit in the package: systemd-analyze finds nothing wrong but the binary not installed here', (t) => {
  const analyze = spawnSync('systemd-analyze', ['verify', path.join(ROOT, 'systemd', 'pathtrace-agent.service')], {
    encoding: 'utf8',
  });
  if (analyze.error) return t.skip('needs systemd-analyze (systemd)');
  const complaints = analyze.stderr
    .split('\n')
    .filter((l) => l && !/Command \/usr\/local\/bin\/pathtrace is not executable/.test(l));
  assert.deepEqual(complaints, []);
  const unit = readFileSync(path.join(ROOT, 'systemd', 'pathtrace-agent.service'), 'utf8');
  assert.match(unit, /^ExecStart=\/usr\/local\/bin\/pathtrace agent /m);
  assert.match(unit, /^KillSignal=SIGTERM$/m);
  assert.ok(
    (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { files: string[] }).files.includes(
      'systemd/',
    ),
  );
});

test('docs/agent: the alerts and every query of the Grafana dashboard are PromQL that promtool accepts', (t) => {
  const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
  if (promtool.error) return t.skip('needs promtool (prometheus; bash scripts/setup.sh installs it)');
  const check = (file: string) => spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
  const alerts = check(path.join(ROOT, 'docs', 'agent', 'alerts.yml'));
  assert.equal(alerts.status, 0, alerts.stdout + alerts.stderr);
  // The dashboard's queries, Grafana's variables given values, as recording rules.
  const dashboard = JSON.parse(readFileSync(path.join(ROOT, 'docs', 'agent', 'grafana-dashboard.json'), 'utf8')) as {
    panels: { targets: { expr: string }[] }[];
  };
  const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr));
  assert.ok(exprs.length >= 7);
  const rules = exprs.map(
    (e, i) =>
      `      - record: dashboard:query${i}\n        expr: '${e
        .replaceAll('$__rate_interval', '1m')
        .replaceAll('$__range', '1h')
        .replace(/\$\w+/g, '.*')
        .replaceAll("'", "''")}'`,
  );
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-dash-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'rules.yml'), `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
  const queries = check(path.join(dir, 'rules.yml'));
  assert.equal(queries.status, 0, queries.stdout + queries.stderr);
});
