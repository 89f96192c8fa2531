// NFQUEUE: a queue rule hands packets to a program (an IPS such as suricata) through nfnetlink_queue, and the
// kernel frees a packet it could not queue, or one the program answered with a drop verdict, in places of
// their own. What those places mean, the queues' state as /proc/net/netfilter/nfnetlink_queue shows it, and
// what they tell of one drop together. Pure.
import type { QueueTarget } from './model.js';

/**
 * Where the kernel freed a queued (or to-be-queued) packet, from the freeing function:
 * - 'unqueued': nf_queue, when __nf_queue failed: no program listens on the queue (-ESRCH, and the rule has no
 *   bypass), the queue is full, the listener's socket is full, or no memory. kfree_skb, NOT_SPECIFIED (no
 *   reason before 5.17) on 5.10, 6.1 and 6.18 alike.
 * - 'after-queue': after it waited in the queue: nf_reinject's verdict NF_DROP, which is the listener's drop
 *   verdict, or the queue flushed when its listener went away (nfqnl_flush drops what waits), or a reroute or
 *   conntrack failure. nf_reinject is nf_queue.c's up to 6.8 (5.10, 6.1), nfnetlink_queue.c's from 6.9 on, where
 *   it is inlined into nfqnl_reinject (6.18: a flushed queue's packets freed there too); kfree_skb,
 *   NOT_SPECIFIED. A 2025 netfilter patch frees a flushed queue's packets in nfqnl_flush, with NETFILTER_DROP.
 * null: any other place. nfqnl_enqueue_packet's own free is left out: it frees a GSO packet whose segments it
 * queued (they go on as packets of their own).
 */
export type NfqueueFree = 'unqueued' | 'after-queue';

export function nfqueueFree(location: string): NfqueueFree | null {
  if (location === 'nf_queue') return 'unqueued';
  if (
    /^(nf_reinject|nfqnl_(reinject|flush|recv_verdict|recv_verdict_batch|nf_hook_drop|rcv_dev_event|rcv_nl_event)|instance_destroy(_rcu)?)$/.test(
      location,
    )
  )
    return 'after-queue';
  return null;
}

/** One bound queue: a line of /proc/net/netfilter/nfnetlink_queue (net/netfilter/nfnetlink_queue.c, seq_show). */
export interface QueueInstance {
  queue: number;
  /** The listener's netlink port id: the pid of the process that bound it, unless it chose another. */
  portid: number;
  /** Packets waiting for its verdict. */
  total: number;
  /** 0 none, 1 meta, 2 packet (NFQNL_COPY_*), and how many bytes of a packet it copies. */
  copyMode: number;
  copyRange: number;
  /** Packets dropped because the queue was full (queue_maxlen), and because the listener's socket was. */
  dropped: number;
  userDropped: number;
  /** The last packet id given out. */
  idSequence: number;
}

/** The listener of a queue, as far as the namespace's netlink sockets and /proc name it. */
export interface QueueListener extends QueueInstance {
  pid: number | null;
  comm: string | null;
}

/** The namespace's bound queues at one reading; null where the files could not be read. */
export type QueueReading = QueueListener[] | null;

export function parseQueueProc(text: string): QueueInstance[] {
  const out: QueueInstance[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length < 8 || f.some((x) => !Number.isInteger(x))) continue;
    const [queue, portid, total, copyMode, copyRange, dropped, userDropped, idSequence] = f as [
      number,
      number,
      number,
      number,
      number,
      number,
      number,
      number,
    ];
    out.push({ queue, portid, total, copyMode, copyRange, dropped, userDropped, idSequence });
  }
  return out;
}

/** NETLINK_NETFILTER, the protocol of nfnetlink's sockets. */
export const NETLINK_NETFILTER = 12;

/** Socket inodes by netlink port id, for one protocol, from /proc/net/netlink
 *  ("sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode"). */
export function parseNetlinkSockets(text: string, protocol: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || Number(f[1]) !== protocol) continue;
    out.set(Number(f[2]), Number(f[9]));
  }
  return out;
}

/** What a queue drop amounts to:
 * - no-listener: no program listens on the rule's queue (on one of them, for a range);
 * - queue-full: the listener's queue overflowed (queue_dropped grew): it gives verdicts too slowly;
 * - socket-full: the listener's netlink socket overflowed (user_dropped grew): it reads too slowly;
 * - not-queued: the queue could not take it, and neither a missing listener nor its counters say why;
 * - drop-verdict: it waited in the queue, and the program listening there answered with a drop verdict;
 * - listener-gone: it waited in the queue, and no program listens there now: its listener went away with the
 *   packet waiting (the kernel drops what is left), unless it gave a drop verdict first;
 * - after-queue: it waited in the queue, and the queues could not be read since. */
export type QueueCause =
  'no-listener' | 'queue-full' | 'socket-full' | 'not-queued' | 'drop-verdict' | 'listener-gone' | 'after-queue';

export interface NfqueueFacts {
  cause: QueueCause;
  /** The rule's target: its queue (first = last) or range, its bypass flag. */
  target: QueueTarget;
  /** The programs listening on the rule's queues after the drop; null where the queues could not be read. */
  listeners: QueueListener[] | null;
  /** The queue that overflowed, and how much its drop counters grew since the reading before the drop. */
  grew?: { queue: number; dropped: number; userDropped: number };
}

const inRange = (t: QueueTarget, q: number) => q >= t.first && q <= t.last;

/** The facts of one queue drop: where it was freed, the rule's target, the queues before and after it. */
export function queueFacts(
  free: NfqueueFree,
  target: QueueTarget,
  before: QueueReading,
  after: QueueReading,
): NfqueueFacts {
  const listeners = after && after.filter((l) => inRange(target, l.queue));
  const base: Omit<NfqueueFacts, 'cause'> = { target, listeners };
  if (!listeners) return { ...base, cause: free === 'unqueued' ? 'not-queued' : 'after-queue' };
  if (free === 'after-queue') return { ...base, cause: listeners.length ? 'drop-verdict' : 'listener-gone' };
  // The same listener's counters, then and now: a queue that overflowed since says so.
  for (const l of listeners) {
    const then = before?.find((b) => b.queue === l.queue && b.portid === l.portid);
    if (!then) continue;
    const grew = { queue: l.queue, dropped: l.dropped - then.dropped, userDropped: l.userDropped - then.userDropped };
    if (grew.dropped > 0) return { ...base, cause: 'queue-full', grew };
    if (grew.userDropped > 0) return { ...base, cause: 'socket-full', grew };
  }
  // With bypass, a queue nobody listens on lets the packet pass: it cannot have been dropped for that.
  const unbound = target.last - target.first + 1 > listeners.length;
  return { ...base, cause: unbound && !target.bypass ? 'no-listener' : 'not-queued' };
}
