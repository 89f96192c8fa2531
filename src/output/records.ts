// The NDJSON records pathtrace writes: the contract for scripts (docs/json.md), declared once. The
// writers (json.ts, merge.ts) return these types, so the compiler holds them to it; the readers (compare,
// merge, --netns twice, the tests) narrow an OutputRecord by its `type`. Fields are added, never renamed.
// An optional field (`?`) is left out of the line when it does not apply; `| null` ones are always written.
import type {
  DeviceHookDrop,
  Ending,
  Fate,
  Journey,
  Layer,
  ProgramVerdict,
  TcpStateSeen,
} from '../correlate/journey.js';
import type { HookName } from '../trace/kernel-names.js';
import type { NetfilterMechanism } from '../trace/native.js';
import type { RuleAttribution } from '../rules/attribute.js';
import type { QueueCause } from '../rules/nfqueue.js';
import type { Listener } from '../trace/listeners.js';

// ---- a trace (`pathtrace --json`) -----------------------------------------

/** The trace's filter: its options, and the expression as given with its classic BPF for raw IP. */
export interface FilterRecord {
  ports: number[] | null; // null: any port
  hosts: string[];
  protos: string[];
  netns: string | null;
  expression: { text: string; bpf: [code: number, jt: number, jf: number, k: number][] } | null;
}

/** First, once the probes are attached. */
export interface ReadyRecord {
  type: 'ready';
  netns: { name: string; inode: number };
  /** --container: the container traced (netns.name is its name too); its Kubernetes pod where a CRI one. */
  container?: { name: string; id: string; runtime: string; pod?: { namespace: string; name: string } };
  /** --pod: the Kubernetes pod traced (netns.name is NAMESPACE/NAME), its sandbox's id and its containers. */
  pod?: { namespace: string; name: string; id: string; containers: string[] };
  filter: FilterRecord;
  points: string[];
  netfilter_mechanism: NetfilterMechanism;
  netfilter: {
    family: 'ipv4' | 'ipv6';
    hook: HookName;
    entry_priority: number | null;
    exit_priority: number | null;
    between_priorities: number[];
    bracketed: boolean;
  }[];
  ruleset_changes?: 'notified' | 'polled';
  unavailable: { point: string; reason: string }[];
  started_at: string; // ISO 8601
  addresses: string[];
}

/** One point a packet passed. */
export interface StepRecord {
  point: string;
  hook?: HookName;
  at?: 'entry' | 'between' | 'exit' | 'chain';
  passed?: true;
  priority?: number;
  table?: string;
  bridge?: true;
  dev?: string;
  in_dev?: string;
  out_dev?: string;
  location?: string;
  reason?: string;
  qlen?: number;
  bytes?: number;
  pid?: number;
  comm?: string;
  program?: ProgramVerdict; // XDP and tc points: the program ({id, name}) and what it returned
  t_ns: number;
}

/** A packet's drop, with the rule behind a netfilter drop flattened in where it is known. */
export interface DropRecord extends Partial<RuleAttribution> {
  layer: Layer;
  hook: HookName | null;
  reason: string | null; // null on kernels whose kfree_skb reports none (< 5.17)
  location: string;
  explanation: string;
  advice: string[];
  inferred?: string; // the kernel named no reason: what told pathtrace the one given
  answered?: boolean;
  tcp_state?: TcpStateSeen;
  device?: DeviceHookDrop; // XDP and tc drops: the device hook, and the program or filter there
  rules_unread?: string; // netfilter drops named by no rule because the ruleset could not be read: what failed
  nfqueue?: NfqueueRecord; // a queue rule (NFQUEUE) sent it to a program's queue: its rule's drops only
  listening?: Listener[]; // TCP_LISTEN_OVERFLOW: the sockets listening on its port, and who holds them
  too_big?: TooBigRecord; // PKT_TOO_BIG: what refused it
}

/** A packet too big for its way out: the MTU that refused it, its size, the device and route, who was told. */
export interface TooBigRecord {
  size: number | null; // the length held against the MTU: its IP length (a GSO packet's: one segment's)
  mtu: number | null; // null: not read, or the one read would not have refused it
  mtu_source: 'icmp' | 'route' | 'device' | null; // the ICMP error sent with the drop, else read at the drop
  dev: string | null; // the device its route leads out of
  route: string | null; // the route lookup's answer for it (ip route get fibmatch), when reported
  route_differs?: true; // that lookup leads elsewhere than the kernel's route did (policy routing, a change)
  told: boolean; // this host sent the ICMP error (fragmentation needed / packet too big) for it
  resent_after_told: number; // TCP: ICMP errors sent for this same segment before it came again (a black hole)
}

