// Every network namespace of the host, present and new: those `ip netns` names (/run/netns), and those only a
// process holds (/proc/PID/ns/net), each once, by its inode (the kernel's ns.inum, what the BPF side counts by).
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';

export interface HostNetns {
  inode: number;
  /** A file to enter it by: its /run/netns name, else a process's /proc/PID/ns/net. */
  path: string;
  /** Its `ip netns` name, else its inode number. */
  name: string;
  /** The processes in it. */
  pids: number[];
}

function list(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The namespaces there are now. nsfs: the device of namespace files (a name in runDir may be a plain file
 *  left behind, not a namespace). */
export function hostNamespaces(runDir = '/run/netns', proc = '/proc'): HostNetns[] {
  const nsfs = statSync(path.join(proc, 'self/ns/net')).dev;
  const found = new Map<number, HostNetns>();
  const add = (file: string, name: string | null, pid?: number) => {
    try {
      const st = statSync(file);
      if (st.dev !== nsfs) return;
      let ns = found.get(st.ino);
      if (!ns) found.set(st.ino, (ns = { inode: st.ino, path: file, name: name ?? String(st.ino), pids: [] }));
      if (pid) ns.pids.push(pid);
    } catch {
      /* gone meanwhile, or not a namespace we may read */
    }
  };
  for (const n of list(runDir)) add(path.join(runDir, n), n);
  for (const pid of list(proc)) if (/^\d+$/.test(pid)) add(path.join(proc, pid, 'ns/net'), null, Number(pid));
  return [...found.values()];
}
