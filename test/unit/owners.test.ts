// Whose a namespace is, for the agent's labels: the container a process's cgroup names, as each runtime lays its
// cgroups out, and the runtime's answer for it (a container's name, a pod's namespace and name).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { askOwner, cgroupContainer, NO_OWNER, Owners, recordedOwner, type Owner } from '../../src/agent/owners.js';
import type { Asked, Runtime } from '../../src/trace/containers.js';
import { ROOT } from '../helpers/paths.js';

const ID = 'a'.repeat(8) + '0123456789abcdef'.repeat(3) + 'b'.repeat(8);
const SANDBOX = 'c'.repeat(64);

test("a process's cgroup names its container, as podman, Docker, containerd and CRI-O lay them out", () => {
  const cases: [string, { runtime: Runtime; id: string } | null][] = [
    // podman under systemd (cgroup v2; the container's own processes in its scope, or a "container" below it)
    [`0::/machine.slice/libpod-${ID}.scope`, { runtime: 'podman', id: ID }],
    [`0::/machine.slice/libpod-${ID}.scope/container`, { runtime: 'podman', id: ID }],
    // podman with cgroupfs; its monitor (conmon) is no container
    [`0::/libpod_parent/libpod-${ID}`, { runtime: 'podman', id: ID }],
    [`0::/machine.slice/libpod-conmon-${ID}.scope`, null],
    // Docker: systemd, and cgroupfs on cgroup v1 (any controller's line)
    [`0::/system.slice/docker-${ID}.scope`, { runtime: 'docker', id: ID }],
    [`12:pids:/docker/${ID}\n11:memory:/docker/${ID}\n0::/`, { runtime: 'docker', id: ID }],
    // Kubernetes: containerd and CRI-O under systemd, cgroupfs' /kubepods tree
    [
      `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod3f1c2a8e_8a52.slice/cri-containerd-${ID}.scope`,
      { runtime: 'crictl', id: ID },
    ],
    [`0::/kubepods.slice/kubepods-pod1.slice/crio-${ID}.scope`, { runtime: 'crictl', id: ID }],
    [`0::/kubepods.slice/kubepods-pod1.slice/crio-conmon-${ID}.scope`, null],
    [`0::/kubepods/burstable/pod3f1c2a8e-8a52-4d0b-9b8a-2f6f0c1d9e11/${ID}`, { runtime: 'crictl', id: ID }],
    // No container: the host's services, a user's session, a shorter id
    ['0::/system.slice/ssh.service', null],
    ['0::/user.slice/user-0.slice/session-3.scope', null],
    [`0::/system.slice/docker-${ID.slice(0, 12)}.scope`, null],
    ['', null],
  ];
  for (const [cgroups, want] of cases) assert.deepEqual(cgroupContainer(cgroups), want, cgroups);
});

const fixture = (name: string) =>
  readFileSync(path.join(ROOT, 'test/fixtures/cri', name), 'utf8').replaceAll('"@PID@"', '4242');
/** A runtime that answers these commands ("tool arg ..." → what it says), and says nothing else is there. */
const noFiles = (file: string): string => {
  throw new Error(`ENOENT: ${file}`);
};
const answering =
  (said: Record<string, Asked>, asked: string[] = []) =>
  (tool: Runtime, args: string[]): Promise<Asked | null> => {
    const line = [tool, ...args].join(' ');
    asked.push(line);
    const notFound = tool === 'crictl' ? 'not found' : `Error: no such container ${args.at(-1)}`;
    return Promise.resolve(said[line] ?? { status: 1, stdout: '', stderr: notFound });
  };

