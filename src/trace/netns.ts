// Resolves --netns to a namespace file and its inode (the kernel's ns.inum), and
// finds the namespace again when the file it was named by goes.
import { existsSync, lstatSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Container, Pod } from './containers.js';

export interface NetnsTarget {
  /** File to setns() into; "" for pathtrace's own namespace. */
  path: string;
  inode: number;
  /** As the user named it, for messages (a container: its name). */
  label: string;
  /** --container: the container it was found by. */
  container?: Container;
  /** --pod: the Kubernetes pod it was found by. */
  pod?: Pod;
}

export class NetnsError extends Error {}

const OWN = '/proc/self/ns/net';

export function resolveNetns(spec: string | null, runDir = '/run/netns'): NetnsTarget {
  if (spec === null) return { path: '', inode: statSync(OWN).ino, label: 'own' };
  const isPath = spec.includes('/');
  if (!isPath && (spec === '.' || spec === '..' || spec === ''))
    throw new NetnsError(`bad network namespace name '${spec}'`);
  const file = isPath ? spec : path.join(runDir, spec);
  // /proc/PID/ns/* are links named after their type: "mnt:[4026531841]".
  const type = nsLinkType(file);
  if (type && type !== 'net') throw new NetnsError(`'${spec}' is a ${type} namespace, not a network namespace`);
  if (!existsSync(file)) {
    throw new NetnsError(
      isPath
        ? `unknown network namespace '${spec}': no such file`
        : `unknown network namespace '${spec}': not in 'ip netns list' (${file} does not exist)`,
    );
  }
  const st = statSync(file);
  // Namespace files live on nsfs; the own namespace's file tells its device number.
  if (st.dev !== statSync(OWN).dev) throw new NetnsError(`'${spec}' is not a network namespace file`);
  return { path: file, inode: st.ino, label: spec };
}

function nsLinkType(file: string): string | null {
  try {
    if (!lstatSync(file).isSymbolicLink()) return null;
    return /^(\w+):\[\d+\]$/.exec(readlinkSync(file))?.[1] ?? null;
  } catch {
    return null;
  }
}

/** A file that names the network namespace with this inode now: a name in runDir, else a process's
 *  /proc/PID/ns/net; null when nothing names it (deleted, or its last process exited). Asked when the
 *  file the trace was started with has gone: a namespace given as /proc/PID/ns/net outlives that process
 *  while others run in it. */
export function findNetns(inode: number, runDir = '/run/netns'): string | null {
  const nsfs = statSync(OWN).dev;
  const first = (files: string[]) =>
    files.find((f) => {
      try {
        const st = statSync(f);
        return st.ino === inode && st.dev === nsfs;
      } catch {
        return false; // gone meanwhile, or not ours to read
      }
    }) ?? null;
  const list = (dir: string) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  };
  return (
    first(list(runDir).map((n) => path.join(runDir, n))) ??
    first(
      list('/proc')
        .filter((n) => /^\d+$/.test(n))
        .map((n) => `/proc/${n}/ns/net`),
    )
  );
}
