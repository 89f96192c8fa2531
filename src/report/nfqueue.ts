// What a drop by the NFQUEUE machinery means, in words, and what to do about it: from where the kernel freed the
// packet and, where the rule is known, its queue, who listens there and what the queue's counters did
// (rules/nfqueue.ts). Pure.
import type { RuleAttribution } from '../rules/attribute.js';
import type { QueueTarget } from '../rules/model.js';
import { nfqueueFree, type NfqueueFacts, type QueueListener } from '../rules/nfqueue.js';

/** "queue 0", "queues 2-3". */
export function queueName(t: QueueTarget): string {
  return t.first === t.last ? `queue ${t.first}` : `queues ${t.first}-${t.last}`;
}

/** "suricata[812]"; the netlink port where no process is known to hold it. */
export function listenerName(l: Pick<QueueListener, 'pid' | 'comm' | 'portid'>): string {
  return l.pid !== null && l.comm !== null ? `${l.comm}[${l.pid}]` : `netlink port ${l.portid}`;
}

const names = (ls: QueueListener[]) => ls.map(listenerName).join(', ');

/** The rule's queues no program listens on: "queue 0", "queue 3 of queues 2-3". */
function unboundName(f: NfqueueFacts): string {
  const t = f.target;
  const bound = new Set((f.listeners ?? []).map((l) => l.queue));
  if (!bound.size || t.last - t.first > 15) return queueName(t);
  const free: number[] = [];
  for (let q = t.first; q <= t.last; q++) if (!bound.has(q)) free.push(q);
  return `${free.length === 1 ? 'queue' : 'queues'} ${free.join(', ')} of ${queueName(t)}`;
}

/** Where the queue machinery freed a drop, as far as its reason agrees: it names none (NOT_SPECIFIED, none at all
 *  before 5.17), or, in newer kernels' nfqueue, NETFILTER_DROP for a flushed queue. */
function queueFree(d: { reason: string | null; location: string }) {
  return d.reason === null || d.reason === 'NOT_SPECIFIED' || d.reason === 'NETFILTER_DROP'
    ? nfqueueFree(d.location)
    : null;
}

/** A drop of the queue machinery in one sentence; undefined for a drop elsewhere. */
export function explainQueueDrop(d: {
  reason: string | null;
  location: string;
  nfqueue?: NfqueueFacts;
}): string | undefined {
  const free = queueFree(d);
  const f = d.nfqueue;
  const at = `(${d.location})`;
  if (!f) {
    if (free === 'unqueued')
      return `a queue rule (NFQUEUE) sent it to a program's queue that could not take it ${at}: no program listening there, the queue full, or no memory`;
    if (free === 'after-queue')
      return `a queue rule (NFQUEUE) sent it to a program, and it was dropped after ${at}: the program's drop verdict, its queue flushed as it went away, or a rule after the queue`;
    return undefined;
  }
  const q = queueName(f.target);
  const ls = f.listeners ?? [];
  // The listener of the queue that overflowed.
  const full = ls.filter((l) => l.queue === f.grew?.queue);
  switch (f.cause) {
    case 'no-listener':
      return `an NFQUEUE rule sent it to ${q}, ${f.target.first === f.target.last ? 'where no program listens' : `and no program listens on ${unboundName(f)}`}: the kernel drops what it cannot queue unless the rule says bypass (--queue-bypass) ${at}`;
    case 'queue-full':
      return `an NFQUEUE rule sent it to ${q}, whose queue was full: ${names(full)} gives verdicts too slowly, and the kernel drops what overflows unless the listener asked for fail-open ${at}`;
    case 'socket-full':
      return `an NFQUEUE rule sent it to ${q}, and the netlink socket of ${names(full)} was full: it reads too slowly, and the kernel drops what it cannot hand over unless the listener asked for fail-open ${at}`;
    case 'not-queued':
      return `an NFQUEUE rule sent it to ${q}, which could not take it ${at}, and neither a missing listener nor the queue's counters say why${ls.length ? ` (${names(ls)} listens there now)` : ''}`;
    case 'drop-verdict':
      return `the program listening on ${q} (${names(ls)}) returned a drop verdict for it ${at}`;
    case 'listener-gone':
      return `it waited in ${q} for a verdict, and no program listens there now: its listener went away with the packet waiting, which the kernel then drops (unless it gave a drop verdict before it went) ${at}`;
    case 'after-queue':
      return `it waited in ${q} for a verdict and was dropped after ${at}: the listener's drop verdict, or its queue flushed as it went away`;
  }
}

