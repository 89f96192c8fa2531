// --container: a container, by name or id, to the network namespace it runs in (/proc/PID/ns/net of its first
// process), asked of the runtimes whose command-line tools are here: podman, Docker, and a CRI runtime
// (containerd, CRI-O) through crictl. Read-only: only their `inspect`.
import { spawnSync } from 'node:child_process';
import { resolveNetns, type NetnsTarget } from './netns.js';

export type Runtime = 'podman' | 'docker' | 'crictl';
const RUNTIMES: Runtime[] = ['podman', 'docker', 'crictl'];

export interface Container {
  runtime: Runtime;
  id: string;
  name: string;
  /** Its first process, 0 when it is not running. */
  pid: number;
  /** Kubernetes' pod of a CRI container, from its labels. */
  pod?: { namespace: string; name: string };
}

export class ContainerError extends Error {}

/** What one runtime answered: the container, none by that name, or why it could not be asked. */
export type Answer = { container: Container } | { none: true } | { failed: string };

/** A runtime's answer to `inspect REF` (exit status, stdout, stderr). Pure. */
export function parseInspect(runtime: Runtime, status: number | null, stdout: string, stderr: string): Answer {
  const said = stderr.trim().split('\n').pop() ?? '';
  if (/no such (container|object)|not found|does not exist/i.test(stderr)) return { none: true };
  if (status !== 0) return { failed: said.replace(/^(Error|FATA\[\d+\]):?\s*/, '') || `exit ${status}` };
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    return { failed: 'its inspect output is not JSON' };
  }
  return runtime === 'crictl' ? fromCri(json) : fromDockerish(runtime, json);
}

interface DockerInspect {
  Id?: string;
  Name?: string;
  State?: { Pid?: number };
}

/** podman's and Docker's inspect: an array, empty when nothing matched. */
function fromDockerish(runtime: Runtime, json: unknown): Answer {
  const [c] = (Array.isArray(json) ? json : []) as DockerInspect[];
  if (!c?.Id) return { none: true };
  return {
    container: { runtime, id: c.Id, name: (c.Name ?? c.Id).replace(/^\//, ''), pid: c.State?.Pid ?? 0 },
  };
}

interface CriInspect {
  status?: {
    id?: string;
    metadata?: { name?: string };
    labels?: Record<string, string>;
  };
  info?: { pid?: number };
}

/** crictl inspect: the CRI status, with the runtime's own info (its pid) beside it. */
function fromCri(json: unknown): Answer {
  const { status, info } = json as CriInspect;
  if (!status?.id) return { none: true };
  const labels = status.labels ?? {};
  const ns = labels['io.kubernetes.pod.namespace'];
  const pod = labels['io.kubernetes.pod.name'];
  return {
    container: {
      runtime: 'crictl',
      id: status.id,
      name: status.metadata?.name ?? status.id,
      pid: info?.pid ?? 0,
      ...(ns && pod ? { pod: { namespace: ns, name: pod } } : {}),
    },
  };
}

const ARGS: Record<Runtime, (ref: string) => string[]> = {
  podman: (ref) => ['inspect', '--type', 'container', '--format', 'json', ref],
  docker: (ref) => ['inspect', '--type', 'container', ref],
  crictl: (ref) => ['inspect', '--output', 'json', ref],
};

/** Asks each runtime here, in turn, for the container; throws ContainerError saying what each answered. */
export function findContainer(ref: string): Container {
  const answers: string[] = [];
  for (const runtime of RUNTIMES) {
    const r = spawnSync(runtime, ARGS[runtime](ref), { encoding: 'utf8', timeout: 10_000 });
    if ((r.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') continue;
    const a: Answer = r.error
      ? { failed: r.error.message }
      : parseInspect(runtime, r.status, r.stdout ?? '', r.stderr ?? '');
    if ('container' in a) {
      if (!a.container.pid) throw new ContainerError(`container '${ref}' (${runtime}) is not running`);
      return a.container;
    }
    answers.push('none' in a ? `${runtime}: no such container` : `${runtime}: ${a.failed}`);
  }
  if (!answers.length)
    throw new ContainerError(`--container needs a container runtime: none of ${RUNTIMES.join(', ')} is installed`);
  throw new ContainerError(`no container '${ref}' (${answers.join('; ')})`);
}

/** The namespace of a container, named by it. */
export function containerNetns(ref: string): NetnsTarget {
  const c = findContainer(ref);
  const target = resolveNetns(`/proc/${c.pid}/ns/net`);
  return { ...target, label: c.name, container: c };
}
