// What the container runtimes' `inspect` answers, read: podman's and Docker's arrays, crictl's CRI status with its
// pod labels, nothing found, a runtime that is not running. The outputs are trimmed from real ones (podman 4.3
// here; Docker's and crictl's documented shapes).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseInspect } from '../../src/trace/containers.js';

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