/** The command that gives an iptables queue rule --queue-bypass, from its own text ("iptables -A INPUT ..."). */
function bypassCommand(a: Partial<RuleAttribution> | undefined, prefix: string): string | undefined {
  const r = a?.rule;
  if (!a || !r || a.source === 'nft') return undefined;
  const m = /^(\S+(?: -t \S+)?) -A (\S+) (.*)$/.exec(r.text);
  return m ? `${prefix}${m[1]} -R ${m[2]} ${r.position} ${m[3]} --queue-bypass` : undefined;
}

/** What to run or change next for a drop of the queue machinery; undefined for a drop elsewhere. */
export function queueAdvice(
  d: { reason: string | null; location: string; nfqueue?: NfqueueFacts; attribution?: Partial<RuleAttribution> },
  prefix: string,
): string[] | undefined {
  if (!queueFree(d)) return undefined;
  const proc = `${prefix}cat /proc/net/netfilter/nfnetlink_queue (a line per queue a program listens on: queue, port id, waiting, copy mode, copy range, dropped when full, dropped by the socket)`;
  const f = d.nfqueue;
  if (!f) return [proc];
  const q = queueName(f.target);
  const ls = f.listeners ?? [];
  // Only where the rule has no bypass yet: never advise what is on.
  const bypass = f.target.bypass
    ? []
    : [
        bypassCommand(d.attribution, prefix) ??
          `add bypass to the rule's queue (iptables --queue-bypass; nft: queue flags bypass to ${f.target.first})`,
      ].map((c) => `${c} (fail-open: packets pass while no program listens)`);
  switch (f.cause) {
    case 'no-listener':
      return [`start the program that reads ${q} (an IPS such as suricata -q ${f.target.first})`, ...bypass, proc];
    case 'listener-gone':
      return [`start the program that reads ${q} again`, ...bypass, proc];
    case 'queue-full':
    case 'socket-full':
      return [
        `${names(ls.filter((l) => l.queue === f.grew?.queue))} answers too slowly: more queues and threads (--queue-balance), a longer queue (its queue maxlen), ${f.cause === 'socket-full' ? 'a larger socket buffer (net.core.rmem_max), ' : ''}or fail-open in the program (it accepts what overflows)`,
        proc,
      ];
    case 'drop-verdict':
      return [
        `${names(ls)}'s own log says why it dropped it (suricata: its drop events in eve.json)`,
        ...ls.filter((l) => l.pid !== null).map((l) => `ps -o pid,comm,args -p ${l.pid}`),
        proc,
      ];
    default:
      return [proc];
  }
}

const COPY_MODES = ['none', 'meta', 'packet'];

/** The queue facts in one line: "queue 0: suricata[812] listens (netlink port 812) · 3 waiting · ... · bypass
 *  off". */
export function queueFactsLine(f: NfqueueFacts): string {
  const bypass = `bypass ${f.target.bypass ? 'on' : 'off'}${f.target.fanout ? ' · cpu fanout' : ''}`;
  if (f.listeners === null) return `${queueName(f.target)}: its listeners could not be read · ${bypass}`;
  if (!f.listeners.length) return `${queueName(f.target)}: no program listens · ${bypass}`;
  // The counters that grew since the reading before the drop: of the queue that took the blame.
  const grew = (l: QueueListener, n: number) => (f.grew?.queue === l.queue && n > 0 ? ` (+${n})` : '');
  const each = f.listeners.map(
    (l) =>
      `queue ${l.queue}: ${listenerName(l)} listens${l.pid !== null ? ` (netlink port ${l.portid})` : ''} · ${l.total} waiting · copies ${COPY_MODES[l.copyMode] ?? l.copyMode}${l.copyMode === 2 ? ` up to ${l.copyRange} B` : ''} · ${l.dropped} dropped when full${grew(l, f.grew?.dropped ?? 0)} · ${l.userDropped} dropped by its socket${grew(l, f.grew?.userDropped ?? 0)}`,
  );
  return `${each.join('; ')} · ${bypass}`;
}

/** A few words for a list of packets: "queue 0: no listener". */
export function queueTag(f: NfqueueFacts): string {
  const words: Record<NfqueueFacts['cause'], string> = {
    'no-listener': 'no listener',
    'queue-full': 'queue full',
    'socket-full': 'listener socket full',
    'not-queued': 'not queued',
    'drop-verdict': 'drop verdict',
    'listener-gone': 'listener gone',
    'after-queue': 'dropped after queueing',
  };
  return `${queueName(f.target)}: ${words[f.cause]}`;
}
