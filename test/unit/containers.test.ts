// What the container runtimes' `inspect` answers, read: podman's and Docker's arrays, crictl's CRI status with its
// pod labels, nothing found, a runtime that is not running. The outputs are trimmed from real ones (podman 4.3
// here; Docker's and crictl's documented shapes).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readFileSync } from 'node:fs';
import {
  containerNames,
  crictlSaid,
  parseInspect,
  parsePodRef,
  parsePods,
  sandboxNetns,
} from '../../src/trace/containers.js';

const ID = 'c968d8fc06228f09dabba23cc4b81b5a9b2a061047d40da880f89733c9bf64e9';

test("podman's and Docker's inspect: the container's id, name and first process; none when the array is empty", () => {
  const podman = JSON.stringify([{ Id: ID, Name: 'db', State: { Status: 'running', Running: true, Pid: 26849 } }]);
  assert.deepEqual(parseInspect('podman', 0, podman, ''), {
    container: { runtime: 'podman', id: ID, name: 'db', pid: 26849 },
  });
  // Docker's names start with a slash.
  const docker = JSON.stringify([{ Id: ID, Name: '/web', State: { Pid: 0, Running: false } }]);
  assert.deepEqual(parseInspect('docker', 0, docker, ''), {
    container: { runtime: 'docker', id: ID, name: 'web', pid: 0 },
  });
  assert.deepEqual(parseInspect('podman', 125, '[]', 'Error: inspecting object: no such container x\n'), {
    none: true,
  });
  assert.deepEqual(parseInspect('docker', 1, '[]', 'Error: No such container: x\n'), { none: true });
});

test('a runtime that cannot answer says why, in its own words', () => {
  const down = 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n';
  assert.deepEqual(parseInspect('docker', 1, '', down), {
    failed: 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?',
  });
  assert.deepEqual(parseInspect('podman', 0, 'not json', ''), { failed: 'its inspect output is not JSON' });
});

test("crictl's inspect: the CRI status, its pod from Kubernetes' labels, the pid from the runtime's info", () => {
  const cri = JSON.stringify({
    status: {
      id: ID,
      metadata: { name: 'mysql', attempt: 0 },
      state: 'CONTAINER_RUNNING',
      labels: {
        'io.kubernetes.container.name': 'mysql',
        'io.kubernetes.pod.name': 'db-0',
        'io.kubernetes.pod.namespace': 'prod',
      },
    },
    info: { pid: 4242, sandboxID: 'f00' },
  });
  assert.deepEqual(parseInspect('crictl', 0, cri, ''), {
    container: { runtime: 'crictl', id: ID, name: 'mysql', pid: 4242, pod: { namespace: 'prod', name: 'db-0' } },
  });
  const missing =
    'E1205 10:00:00 remote_runtime.go:1: "ContainerStatus from runtime service failed" err="rpc error: code = NotFound desc = an error occurred when try to find container \\"x\\": not found"\nFATA[0000] getting the status of the container "x": not found\n';
  assert.deepEqual(parseInspect('crictl', 1, '', missing), { none: true });
  const noRuntime =
    'FATA[0000] validate service connection: validate CRI v1 runtime API for endpoint "unix:///run/containerd/containerd.sock": rpc error: code = Unavailable desc = connection error\n';
  assert.deepEqual(parseInspect('crictl', 1, '', noRuntime), {
    failed:
      'validate service connection: validate CRI v1 runtime API for endpoint "unix:///run/containerd/containerd.sock": rpc error: code = Unavailable desc = connection error',
  });
});

test("--pod's name: NAMESPACE/NAME as Kubernetes spells them, or NAME in namespace default", () => {
  assert.deepEqual(parsePodRef('prod/mysql-0'), { namespace: 'prod', name: 'mysql-0' });
  assert.deepEqual(parsePodRef('coredns-5d78c9869d-abcde'), { namespace: 'default', name: 'coredns-5d78c9869d-abcde' });
  assert.deepEqual(parsePodRef('kube-system/etcd.node-1'), { namespace: 'kube-system', name: 'etcd.node-1' });
  for (const bad of ['Prod/x', 'a/b/c', '/x', 'a/', '', 'x_y', 'a.b/c', `${'n'.repeat(64)}/x`])
    assert.equal(parsePodRef(bad), null, bad);
});

// The CRI fixture's JSON (test/fixtures/cri/, shaped as containerd's CRI answers crictl).
const cri = (file: string): string =>
  readFileSync(new URL(`../../../test/fixtures/cri/${file}`, import.meta.url), 'utf8')
    .replaceAll('@SANDBOX@', ID)
    .replaceAll('"@PID@"', '4242')
    .replaceAll('@NETNS@', '/var/run/netns/cni-1b2c');

test("crictl's pods, inspectp and ps: the pod's sandbox by its exact name, its pinned namespace, its containers", () => {
  // crictl's --name is a pattern: mysql-0-backup matches mysql-0 too, and is not it.
  assert.deepEqual(parsePods(cri('pods.json'), 'db', 'mysql-0'), [{ id: ID, ready: true }]);
  assert.deepEqual(parsePods(cri('pods.json'), 'prod', 'mysql-0'), []);
  const notReady = JSON.stringify({
    items: [
      { id: 'old', metadata: { name: 'w', namespace: 'a' }, state: 'SANDBOX_NOTREADY' },
      { id: 'new', metadata: { name: 'w', namespace: 'a' }, state: 'SANDBOX_READY' },
    ],
  });
  assert.deepEqual(parsePods(notReady, 'a', 'w'), [
    { id: 'new', ready: true },
    { id: 'old', ready: false },
  ]);
  assert.equal(sandboxNetns(cri('inspectp.json')), '/var/run/netns/cni-1b2c');
  // A runtime whose spec names no namespace file (host-network pods; some CRI-O versions): its first process's.
  assert.equal(sandboxNetns(JSON.stringify({ status: {}, info: { pid: 77 } })), '/proc/77/ns/net');
  assert.equal(sandboxNetns(JSON.stringify({ status: {} })), null);
  assert.deepEqual(containerNames(cri('ps.json')), ['mysql', 'metrics']);
});

test("a failed crictl's words, without logrus' dressing", () => {
  const logrus =
    'time="2026-12-05T00:00:00Z" level=fatal msg="validate service connection: dial unix \\"/run/containerd/containerd.sock\\": connect: no such file or directory"\n';
  assert.equal(
    crictlSaid(1, logrus),
    'validate service connection: dial unix "/run/containerd/containerd.sock": connect: no such file or directory',
  );
  assert.equal(crictlSaid(1, 'FATA[0000] getting sandbox status: not found\n'), 'getting sandbox status: not found');
  assert.equal(crictlSaid(2, ''), 'exit 2');
});