/** A NAT rewrite of a packet: the hook, the tuple before and after, and who made it; the rule flattened in where
 *  one is named (or its candidates), as a drop's. */
export interface NatRecord extends Partial<RuleAttribution> {
  hook: HookName;
  from: { src: string; dst: string; sport: number; dport: number };
  to: { src: string; dst: string; sport: number; dport: number };
  packet: 'first' | 'later' | 'unknown'; // a connection's first packet (NAT rules see it), a later one, or either
  reply?: true; // the reply of a connection NAT'd in this trace
  by: 'rule' | 'conntrack' | 'unknown';
  why?: string; // why conntrack, or why no rule is named
}

/** A queue drop: the rule's queue, who listens there (/proc/net/netfilter/nfnetlink_queue after the drop). */
export interface NfqueueRecord {
  cause: QueueCause;
  queue: number; // the rule's queue (--queue-num), the first of its range (--queue-balance)
  queue_last: number; // the last of its range; queue for one
  bypass: boolean; // --queue-bypass (nft: bypass): the packet passes while no program listens
  fanout: boolean; // --queue-cpu-fanout: the CPU, not the flow, picks the queue in the range
  listeners: NfqueueListenerRecord[] | null; // bound queues of the range; null: they could not be read
  grew?: { queue: number; queue_dropped: number; user_dropped: number }; // queue-full, socket-full: the queue, and
  // how much its drop counters grew since the reading before the drop
}

/** One line of /proc/net/netfilter/nfnetlink_queue, with the process behind its netlink port. */
export interface NfqueueListenerRecord {
  queue: number;
  portid: number; // the listener's netlink port id
  pid: number | null; // the process holding that socket; null: not found (gone, or not visible)
  comm: string | null;
  queue_total: number; // packets waiting for its verdict
  copy_mode: number; // 0 none, 1 meta, 2 packet
  copy_range: number;
  queue_dropped: number; // dropped as the queue was full
  user_dropped: number; // dropped as its netlink socket was full
  id_sequence: number; // the last packet id given out
}

/** One packet's journey through the host. */
export interface PacketRecord {
  type: 'packet';
  id: number;
  time: string; // ISO 8601
  time_us: number; // µs since the epoch
  family: 'ipv4' | 'ipv6';
  proto: string; // tcp, udp, icmp, icmpv6, proto-N
  src: string;
  dst: string;
  sport: number | null; // null for ICMP
  dport: number | null;
  tcp_flags: string | null; // null if not TCP
  seq?: number; // TCP only
  ack?: number;
  len: number;
  ip_id?: number; // IPv4 only
  netns: number;
  direction: Journey['direction'];
  steps: StepRecord[];
  fate: Fate;
  drop: DropRecord | null;
  tcpdump: boolean;
  tcpdump_devices: string[];
  retransmit: number;
  tcp?: { saw: boolean | null; reply: string | null }; // saw null: nothing tells whether TCP got it
  ending: Ending;
  translated?: { src: string; dst: string; sport: number; dport: number };
  nat?: NatRecord[];
  route?: { decision: 'local' | 'forward' | 'bridge' | 'output'; in_dev?: string; out_dev?: string };
  delivery?: { socket: boolean | null; read: { pid: number; comm: string; bytes: number; queued_ns: number } | null };
  origin?: 'socket' | 'stack' | 'netfilter';
  icmp?: {
    type: number;
    code: number;
    about: { proto: string; src: string; dst: string; sport: number; dport: number } | null;
    mtu?: number; // fragmentation needed (IPv6: packet too big): the MTU it carries
  };
  neighbour_wait_ns?: number;
  qdisc_wait_ns?: number;
  incomplete?: true;
  merged_into?: number;
  segment_of?: number;
  segments?: number[];
  flow: string;
}

/** Something said while tracing (the ruleset changed; what --rule-trace added or cleaned up). */
export interface NoteRecord {
  type: 'note';
  time: string;
  message: string;
}

/** Each connection, at the end, before the summary. */
export interface ConnectionRecord {
  type: 'connection';
  flow: string;
  proto: string;
  a: string;
  b: string;
  packets: number[];
  tcp_states: string[];
  sockets: Record<string, string[]>;
  process: { pid: number; comm: string } | null;
  retransmissions: number;
  verdict: string;
}

