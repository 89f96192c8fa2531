// --container: a real podman container, on a namespace of the test's lab, traced by its name: the drop rule in its
// namespace named, the trace labelled by the container; beside another namespace, merged under the container's name.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { after, test, type TestContext } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import { containerToolsMissing, removeContainer, removeImage, runContainer } from '../helpers/containers.js';
import type { HostRecord, MergeRecord } from '../../src/output/records.js';
import { isType, needsRoot, Pathtrace, runCli, SLOWDOWN, sleep, type Present } from '../helpers/pathtrace.js';
import { dropSeries, seriesWith, startAgent, waitFor } from '../helpers/agent.js';

const PORT = 3306;
after(removeImage);
const RULE = `iptables -A INPUT -p tcp -m tcp --dport ${PORT} -j DROP`;

function ready(t: TestContext): boolean {
  if (!needsRoot(t)) return false;
  const missing = containerToolsMissing();
  if (missing.length) t.skip(`needs ${missing.join(', ')} (scripts/setup.sh installs them)`);
  return missing.length === 0;
}

/** A lab whose server is a container listening on PORT behind a DROP rule; its name. */
function serverContainer(t: TestContext, lab: Lab): string {
  const name = `pt-db-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  t.after(() => removeContainer(name));
  runContainer(name, lab.server.netns, ['nc', '-ll', '-p', String(PORT), '-e', 'cat']);
  lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP']);
  return name;
}

test('--container NAME: traced in its namespace, the DROP rule there named, the trace labelled by the container', async (t) => {
  if (!ready(t)) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  const name = serverContainer(t, lab);
  const pt = await Pathtrace.start(['--container', name, '--port', String(PORT)]);
  await lab.connect('tcp', lab.server.v4, PORT, 500 * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  const { code, records, stderr } = await pt.stop();
  assert.equal(code, 0, stderr);
  const r = records.find(isType('ready'))!;
  assert.deepEqual([r.netns.name, r.container.name, r.container.runtime], [name, name, 'podman']);
  assert.match(r.container.id, /^[0-9a-f]{64}$/);
  assert.equal(
    r.netns.inode,
    statSync(`/run/netns/${lab.server.netns}`).ino,
    "the container's namespace is the lab's server's",
  );
  const [d] = records.filter(isType('packet')).filter((p) => p.fate === 'dropped');
  assert.ok(d, `the SYN was dropped: ${JSON.stringify(records)}`);
  assert.deepEqual([d.drop.hook, d.drop.chain, d.drop.rule.text], ['LOCAL_IN', 'INPUT', RULE]);
  // The advice reaches the container's namespace from the host (a container has no iptables of its own).
  assert.match(d.drop.remove, /^nsenter --net=\/proc\/\d+\/ns\/net iptables -D INPUT 1$/);
  const plain = runCli(['--container', name, '--port', String(PORT), '--plain', '--duration', '1']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stderr + plain.stdout, new RegExp(`container ${name} \\(podman [0-9a-f]{12}\\)`));
});

test('--netns CLIENT --container NAME: both traced at once, merged with the container named', async (t) => {
  if (!ready(t)) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  const name = serverContainer(t, lab);
  const pt = await Pathtrace.start(['--netns', lab.client.netns, '--container', name, '--port', String(PORT)]);
  const lines = (records: Pathtrace['records']) => records as Present<HostRecord | MergeRecord>[];
  for (let i = 0; i < 200 * SLOWDOWN && lines(pt.records).filter(isType('ready')).length < 2; i++) await sleep(50);
  assert.deepEqual(
    lines(pt.records)
      .filter(isType('ready'))
      .map((r) => r.host)
      .sort(),
    [lab.client.netns, name].sort(),
    'a ready record from each, the container named',
  );
  await lab.connect('tcp', lab.server.v4, PORT, 1500 * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  const done = await pt.stop();
  assert.equal(done.code, 0, done.stderr);
  const trips = lines(done.records).filter(isType('trip'));
  assert.ok(
    trips.length >= 2 &&
      trips.every((x) => x.from === lab.client.netns && x.to === name && x.path === 'dropped-at-receiver'),
    JSON.stringify(trips),
  );
});

test('--container: no such container, one that is not running, a bad name: one line, a non-zero exit', (t) => {
  if (!ready(t)) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  const name = `pt-stopped-${process.pid}`;
  t.after(() => removeContainer(name));
  runContainer(name, lab.server.netns, ['sleep', '600']);
  execFileSync('podman', ['stop', '-t', '0', name], { stdio: 'ignore' });
  const cases: [string[], number, RegExp][] = [
    [
      ['--container', 'pt-no-such-container'],
      1,
      /^pathtrace: no container 'pt-no-such-container' \(podman: no such container/,
    ],
    [['--container', name], 1, new RegExp(`^pathtrace: container '${name}' \\(podman\\) is not running\n$`)],
    [
      ['--container', name, '--container', name],
      2,
      /^pathtrace: --container '.*' twice: give two different namespaces/,
    ],
    [['--container', ''], 2, /^pathtrace: bad --container '': a container's name or id/],
  ];
  for (const [args, code, message] of cases) {
    const r = runCli([...args, '--port', String(PORT)]);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test("the agent: a container's drops labelled with its name; its series gone after it stops, the namespace staying", async (t) => {
  if (!ready(t)) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  const name = serverContainer(t, lab);
  const agent = await startAgent(['--forget-after', '1']);
  t.after(() => {
    if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
  });
  const srv = lab.server.netns;
  const series = () => dropSeries(agent, srv);
  await lab.connect('tcp', lab.server.v4, PORT, 300 * SLOWDOWN);
  const labelled = await seriesWith(agent, srv, `container="${name}"`);
  assert.match(labelled, new RegExp(`container="${name}",k8s_namespace="",k8s_pod="",.*chain="INPUT",rule="${RULE}"`));
  assert.match(agent.output(), new RegExp(`drop in ${srv} \\(container ${name}\\) on eth0: tcp `));
  // Stopped: the namespace (the lab's) stays, the container's series go after --forget-after; drops from then on
  // are the namespace's alone.
  execFileSync('podman', ['stop', '-t', '0', name], { stdio: 'ignore' });
  await waitFor(
    `${name}'s series gone`,
    async () => ((await series()).some((l) => l.includes(`container="${name}"`)) ? undefined : true),
    15_000,
  ).catch(async (e: Error) => assert.fail(`${e.message}: ${(await series()).join('\n')}; ${agent.output()}`));
  await lab.connect('tcp', lab.server.v4, PORT, 300 * SLOWDOWN);
  await waitFor(
    `a series of ${srv} without a container`,
    async () => (await series()).find((l) => l.includes('container=""')),
    15_000,
  );
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0, agent.output());
});
