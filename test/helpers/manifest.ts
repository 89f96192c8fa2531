// The Kubernetes manifest of the agent (deploy/kubernetes), parsed: its DaemonSet, Service and agent container.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IService } from 'kubernetes-models/v1/Service';
import { parseAllDocuments } from 'yaml';
import { ROOT } from './paths.js';

export const MANIFEST = path.join(ROOT, 'deploy/kubernetes/pathtrace-agent.yaml');

export function agentManifest(): { daemonSet: IDaemonSet; service: IService; agent: IContainer } {
  const docs = parseAllDocuments(readFileSync(MANIFEST, 'utf8')).map((d) => d.toJS() as { kind: string });
  const daemonSet = docs.find((d) => d.kind === 'DaemonSet') as IDaemonSet;
  const service = docs.find((d) => d.kind === 'Service') as IService;
  return { daemonSet, service, agent: daemonSet.spec!.template.spec!.containers[0]! };
}
