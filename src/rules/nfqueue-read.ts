// Reads the traced namespace's NFQUEUE queues, read-only: /proc/net/netfilter/nfnetlink_queue (a line per bound
// queue; per namespace, so read inside it) and, to name each listener, the namespace's /proc/net/netlink (its
// socket's inode by port id) and the open files of the process whose pid is that port id, else of every process
// (a listener in a container has another pid inside, or a process may choose its port id).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { native } from '../trace/native.js';
import { NETLINK_NETFILTER, parseNetlinkSockets, parseQueueProc, type QueueReading } from './nfqueue.js';

/** The process holding each socket inode, once found: a listener lives as long as its queue. */
const owners = new Map<number, { pid: number; comm: string } | null>();

function holds(pid: number, link: string): boolean {
  try {
    return readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === link;
      } catch {
        return false; // closed meanwhile
      }
    });
  } catch {
    return false; // no such process, or gone
  }
}

/** The process holding the netlink socket with this inode, looked for first at pid = its port id. */
function ownerOf(portid: number, inode: number): { pid: number; comm: string } | null {
  const known = owners.get(inode);
  if (known !== undefined) return known;
  const link = `socket:[${inode}]`;
  const pid = holds(portid, link)
    ? portid
    : readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .map(Number)
        .find((p) => p !== portid && holds(p, link));
  let owner: { pid: number; comm: string } | null = null;
  if (pid !== undefined) {
    try {
      owner = { pid, comm: readFileSync(`/proc/${pid}/comm`, 'utf8').trim() };
    } catch {
      owner = null; // it exited meanwhile
    }
  }
  if (owners.size > 1024) owners.clear();
  owners.set(inode, owner);
  return owner;
}

/** The queues bound in the namespace and who listens on each; null when the namespace cannot be entered. A
 *  missing file is no queue: nfnetlink_queue is not loaded, so no program can have bound one. */
export function readQueues(nsPath: string): QueueReading {
  let texts: string[];
  try {
    texts = native().readInNetns(nsPath, [
      '/proc/thread-self/net/netfilter/nfnetlink_queue',
      '/proc/thread-self/net/netlink',
    ]);
  } catch {
    return null;
  }
  const [queues = '', netlink = ''] = texts;
  const instances = parseQueueProc(queues);
  const inodes = instances.length ? parseNetlinkSockets(netlink, NETLINK_NETFILTER) : new Map<number, number>();
  return instances.map((q) => {
    const inode = inodes.get(q.portid);
    const owner = inode === undefined ? null : ownerOf(q.portid, inode);
    return { ...q, pid: owner?.pid ?? null, comm: owner?.comm ?? null };
  });
}
