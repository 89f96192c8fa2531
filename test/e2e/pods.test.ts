// --pod: a Kubernetes pod found through the node's CRI runtime. No kubelet or CRI runtime runs here: the CRI
// fixture (test/fixtures/cri/: a crictl stand-in answering as containerd does) names a namespace of the test's lab
// as the pod's sandbox, where a real DROP rule drops real SYNs.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import { dropSeries, seriesWith, startAgent, waitFor } from '../helpers/agent.js';
import { FIXTURES } from '../helpers/paths.js';
import { isType, needsRoot, Pathtrace, runCli, SLOWDOWN, sleep } from '../helpers/pathtrace.js';

const PORT = 3306;
const SANDBOX = 'b1f0c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1';
const FIXTURE = path.join(FIXTURES, 'cri');

/** The CRI fixture's answers for a pod db/mysql-0 whose sandbox is the namespace /run/netns/NETNS; the env that
 *  puts the crictl stand-in first on PATH. */
function criFor(t: TestContext, netns: string, pid: number): NodeJS.ProcessEnv {
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-cri-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const file of ['pods.json', 'inspectp.json', 'ps.json']) {
    const text = readFileSync(path.join(FIXTURE, file), 'utf8')
      .replaceAll('@SANDBOX@', SANDBOX)
      .replaceAll('"@PID@"', String(pid))
      .replaceAll('@NETNS@', `/run/netns/${netns}`);
    writeFileSync(path.join(dir, file), text);
  }
  return { PATH: `${FIXTURE}:${process.env.PATH}`, PATHTRACE_TEST_CRI: dir };
}

/** A lab whose server namespace is the pod's, a DROP rule on PORT there, and its sandbox's "pause" process. */
function podLab(t: TestContext) {
  const lab = new Lab();
  t.after(() => lab.destroy());
  lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP']);
  const pause = spawn('ip', ['netns', 'exec', lab.server.netns, 'sleep', '600'], { stdio: 'ignore' });
  t.after(() => pause.kill());
  return { lab, pause };
}

test("--pod NAMESPACE/NAME: its sandbox's namespace traced, the DROP rule there named, the pod and its containers told", async (t) => {
  if (!needsRoot(t)) return;
  const { lab, pause } = podLab(t);
  const env = criFor(t, lab.server.netns, pause.pid!);
  const pt = await Pathtrace.start(['--pod', 'db/mysql-0', '--port', String(PORT)], env);
  await lab.connect('tcp', lab.server.v4, PORT, 500 * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  const { code, records, stderr } = await pt.stop();
  assert.equal(code, 0, stderr);
  const r = records.find(isType('ready'))!;
  assert.equal(r.netns.name, 'db/mysql-0');
  assert.deepEqual(r.pod, { namespace: 'db', name: 'mysql-0', id: SANDBOX, containers: ['mysql', 'metrics'] });
  assert.equal(r.netns.inode, statSync(`/run/netns/${lab.server.netns}`).ino, "the pod's namespace is the server's");
  const [d] = records.filter(isType('packet')).filter((p) => p.fate === 'dropped');
  assert.ok(d, `the SYN was dropped: ${JSON.stringify(records)}`);
  assert.deepEqual([d.drop.hook, d.drop.chain], ['LOCAL_IN', 'INPUT']);
  // Asked by exact name: crictl's filters are patterns, and the fixture has a mysql-0-backup beside it.
  const calls = readFileSync(path.join(env.PATHTRACE_TEST_CRI!, 'calls'), 'utf8');
  assert.match(calls, /^pods --namespace \^db\$ --name \^mysql-0\$ --output json$/m);
  const plain = runCli(['--pod', 'db/mysql-0', '--port', String(PORT), '--plain', '--duration', '1'], { env });
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stderr + plain.stdout, /pod db\/mysql-0 \(sandbox b1f0c2d3e4f5: mysql, metrics\)/);
});