test("the owner's name: the container's, or a pod's; the short id where the runtime could not tell", async () => {
  const podmanSays = JSON.stringify([{ Id: ID, Name: 'mariadb', State: { Pid: 4242 } }]);
  const podman = answering({
    [`podman inspect --type container --format json ${ID}`]: { status: 0, stdout: podmanSays, stderr: '' },
  });
  assert.deepEqual(await askOwner('podman', ID, podman, noFiles), { ...NO_OWNER, container: 'mariadb' });
  const dockerSays = JSON.stringify([{ Id: ID, Name: '/web', State: { Pid: 1 } }]);
  const docker = answering({
    [`docker inspect --type container ${ID}`]: { status: 0, stdout: dockerSays, stderr: '' },
  });
  assert.deepEqual(await askOwner('docker', ID, docker, noFiles), { ...NO_OWNER, container: 'web' });
  // A pod's container, by its labels; the pod's sandbox (its pause process), by crictl inspectp.
  const criSays = JSON.stringify({
    status: {
      id: ID,
      metadata: { name: 'mysql' },
      labels: { 'io.kubernetes.pod.namespace': 'db', 'io.kubernetes.pod.name': 'mysql-0' },
    },
    info: { pid: 4242 },
  });
  const pod: Owner = { container: '', k8sNamespace: 'db', k8sPod: 'mysql-0' };
  const cri = answering({
    [`crictl inspect --output json ${ID}`]: { status: 0, stdout: criSays, stderr: '' },
    [`crictl inspectp --output json ${SANDBOX}`]: { status: 0, stdout: fixture('inspectp.json'), stderr: '' },
  });
  assert.deepEqual(await askOwner('crictl', ID, cri, noFiles), pod);
  assert.deepEqual(await askOwner('crictl', SANDBOX, cri, noFiles), pod);
  // Not installed, the daemon not answering, or neither a container nor a sandbox: its short id.
  const short = { ...NO_OWNER, container: ID.slice(0, 12) };
  assert.deepEqual(await askOwner('docker', ID, () => Promise.resolve(null), noFiles), short);
  const down = { status: 1, stdout: '', stderr: 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock' };
  assert.deepEqual(await askOwner('docker', ID, () => Promise.resolve(down), noFiles), short);
  assert.deepEqual(await askOwner('crictl', ID, answering({}), noFiles), short);
});

test("a namespace's owner followed: found once among its processes, gone with the process, the runtime asked once", async () => {
  const containers = new Map<number, { runtime: Runtime; id: string }>([
    [20, { runtime: 'podman', id: ID }],
    [30, { runtime: 'podman', id: SANDBOX }],
  ]);
  const looked: number[] = [];
  const asked: string[] = [];
  const owners = new Owners(
    (runtime, id) => {
      asked.push(id);
      return Promise.resolve({ ...NO_OWNER, container: id === ID ? 'db' : 'web' });
    },
    (pid) => {
      looked.push(pid);
      return containers.get(pid) ?? null;
    },
  );
  const gone: Owner[] = [];
  const update = (pids: number[]) => owners.update(7, pids, (o) => gone.push(o));
  assert.deepEqual(await update([10, 11]), NO_OWNER);
  assert.deepEqual(await update([10, 11, 20, 21]), { ...NO_OWNER, container: 'db' });
  assert.deepEqual(await update([10, 20, 21, 22]), { ...NO_OWNER, container: 'db' });
  assert.deepEqual(looked, [10, 11, 20], 'each process looked at once, none once the owner is found');
  assert.deepEqual(owners.owner(7), { ...NO_OWNER, container: 'db' });
  // Its process gone: the owner with it, another container's process found in its place.
  assert.deepEqual(await update([10, 21, 30]), { ...NO_OWNER, container: 'web' });
  assert.deepEqual(gone, [{ ...NO_OWNER, container: 'db' }]);
  assert.deepEqual(looked, [10, 11, 20, 21, 30]);
  assert.deepEqual(await update([10]), NO_OWNER);
  assert.deepEqual(asked, [ID, SANDBOX]);
  owners.forget(7);
  assert.deepEqual(owners.owner(7), NO_OWNER);
});

test("the owner from the runtime's own files, before its tool: containerd's and CRI-O's annotations, podman's and Docker's names", async () => {
  const files: Record<string, string> = {
    [`/run/containerd/io.containerd.runtime.v2.task/k8s.io/${SANDBOX}/config.json`]: JSON.stringify({
      ociVersion: '1.1.0',
      annotations: {
        'io.kubernetes.cri.container-type': 'sandbox',
        'io.kubernetes.cri.sandbox-id': SANDBOX,
        'io.kubernetes.cri.sandbox-name': 'mysql-0',
        'io.kubernetes.cri.sandbox-namespace': 'db',
      },
    }),
    [`/run/containers/storage/overlay-containers/${ID}/userdata/config.json`]: JSON.stringify({
      annotations: {
        'io.kubernetes.cri-o.ContainerType': 'container',
        'io.kubernetes.container.name': 'mysql',
        'io.kubernetes.pod.name': 'mysql-0',
        'io.kubernetes.pod.namespace': 'db',
      },
    }),
    '/var/lib/containers/storage/overlay-containers/containers.json': JSON.stringify([
      { id: SANDBOX, names: ['other'] },
      { id: ID, names: ['mariadb'], image: 'f'.repeat(64) },
    ]),
    [`/var/lib/docker/containers/${ID}/config.v2.json`]: JSON.stringify({ ID, Name: '/web', State: { Pid: 42 } }),
  };
  const read = (file: string) => files[file] ?? noFiles(file);
  const asked: string[] = [];
  const ask = answering({}, asked);
  const pod: Owner = { container: '', k8sNamespace: 'db', k8sPod: 'mysql-0' };
  assert.deepEqual(await askOwner('crictl', SANDBOX, ask, read), pod);
  assert.deepEqual(await askOwner('crictl', ID, ask, read), pod);
  assert.deepEqual(await askOwner('podman', ID, ask, read), { ...NO_OWNER, container: 'mariadb' });
  assert.deepEqual(await askOwner('docker', ID, ask, read), { ...NO_OWNER, container: 'web' });
  assert.deepEqual(asked, [], 'no tool asked where the files told');
  // A bundle without a pod's annotations (podman's own), a container not in the list: the tool is asked.
  assert.equal(
    recordedOwner('crictl', ID, JSON.stringify({ annotations: { 'io.container.manager': 'libpod' } })),
    null,
  );
  assert.equal(
    recordedOwner('podman', 'e'.repeat(64), files['/var/lib/containers/storage/overlay-containers/containers.json']!),
    null,
  );
  await askOwner('podman', 'e'.repeat(64), ask, read);
  assert.deepEqual(asked, [`podman inspect --type container --format json ${'e'.repeat(64)}`]);
});
