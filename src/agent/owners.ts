// Whose a network namespace is, for the agent's container and pod labels: a process in it whose cgroup is a
// container's (podman, Docker, containerd and CRI-O, under systemd's or cgroupfs' layout), named by its runtime.
// A Kubernetes pod's containers share its namespace: its drops are the pod's, not one container's.
import { readFileSync } from 'node:fs';
import { askLater, INSPECT_ARGS, parseInspect, sandboxPod, type Asked, type Runtime } from '../trace/containers.js';

export interface Owner {
  /** A container's name (podman, Docker); empty for a pod's namespace. */
  container: string;
  k8sNamespace: string;
  k8sPod: string;
}

export const NO_OWNER: Owner = { container: '', k8sNamespace: '', k8sPod: '' };

export const ownerText = (o: Owner): string =>
  o.k8sPod ? `pod ${o.k8sNamespace}/${o.k8sPod}` : o.container ? `container ${o.container}` : '';

const ID = '([0-9a-f]{64})';
const END = '(?:\\.scope)?(?:/|$)';
/** Where each runtime puts its containers' processes: systemd's scopes (libpod-ID.scope, docker-ID.scope,
 *  cri-containerd-ID.scope, crio-ID.scope) and cgroupfs' directories (/libpod_parent/libpod-ID, /docker/ID,
 *  /kubepods/QOS/podUID/ID). A runtime's monitor (libpod-conmon-ID, crio-conmon-ID) is no container. */
const LAYOUTS: [RegExp, Runtime][] = [
  [new RegExp(`/libpod-${ID}${END}`), 'podman'],
  [new RegExp(`/docker[-/]${ID}${END}`), 'docker'],
  [new RegExp(`/(?:cri-containerd|crio)-${ID}${END}`), 'crictl'],
  [new RegExp(`/kubepods\\b.*/pod[0-9a-f_-]+/${ID}${END}`), 'crictl'],
];

/** The container a process's cgroups (/proc/PID/cgroup: "ID:CONTROLLERS:PATH" lines) place it in. Pure. */
export function cgroupContainer(cgroups: string): { runtime: Runtime; id: string } | null {
  for (const line of cgroups.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    for (const [layout, runtime] of LAYOUTS) {
      const id = layout.exec(path)?.[1];
      if (id) return { runtime, id };
    }
  }
  return null;
}

/** Where runtimes keep what they know of a container, read before asking their tools (a DaemonSet's image has
 *  none, and mounts these read-only): the OCI bundle of containerd's and CRI-O's Kubernetes containers, with the
 *  pod in its annotations; containers/storage's list of podman's containers; Docker's container config. */
const RECORDS: Record<Runtime, ((id: string) => string)[]> = {
  crictl: [
    (id) => `/run/containerd/io.containerd.runtime.v2.task/k8s.io/${id}/config.json`,
    (id) => `/run/containers/storage/overlay-containers/${id}/userdata/config.json`,
  ],
  podman: [() => '/var/lib/containers/storage/overlay-containers/containers.json'],
  docker: [(id) => `/var/lib/docker/containers/${id}/config.v2.json`],
};