test('--pod: no such pod, no CRI runtime, no crictl, a bad name: one line, a non-zero exit', (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  const env = criFor(t, lab.server.netns, process.pid);
  const noCrictl = { PATH: '/usr/sbin:/sbin' }; // node is run by its path; crictl is nowhere on this PATH
  const cases: [string[], NodeJS.ProcessEnv, number, RegExp][] = [
    [['--pod', 'db/nosuch'], env, 1, /^pathtrace: no pod db\/nosuch on this node \(crictl pods\)\n$/],
    [['--pod', 'mysql-0'], env, 1, /^pathtrace: no pod default\/mysql-0 on this node/],
    [['--pod', 'db/mysql-0'], { ...env, PATHTRACE_TEST_CRI: '' }, 1, /^pathtrace: crictl pods: validate service/],
    [['--pod', 'db/mysql-0'], noCrictl, 1, /^pathtrace: --pod needs crictl \(cri-tools\).*not installed\n$/],
    [['--pod', 'DB/x'], env, 2, /^pathtrace: bad --pod 'DB\/x': NAMESPACE\/NAME/],
  ];
  for (const [args, e, code, message] of cases) {
    const r = runCli([...args, '--port', String(PORT)], { env: e });
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

/** A cgroup laid out as the kubelet's cgroupfs driver lays a pod's sandbox out (…/kubepods/QOS/podUID/ID), made
 *  under a directory of the test's own in a hierarchy that takes processes; null where none does. */
function podCgroup(t: TestContext, id: string): string | null {
  const root = ['/sys/fs/cgroup', '/sys/fs/cgroup/pids'].find((d) => existsSync(path.join(d, 'cgroup.procs')));
  if (!root) return null;
  const top = path.join(root, `pathtrace-test-${process.pid}`);
  const dir = path.join(top, 'kubepods/besteffort/pod3f1c2a8e-8a52-4d0b-9b8a-2f6f0c1d9e11', id);
  mkdirSync(dir, { recursive: true });
  t.after(() => {
    // Its processes back to the root first: a cgroup with processes cannot go.
    for (const pid of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean))
      try {
        writeFileSync(path.join(root, 'cgroup.procs'), pid);
      } catch {
        /* gone meanwhile */
      }
    for (let d = dir; d.startsWith(top); d = path.dirname(d)) rmdirSync(d);
  });
  return dir;
}

test("the agent: a pod's drops labelled with its namespace and name, from its sandbox's cgroup and CRI", async (t) => {
  if (!needsRoot(t)) return;
  const { lab, pause } = podLab(t);
  const cgroup = podCgroup(t, SANDBOX);
  if (!cgroup) return t.skip('no cgroup hierarchy here takes processes (/sys/fs/cgroup, /sys/fs/cgroup/pids)');
  writeFileSync(path.join(cgroup, 'cgroup.procs'), String(pause.pid));
  const env = criFor(t, lab.server.netns, pause.pid!);
  const agent = await startAgent(['--forget-after', '1'], env);
  t.after(() => {
    if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
  });
  const srv = lab.server.netns;
  const series = () => dropSeries(agent, srv);
  await lab.connect('tcp', lab.server.v4, PORT, 300 * SLOWDOWN);
  const labelled = await seriesWith(agent, srv, 'k8s_pod="mysql-0"');
  assert.match(labelled, /container="",k8s_namespace="db",k8s_pod="mysql-0",.*chain="INPUT"/);
  assert.match(agent.output(), new RegExp(`drop in ${srv} \\(pod db/mysql-0\\) on eth0: tcp `));
  // The sandbox's id is no container's: crictl inspect said so, inspectp named the pod.
  const calls = readFileSync(path.join(env.PATHTRACE_TEST_CRI!, 'calls'), 'utf8');
  assert.equal(calls, `inspect --output json ${SANDBOX}\ninspectp --output json ${SANDBOX}\n`);
  // The sandbox gone: the pod's series after --forget-after.
  pause.kill();
  await waitFor(
    "the pod's series gone",
    async () => ((await series()).some((l) => l.includes('k8s_pod="mysql-0"')) ? undefined : true),
    15_000,
  );
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0, agent.output());
});
