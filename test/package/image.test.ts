// `npm run image`'s container image, run by podman as the DaemonSet runs it (deploy/kubernetes: the host's
// network and processes, the manifest's capabilities and nothing else, its mounts, a read-only root): beside it a
// busybox container on a namespace of the test's lab, behind a DROP rule. The image's trace, given that
// container's namespace, names the rule; its agent counts the drops labelled by the rule and by the container.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, test } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import { freePort, PORT, RULE, started, waitFor } from '../helpers/agent.js';
import { containerToolsMissing, removeContainer, removeImage, runContainer } from '../helpers/containers.js';
import { agentManifest } from '../helpers/manifest.js';
import { needsRoot, SLOWDOWN } from '../helpers/pathtrace.js';
import { ROOT } from '../helpers/paths.js';

after(removeImage);

/** podman run's flags for what the manifest gives the agent's pod. */
function asTheDaemonSetRunsIt(): string[] {
  const { daemonSet, agent } = agentManifest();
  const pod = daemonSet.spec!.template.spec!;
  const sc = agent.securityContext!;
  const hostPaths = new Map(pod.volumes!.map((v) => [v.name, v.hostPath?.path]));
  const flags = [
    ...['--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'],
    ...(pod.hostNetwork ? ['--network', 'host'] : []),
    ...(pod.hostPID ? ['--pid', 'host'] : []),
    ...(sc.readOnlyRootFilesystem ? ['--read-only'] : []),
    ...(sc.capabilities!.drop!.includes('ALL') ? ['--cap-drop', 'all'] : []),
    ...sc.capabilities!.add!.flatMap((c) => ['--cap-add', c]),
    ...(sc.seccompProfile?.type === 'Unconfined' ? ['--security-opt', 'seccomp=unconfined'] : []),
  ];
  for (const m of agent.volumeMounts!) {
    const from = hostPaths.get(m.name);
    // DirectoryOrCreate: the kubelet makes a runtime's directory that is not there; here it is left out instead
    // (the test makes nothing on the host).
    if (from && !existsSync(from)) continue;
    const mode = [m.readOnly ? 'ro' : 'rw', ...(m.mountPropagation === 'HostToContainer' ? ['rslave'] : [])];
    flags.push(...(from ? ['-v', `${from}:${m.mountPath}:${mode.join(',')}`] : ['--tmpfs', m.mountPath]));
  }
  return flags;
}

test('the image, run as the DaemonSet runs it: its trace names the rule before a container beside it, its agent labels the drops', async (t) => {
  if (!needsRoot(t)) return;
  const missing = containerToolsMissing();
  if (missing.length) return t.skip(`needs ${missing.join(', ')} (scripts/setup.sh installs them)`);
  const [image] = execFileSync('bash', ['scripts/image.sh'], { cwd: ROOT, encoding: 'utf8' }).trim().split('\n');
  t.after(() => spawnSync('podman', ['rmi', '-f', image!], { stdio: 'ignore' }));
  assert.match(image!, /^localhost\/pathtrace:\d+\.\d+\.\d+$/);

  const lab = new Lab();
  t.after(() => lab.destroy());
  const db = `pt-db-${process.pid}`;
  t.after(() => removeContainer(db));
  runContainer(db, lab.server.netns, ['nc', '-ll', '-p', String(PORT), '-e', 'cat']);
  lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP']);
  const pid = execFileSync('podman', ['inspect', '-f', '{{.State.Pid}}', db], { encoding: 'utf8' }).trim();
  // podman's list of its containers, where the agent finds their names (the manifest mounts containerd's and
  // CRI-O's records of Kubernetes' pods instead).
  const storage = '/var/lib/containers/storage/overlay-containers';
  const flags = [...asTheDaemonSetRunsIt(), '-v', `${storage}:${storage}:ro`];

  // The agent, and the trace in the container's namespace as the host's /proc names it.
  const port = await freePort();
  const agent = `pt-agent-${process.pid}`;
  t.after(() => removeContainer(agent));
  execFileSync(
    'podman',
    ['run', '-d', '--name', agent, ...flags, image!, 'agent', '--listen', `127.0.0.1:${port}`, '--interval', '1'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const metrics = () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
  const agentSaid = () => spawnSync('podman', ['logs', agent], { encoding: 'utf8' }).stderr;
  await waitFor('the agent in the image serving', () => metrics().then(() => true), 60_000).catch((e: Error) =>
    assert.fail(`${e.message}: ${agentSaid()}`),
  );
  const trace = spawn(
    'podman',
    ['run', '--rm', ...flags, image!, '--json', '--netns', `/proc/${pid}/ns/net`, '--port', String(PORT)].concat([
      '--count',
      '2',
      '--duration',
      String(60 * SLOWDOWN),
    ]),
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const run = started(trace);
  await waitFor('the trace ready', async () => (run.output().includes('"type":"ready"') ? true : undefined), 60_000);
  await lab.connect('tcp', lab.server.v4, PORT, 1500 * SLOWDOWN);
  assert.equal(await run.exited, 0, run.output());
  const records = run
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { type: string; fate?: string; drop?: { chain: string; rule: { text: string } } });
  const drops = records.filter((r) => r.type === 'packet' && r.fate === 'dropped');
  assert.equal(drops.length, 2, run.output());
  for (const d of drops) assert.deepEqual([d.drop!.chain, d.drop!.rule.text], ['INPUT', RULE]);

  // The agent saw them too, by the rule, in the namespace it names by the container.
  const srv = lab.server.netns;
  const series = await waitFor(
    `the agent's series of ${srv}'s INPUT rule`,
    async () =>
      (await metrics())
        .split('\n')
        .find((l) => l.startsWith(`pathtrace_drops_total{netns="${srv}"`) && l.includes('chain="INPUT"')),
    30_000,
  ).catch((e: Error) => assert.fail(`${e.message}: ${agentSaid()}`));
  assert.match(series, new RegExp(`container="${db}",.*chain="INPUT",rule="${RULE}",protocol="tcp"\\} [1-9]`));
  execFileSync('podman', ['stop', '-t', '10', agent], { stdio: 'ignore' });
  assert.equal(
    execFileSync('podman', ['inspect', '-f', '{{.State.ExitCode}}', agent], { encoding: 'utf8' }).trim(),
    '0',
  );
});