/** The owner one of those files names, null when it names none. Pure. */
export function recordedOwner(runtime: Runtime, id: string, text: string): Owner | null {
  const json = JSON.parse(text) as unknown;
  if (runtime === 'podman') {
    const c = (Array.isArray(json) ? (json as { id?: string; names?: string[] }[]) : []).find((c) => c.id === id);
    return c?.names?.[0] ? { ...NO_OWNER, container: c.names[0] } : null;
  }
  if (runtime === 'docker') {
    const name = (json as { Name?: string }).Name?.replace(/^\//, '');
    return name ? { ...NO_OWNER, container: name } : null;
  }
  // containerd's annotations name the sandbox's pod; CRI-O's the pod.
  const a = (json as { annotations?: Record<string, string> }).annotations ?? {};
  const namespace = a['io.kubernetes.cri.sandbox-namespace'] ?? a['io.kubernetes.pod.namespace'];
  const name = a['io.kubernetes.cri.sandbox-name'] ?? a['io.kubernetes.pod.name'];
  return namespace && name ? { container: '', k8sNamespace: namespace, k8sPod: name } : null;
}

function fromRecords(runtime: Runtime, id: string, read: (file: string) => string): Owner | null {
  for (const file of RECORDS[runtime]) {
    try {
      const owner = recordedOwner(runtime, id, read(file(id)));
      if (owner) return owner;
    } catch {
      /* not this runtime's layout, not mounted, or not JSON: its tool is asked */
    }
  }
  return null;
}

const readText = (file: string): string => readFileSync(file, 'utf8');

/** The owner the runtime's files or its tool's answers name; the container's short id where neither told
 *  (not installed, not running): `docker ps`/`crictl ps` still find it by that. Pure but for `ask`, `read`. */
export async function askOwner(
  runtime: Runtime,
  id: string,
  ask: (tool: Runtime, args: string[]) => Promise<Asked | null> = askLater,
  read: (file: string) => string = readText,
): Promise<Owner> {
  const recorded = fromRecords(runtime, id, read);
  if (recorded) return recorded;
  const short = { ...NO_OWNER, container: id.slice(0, 12) };
  const r = await ask(runtime, INSPECT_ARGS[runtime](id));
  if (!r) return short;
  const a = parseInspect(runtime, r.status, r.stdout, r.stderr);
  if ('container' in a) {
    const { pod, name } = a.container;
    return pod ? { container: '', k8sNamespace: pod.namespace, k8sPod: pod.name } : { ...NO_OWNER, container: name };
  }
  if (runtime !== 'crictl' || !('none' in a)) return short;
  // Not a container: a pod's sandbox (its pause process holds the namespace).
  const p = await ask(runtime, ['inspectp', '--output', 'json', id]);
  try {
    const pod = p?.status === 0 ? sandboxPod(p.stdout) : null;
    return pod ? { container: '', k8sNamespace: pod.namespace, k8sPod: pod.name } : short;
  } catch {
    return short;
  }
}

/** The container a process is in, null when none (or it is gone). */
export function processContainer(pid: number, proc = '/proc'): { runtime: Runtime; id: string } | null {
  try {
    return cgroupContainer(readFileSync(`${proc}/${pid}/cgroup`, 'utf8'));
  } catch {
    return null;
  }
}

/** The owners of namespaces, followed as their processes come and go: each namespace's processes are looked at
 *  once, until one is a container's; when that one is gone, the owner is gone with it. Runtimes are asked once
 *  per container. */
export class Owners {
  private readonly byId = new Map<string, Promise<Owner>>();
  private readonly of = new Map<number, { owner: Owner; pid: number; id: string; seen: Set<number> }>();

  constructor(
    private readonly ask: (runtime: Runtime, id: string) => Promise<Owner> = askOwner,
    private readonly container: (pid: number) => { runtime: Runtime; id: string } | null = processContainer,
  ) {}

  /** The owner of namespace `inode` now, its processes being `pids`; `gone` is told the owner it had when the
   *  process that made it its owner went. */
  async update(inode: number, pids: number[], gone: (o: Owner) => void): Promise<Owner> {
    let s = this.of.get(inode);
    if (!s) this.of.set(inode, (s = { owner: NO_OWNER, pid: 0, id: '', seen: new Set() }));
    if (s.pid && pids.includes(s.pid)) return s.owner;
    if (s.pid) {
      gone(s.owner);
      this.byId.delete(s.id);
      Object.assign(s, { owner: NO_OWNER, pid: 0, id: '' });
    }
    const seen = new Set<number>();
    for (const pid of pids) {
      seen.add(pid);
      if (s.seen.has(pid)) continue;
      const c = this.container(pid);
      if (!c) continue;
      let asked = this.byId.get(c.id);
      if (!asked) this.byId.set(c.id, (asked = this.ask(c.runtime, c.id)));
      Object.assign(s, { owner: await asked, pid, id: c.id });
      break;
    }
    s.seen = seen;
    return s.owner;
  }

  owner(inode: number): Owner {
    return this.of.get(inode)?.owner ?? NO_OWNER;
  }

  forget(inode: number): void {
    const s = this.of.get(inode);
    if (s?.id) this.byId.delete(s.id);
    this.of.delete(inode);
  }
}
