// --container: a container, by name or id, to the network namespace it runs in (/proc/PID/ns/net of its first
// process), asked of the runtimes whose command-line tools are here: podman, Docker, and a CRI runtime
// (containerd, CRI-O) through crictl. --pod: a Kubernetes pod to its sandbox's namespace, through crictl.
// Read-only: only their `inspect`, `pods` and `ps`.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolveNetns, type NetnsTarget } from './netns.js';

export type Runtime = 'podman' | 'docker' | 'crictl';
const RUNTIMES: Runtime[] = ['podman', 'docker', 'crictl'];
const ASK_TIMEOUT_MS = 10_000;

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

export const INSPECT_ARGS: Record<Runtime, (ref: string) => string[]> = {
  podman: (ref) => ['inspect', '--type', 'container', '--format', 'json', ref],
  docker: (ref) => ['inspect', '--type', 'container', ref],
  crictl: (ref) => ['inspect', '--output', 'json', ref],
};

export interface Asked {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** What a runtime's tool answered: null when it is not installed. */
function asked(error: Error | undefined | null, status: number | null, stdout = '', stderr = ''): Asked | null {
  if ((error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return null;
  if (error && status === null) return { status: null, stdout: '', stderr: error.message };
  return { status, stdout, stderr };
}

/** A runtime's tool run, read-only; null when it is not installed. */
function ask(tool: Runtime, args: string[]): Asked | null {
  const r = spawnSync(tool, args, { encoding: 'utf8', timeout: ASK_TIMEOUT_MS });
  return asked(r.error, r.status, r.stdout, r.stderr);
}

/** The same, not holding up the caller (the agent serves its metrics meanwhile). */
export function askLater(tool: Runtime, args: string[]): Promise<Asked | null> {
  return new Promise((resolve) =>
    execFile(tool, args, { encoding: 'utf8', timeout: ASK_TIMEOUT_MS, maxBuffer: 16 << 20 }, (e, stdout, stderr) => {
      const code = (e as { code?: unknown } | null)?.code;
      resolve(asked(e, e ? (typeof code === 'number' ? code : null) : 0, stdout, stderr));
    }),
  );
}

/** Asks each runtime here, in turn, for the container; throws ContainerError saying what each answered. */
export function findContainer(ref: string): Container {
  const answers: string[] = [];
  for (const runtime of RUNTIMES) {
    const r = ask(runtime, INSPECT_ARGS[runtime](ref));
    if (!r) continue;
    const a = parseInspect(runtime, r.status, r.stdout, r.stderr);
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

/** A Kubernetes pod, as its node's CRI runtime knows it. */
export interface Pod {
  namespace: string;
  name: string;
  /** Its sandbox's id. */
  id: string;
  /** The names of its containers, which all share the sandbox's network namespace. */
  containers: string[];
}

// Kubernetes' names: a namespace is a DNS label (RFC 1123), a pod's name a DNS subdomain.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** --pod's NAMESPACE/NAME, or NAME in namespace default as kubectl takes it; null when not a pod's name. Pure. */
export function parsePodRef(ref: string): { namespace: string; name: string } | null {
  const [namespace, name, ...rest] = ref.includes('/') ? ref.split('/') : ['default', ref];
  if (rest.length || !namespace || !name || !DNS_LABEL.test(namespace) || !DNS_SUBDOMAIN.test(name)) return null;
  return { namespace, name };
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A failed crictl's last words, without its log's dressing (logrus' `time=... level=fatal msg="..."`, or
 *  `FATA[0000] ...` on a terminal). Pure. */
export function crictlSaid(status: number | null, stderr: string): string {
  const last = stderr.trim().split('\n').pop() ?? '';
  const quoted = /\bmsg=("(?:[^"\\]|\\.)*")/.exec(last)?.[1];
  let said = last.replace(/^FATA\[\d+\]\s*/, '');
  if (quoted)
    try {
      said = JSON.parse(quoted) as string;
    } catch {
      said = quoted.slice(1, -1);
    }
  return said.trim() || `exit ${status}`;
}

interface CriPods {
  items?: { id?: string; metadata?: { name?: string; namespace?: string }; state?: string }[];
}

/** `crictl pods -o json`: the sandboxes of exactly this pod, ready ones first (crictl's filters are patterns). */
export function parsePods(stdout: string, ns: string, name: string): { id: string; ready: boolean }[] {
  const { items = [] } = JSON.parse(stdout) as CriPods;
  return items
    .filter((p) => p.id && p.metadata?.namespace === ns && p.metadata.name === name)
    .map((p) => ({ id: p.id!, ready: p.state === 'SANDBOX_READY' }))
    .sort((a, b) => Number(b.ready) - Number(a.ready));
}

interface CriSandbox {
  status?: { metadata?: { name?: string; namespace?: string } };
  info?: {
    pid?: number;
    runtimeSpec?: { linux?: { namespaces?: { type?: string; path?: string }[] } };
  };
}

/** `crictl inspectp -o json`: the sandbox's network namespace, as a file (containerd and CRI-O pin it under
 *  /var/run/netns, named in the runtime spec), else through its first process; null when it names neither. */
export function sandboxNetns(stdout: string): string | null {
  const { info } = JSON.parse(stdout) as CriSandbox;
  const pinned = info?.runtimeSpec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
  if (pinned) return pinned;
  return info?.pid ? `/proc/${info.pid}/ns/net` : null;
}

/** `crictl inspectp -o json`: the sandbox's pod, null when it names none. */
export function sandboxPod(stdout: string): { namespace: string; name: string } | null {
  const { namespace, name } = (JSON.parse(stdout) as CriSandbox).status?.metadata ?? {};
  return namespace && name ? { namespace, name } : null;
}

/** `crictl ps -o json`: the containers' names. */
export function containerNames(stdout: string): string[] {
  const { containers = [] } = JSON.parse(stdout) as { containers?: { metadata?: { name?: string } }[] };
  return containers.flatMap((c) => (c.metadata?.name ? [c.metadata.name] : []));
}

/** A crictl command's JSON answer, or a ContainerError saying why there is none. */
function crictl<T>(args: string[], read: (stdout: string) => T): T {
  const r = ask('crictl', args);
  if (!r)
    throw new ContainerError("--pod needs crictl (cri-tools) to ask the node's CRI runtime: crictl is not installed");
  if (r.status !== 0) throw new ContainerError(`crictl ${args[0]}: ${crictlSaid(r.status, r.stderr)}`);
  try {
    return read(r.stdout);
  } catch {
    throw new ContainerError(`crictl ${args[0]}: its output is not the JSON expected`);
  }
}

/** The namespace of a Kubernetes pod's sandbox, named NAMESPACE/NAME, with its containers. */
export function podNetns(ref: string): NetnsTarget {
  const want = parsePodRef(ref);
  if (!want) throw new ContainerError(`bad pod '${ref}': NAMESPACE/NAME`);
  const label = `${want.namespace}/${want.name}`;
  const pattern = (s: string): string => `^${escapeRegExp(s)}$`;
  const [sandbox] = crictl(
    ['pods', '--namespace', pattern(want.namespace), '--name', pattern(want.name), '--output', 'json'],
    (out) => parsePods(out, want.namespace, want.name),
  );
  if (!sandbox) throw new ContainerError(`no pod ${label} on this node (crictl pods)`);
  if (!sandbox.ready) throw new ContainerError(`pod ${label} is not running (its sandbox is not ready)`);
  const file = crictl(['inspectp', '--output', 'json', sandbox.id], sandboxNetns);
  if (!file || !existsSync(file))
    throw new ContainerError(`pod ${label}: its runtime names no network namespace that is here`);
  const containers = crictl(['ps', '--pod', sandbox.id, '--output', 'json'], containerNames);
  const pod: Pod = { ...want, id: sandbox.id, containers };
  return { ...resolveNetns(file), label, pod };
}
