// The Kubernetes manifests, checked offline: each object against the API's own schema (kubernetes-models, made
// from Kubernetes' OpenAPI definitions; no cluster is reachable here for kubectl's dry run), and what the agent
// needs of its pod (the host's network and processes, the mounts, the port Prometheus is told) said in them.
// test/package/image.test.ts runs the image with the same capabilities and mounts.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';
import { parseCommandLine } from '../../src/commands/options.js';
import { agentManifest, MANIFEST } from '../helpers/manifest.js';

test('the manifests are valid Kubernetes objects: a Namespace, the agent DaemonSet and its Service', () => {
  const docs = parseAllDocuments(readFileSync(MANIFEST, 'utf8'));
  const models = { Namespace, DaemonSet, Service } as const;
  assert.deepEqual(
    docs.map((d) => (d.toJS() as { kind: string }).kind),
    ['Namespace', 'DaemonSet', 'Service'],
  );
  for (const d of docs) {
    assert.deepEqual(d.errors, []);
    const o = d.toJS() as { kind: keyof typeof models };
    assert.doesNotThrow(() => new models[o.kind](o as never).validate(), o.kind);
  }
  // The check refuses what the API would: a wrong type, a value not in the API's list.
  const broken = structuredClone(agentManifest().daemonSet) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  broken.spec.template.spec.hostPID = 'yes';
  broken.spec.template.spec.containers[0].securityContext.seccompProfile.type = 'Loose';
  assert.throws(() => new DaemonSet(broken).validate(), /hostPID must be boolean/);
  assert.throws(
    () => new DaemonSet(broken).validate(),
    /seccompProfile\/type must be equal to one of the allowed values/,
  );
});

test("the DaemonSet gives the agent the node's namespaces, the mounts it reads, and Prometheus its port", () => {
  const { daemonSet, service, agent } = agentManifest();
  const pod = daemonSet.spec!.template.spec!;
  assert.equal(pod.hostNetwork, true);
  assert.equal(pod.hostPID, true);
  assert.deepEqual(pod.volumes!.map((v) => v.hostPath?.path).filter(Boolean), [
    '/sys/fs/bpf',
    '/sys/kernel/btf',
    '/run/netns',
    '/run/containerd/io.containerd.runtime.v2.task/k8s.io',
    '/run/containers/storage/overlay-containers',
  ]);
  const mounted = new Map(agent.volumeMounts!.map((m) => [m.name, m.mountPath]));
  for (const v of pod.volumes!) assert.ok(mounted.has(v.name), `${v.name} mounted`);
  // The runtimes' records are read, never written (nor their sockets reached).
  for (const m of agent.volumeMounts!.filter((m) => m.mountPath.startsWith('/run/')))
    assert.equal(m.readOnly, true, m.mountPath);
  assert.deepEqual(agent.securityContext!.capabilities!.drop, ['ALL']);
  assert.equal(agent.securityContext!.privileged, false);
  // The agent's own command line, as pathtrace parses it: listening where the annotations send Prometheus.
  const o = parseCommandLine(agent.args!);
  assert.ok(o.kind === 'agent');
  const annotations = daemonSet.spec!.template.metadata!.annotations!;
  assert.equal(annotations['prometheus.io/scrape'], 'true');
  assert.equal(Number(annotations['prometheus.io/port']), o.options.listen.port);
  assert.equal(agent.ports![0]!.containerPort, o.options.listen.port);
  assert.equal(o.options.listen.host, '::', 'every address of the node');
  assert.deepEqual(service.spec!.selector, daemonSet.spec!.selector.matchLabels);
  // The image is the one `npm run image` makes of this version.
  const { version } = JSON.parse(readFileSync(path.join(path.dirname(MANIFEST), '../../package.json'), 'utf8')) as {
    version: string;
  };
  assert.equal(agent.image, `localhost/pathtrace:${version}`);
});
