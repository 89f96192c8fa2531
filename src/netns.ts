// Resolves --netns to a namespace file and its inode (the kernel's ns.inum).
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';

export interface NetnsTarget {
  /** File to setns() into; "" for pathtrace's own namespace. */
  path: string;
  inode: number;
  /** As the user named it, for messages. */
  label: string;
}

export class NetnsError extends Error {}

const OWN = '/proc/self/ns/net';

export function resolveNetns(spec: string | null, runDir = '/run/netns'): NetnsTarget {
  if (spec === null) return { path: '', inode: statSync(OWN).ino, label: 'own' };
  const isPath = spec.includes('/');
  if (!isPath && (spec === '.' || spec === '..' || spec === '')) throw new NetnsError(`bad network namespace name '${spec}'`);
  const file = isPath ? spec : path.join(runDir, spec);
  if (!existsSync(file)) {
    throw new NetnsError(isPath
      ? `unknown network namespace '${spec}': no such file`
      : `unknown network namespace '${spec}': not in 'ip netns list' (${file} does not exist)`);
  }
  const st = statSync(file);
  // Namespace files live on nsfs; the own namespace's file tells its device number.
  if (st.dev !== statSync(OWN).dev) throw new NetnsError(`'${spec}' is not a network namespace file`);
  return { path: file, inode: st.ino, label: spec };
}