/** Like packets of a connection: same direction, kind, fate, drop and origin. */
export interface PacketGroupRecord {
  direction: Journey['direction'];
  kind: string;
  fate: Fate;
  hook: string | null;
  reason: string | null;
  location: string | null;
  origin: PacketRecord['origin'] | null;
  count: number;
  tcpdump: number;
  tcp_saw: number;
  replies: Record<string, number>;
  retransmits: number;
  bytes: number;
  read: number;
}

/** A cause of drops: the first such drop's fields (its rule flat, as in a packet's drop; not the packet's own
 *  advice and TCP state), and how many. */
export interface SummaryDropRecord extends Omit<DropRecord, 'advice' | 'tcp_state'> {
  count: number;
  /** @deprecated the rule's fields nested, as summaries wrote them first; the same are flat beside it. */
  attribution?: RuleAttribution;
}

/** Last. */
export interface SummaryRecord {
  type: 'summary';
  packets: number;
  dropped: number;
  delivered: number;
  sent: number;
  forwarded: number;
  unfinished: number;
  lost_events: number;
  cut_by_timeout: number;
  incomplete: number;
  evicted_connections: number;
  events: number;
  duration_s: number;
  stopped_by: string;
  output_skipped: number;
  /** By cause and hook. */
  drops: SummaryDropRecord[];
  flows: {
    flow: string;
    proto: string;
    a: string;
    b: string;
    packets: number;
    groups: PacketGroupRecord[];
    verdict: string;
    process: { pid: number; comm: string } | null;
    tcp_states: string[];
    synack_retransmits: number;
    retransmits: number;
    resets_sent: number;
    resets_received: number;
  }[];
  counters: Record<string, number> | null;
  unavailable: { point: string; reason: string }[];
}

export type TraceRecord = ReadyRecord | PacketRecord | NoteRecord | ConnectionRecord | SummaryRecord;

/** --netns twice with --json: each child's records as they come, tagged by its namespace. */
export type HostRecord = { host: string } & TraceRecord;

// ---- a merge (`pathtrace merge --json`, and --netns twice at its end) ------

/** First: how far apart the two clocks are. */
export interface ClockRecord {
  type: 'clock';
  hosts: [string, string];
  offset_us: number | null;
  uncertainty_us: number | null;
  lower_us: number | null;
  upper_us: number | null;
  pairs: number;
  inconsistent: boolean;
}

export type PathVerdict =
  | 'delivered' // reached the receiver's device, and the receiver's stack took it
  | 'arrived' // reached the receiver's device; then forwarded, sent on, or still under way
  | 'dropped-at-receiver' // reached the receiver's device, dropped there (its drop says where)
  | 'lost-on-path' // left the sender's device, never reached the receiver's
  | 'dropped-at-sender' // never left the sender (its drop says where)
  | 'not-sent' // the sender's trace does not show it leaving (still under way, or no device step)
  | 'receiver-blind' // left the sender; the receiver was not tracing then, or its filter leaves it out
  | 'sender-unseen'; // reached the receiver; the sender's trace has no such packet

/** One end of a trip: the packet as that host's trace has it; at_us on the first host's clock. */
export interface TripSide {
  host: string;
  id: number;
  fate: Fate;
  drop: DropRecord | null;
  at_us: number | null;
}

/** One packet's trip from one host to the other. */
export interface TripRecord {
  type: 'trip';
  flow: string;
  from: string;
  to: string;
  path: PathVerdict;
  proto: string;
  src: string;
  dst: string;
  sport: number | null;
  dport: number | null;
  tcp_flags: string | null;
  seq?: number;
  ack?: number;
  len: number;
  /** The tuple it left the sender with, where the sender's NAT rewrote it (a router's DNAT or SNAT). */
  translated?: { src: string; dst: string; sport: number; dport: number };
  sent: TripSide | null;
  received: TripSide | null;
}

/** After its trips: a connection's merge verdict. Shares its type with the trace's connection record. */
export interface MergeConnectionRecord {
  type: 'connection';
  flow: string;
  verdict: string;
  trips: number;
}

/** Last: trips by path verdict; packets each host sent to addresses the other does not have, by host. */
export interface MergeSummaryRecord {
  type: 'merge_summary';
  hosts: [string, string];
  paths: Partial<Record<PathVerdict, number>>;
  elsewhere: Record<string, number>;
}

export type MergeRecord = ClockRecord | TripRecord | MergeConnectionRecord | MergeSummaryRecord;

/** Any line pathtrace writes. A trace's and a merge's `connection` differ: read them from their own output. */
export type OutputRecord = TraceRecord | MergeRecord;
