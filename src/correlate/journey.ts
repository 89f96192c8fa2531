// What the correlator produces: one packet's journey through this host.
import type { PacketBytes } from '../trace/record.js';
import type { RuleAttribution } from '../rules/attribute.js';
import type { NfqueueFacts } from '../rules/nfqueue.js';
import type { HookName } from '../trace/kernel-names.js';
import type { Listener } from '../trace/listeners.js';

/** The layer that freed a dropped packet (classify.ts tells it). */
export type Layer =
  'xdp' | 'tc' | 'netfilter' | 'ip' | 'tcp' | 'udp' | 'icmp' | 'socket' | 'device' | 'qdisc' | 'neighbour' | 'kernel';

/** Layers a packet coming in meets before its transport layer: a drop there means TCP or UDP never had it. */
export const BELOW_TRANSPORT: ReadonlySet<Layer> = new Set([
  'xdp',
  'tc',
  'device',
  'qdisc',
  'neighbour',
  'ip',
  'netfilter',
]);

export type Fate = 'delivered' | 'sent' | 'forwarded' | 'dropped' | 'unfinished';

/** How the journey's observation ended. */
export type Ending =
  | 'freed' // a kfree_skb / consume_skb closed it
  | 'read' // the application read it from its socket
  | 'left' // handed to a device (or to the local stack) and not seen again
  | 'merged' // GRO merged it into another packet at the device
  | 'segmented' // GSO cut it into segments, which went on as their own journeys
  | 'timeout' // no event for too long, in the middle of the path
  | 'trace-ended' // the trace stopped while it was under way
  | 'verdict'; // its XDP program's verdict dropped it and no free followed (a driver recycles its buffer)

export interface Step {
  point: string; // tracepoint name, or "netfilter"
  hook?: HookName; // netfilter steps
  at?: 'entry' | 'between' | 'exit' | 'chain'; // netfilter steps: which probe (between: between two chains;
  // chain: a table's chain returned the drop, seen by a trampoline)
  table?: string; // chain steps: the table's name (at most 15 characters)
  passed?: true; // an entry step where it is the hook's only probe (no chains in the
  // family): it passed the hook
  t: number; // ns since the trace started
  ifindex?: number; // device of RX/TX/qdisc steps
  in?: number; // netfilter steps: in and out devices (ifindex), when set
  out?: number;
  location?: string; // kfree/consume: the freeing function
  reason?: string; // kfree_skb: the drop reason
  priority?: number; // netfilter steps: the probe's priority
  qlen?: number; // qdisc steps: queue length
  bytes?: number; // skb_copy_datagram_iovec: bytes the application read
  pid?: number; // skb_copy_datagram_iovec: the reader
  comm?: string;
  bridge?: true; // netfilter steps: br_netfilter's pass for a frame on a bridge port
  // (bridge-nf-call-iptables); in/out then name the bridge device
  program?: ProgramVerdict; // XDP and tc points: the program and what it returned
}

export interface Tuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

/** For packets delivered to this host: the socket and the application's read. */
export interface Delivery {
  /** The transport layer found a socket (false: NO_SOCKET; null: cannot tell). */
  socket: boolean | null;
  /** The application's first read of it, with how long it sat in the socket queue. */
  read: { pid: number; comm: string; bytes: number; queuedNs: number } | null;
}

/** Device names by ifindex, as the session resolved them in the traced namespace. */
export interface DeviceNames {
  name(ifindex: number): string;
}

export interface Drop {
  layer: Layer;
  hook: HookName | null;
  /** The kernel's drop reason; null where it reports none (Linux < 5.17). */
  reason: string | null;
  location: string;
  /** Set when the kernel named no drop reason and pathtrace named it from what it did: what told (a SYN the
   *  listener consumed without answering; the one answer that only one path of the kernel sends). */
  inferred?: string;
  /** Netfilter drops: whether this host began an answer (RST, ICMP error) for the flow while the packet was in
   *  the hook that dropped it, as a REJECT does; false for a silent drop. */
  answered?: boolean;
  /** Netfilter drops: the table, chain and rule, as far as the evidence goes. */
  attribution?: RuleAttribution;
  /** Netfilter drops with no rule named because the ruleset could not be read: what failed. */
  rulesUnread?: string;
  /** XDP and tc drops: the device hook, and the program or filter there that dropped it. */
  device?: DeviceHookDrop;
  /** XDP and tc drops: what the program that dropped it returned, as the correlator saw it (its verdict's step);
   *  the session names it in device. */
  told?: ProgramVerdict;
  /** TCP_LISTEN_OVERFLOW: the listening sockets on its port and who holds them, when it was reported. */
  listening?: Listener[];
  /** Drops of a packet a queue rule (NFQUEUE) sent to a program: its queue, who listens there, what happened. */
  nfqueue?: NfqueueFacts;
  /** Commands that show the cause, with this packet's values (reasons.ts), set when it is reported. */
  advice?: string[];
  /** TCP drops whose meaning depends on the connection's state (reasons.ts, TCP_STATE_REASONS): the state of
   *  the socket the packet came to, as pathtrace saw it change. */
  tcpState?: TcpStateSeen;
  /** PKT_TOO_BIG (named, or told by the ICMP error sent with it): what refused it, as the kernel had it. */
  tooBig?: TooBig;
}

/** A packet too big for its way out: its size, the MTU, the device and the route, and who was told. */
export interface TooBig {
  /** The length the MTU was held against: its IP length (a GSO packet's: one segment's); null: not read. */
  size: number | null;
  /** The MTU that refused it; null where none was read, or the one read would not have refused it. */
  mtu: number | null;
  /** Where mtu comes from: the ICMP error this host sent with the drop (the kernel's own number), or, read at the
   *  drop, its route's MTU metric or its out device's MTU. */
  mtuFrom: 'icmp' | 'route' | 'device' | null;
  /** The MTU metric of its route, read at the drop where it gave the MTU (null: the device's did). */
  routeMtu: number | null;
  /** The device its route leads out of (ifindex; 0: not read). */
  outDev: number;
  /** That device's name, set by the session when the drop is reported. */
  dev?: string;
  /** The route lookup's answer for its destination (`ip route get fibmatch`), read by the session when the drop is
   *  reported; null: none could be read (or too many were under way). */
  route?: string | null;
  /** The lookup led elsewhere than the kernel's route at the drop (another device, or no MTU where the route's
   *  metric gave it): policy routing, or a route changed since. */
  routeDiffers?: true;
  /** This host sent ICMP fragmentation needed (IPv6: packet too big) for it, to its sender (to itself for a
   *  packet it sent): seen leaving while the packet was in the stack. */
  told: boolean;
  /** A TCP segment this host had refused before and told the sender about, sent again the same: the number of
   *  ICMP errors sent for it before (0: none), a path MTU black hole. */
  resentAfterTold: number;
}

/** An XDP or tc drop: the device hook it died in, and what there dropped it, as far as the evidence goes. */
export interface DeviceHookDrop {
  hook: 'xdp' | 'tc';
  dev: string;
  direction: 'ingress' | 'egress';
  /** The program or filter that dropped it; null when none can be named (candidates, or nothing attached now). */
  program: DeviceProgram | null;
  /** Several programs or filters there can drop: each of them. */
  candidates?: string[];
  /** Why what is attached there could not be read in full (tc missing or failing). */
  unread?: string;
}

/** What an XDP or tc program returned for a packet, in its own words: its verdict seen as it returned (an fexit
 *  program on it, where the kernel has BPF trampolines), or the kernel's report of its failure (the tracepoints
 *  xdp_exception and xdp_redirect_err). */
export interface ProgramVerdict {
  id: number;
  /** Its name (bpf_prog_info's, 15 characters at most); '' where the record had no room for it (ICMP errors). */
  name: string;
  /** XDP_ABORTED, XDP_DROP, XDP_TX, XDP_REDIRECT, "XDP action N" (not an action), TC_ACT_SHOT. */
  verdict: string;
  /** tc: the hook's direction. */
  direction?: 'ingress' | 'egress';
  /** XDP_REDIRECT: the kernel's error for the redirect that failed (a negative errno). */
  error?: number;
}

/** The program or filter that dropped a packet at a device hook. */
export interface DeviceProgram {
  /** xdp: generic, native or offload; tc: tcx, or a classic filter's kind and preference. */
  mode: string;
  /** The BPF program's name, else the filter as tc shows it. */
  name: string;
  id?: number;
  tag?: string;
  /** How it is known: 'verdict', its own return value seen as it returned (BPF trampolines) or reported by the
   *  kernel (xdp_exception, xdp_redirect_err); 'only', the only one attached there that can drop. */
  found: 'verdict' | 'only';
  /** found 'verdict': the value it returned (XDP_DROP, XDP_ABORTED, XDP_TX, XDP_REDIRECT, TC_ACT_SHOT). */
  verdict?: string;
  /** A failed XDP_REDIRECT: the kernel's error (ENETDOWN, EINVAL...). */
  error?: string;
  /** Classic tc filters: the command that removes it. */
  remove?: string;
}

/** A local TCP socket's state around a packet it got, from the state changes pathtrace saw (the tracepoint
 *  sock:inet_sock_set_state, which reports neither TIME_WAIT nor request sockets). */
export interface TcpStateSeen {
  /** Its state when the packet reached TCP; null when no change of that socket was seen since tracing began. */
  state: string | null;
  /** The state it had come from (FIN_WAIT2 in FIN_WAIT2>CLOSE); null when not seen. */
  from: string | null;
  /** The states it went to after the packet reached TCP and before the drop: mostly the packet's own doing
   *  (the reset it caused), or the application's (a close() while the packet waited in the socket's backlog). */
  then: string[];
}

/** One rewrite of a packet's addresses or ports by NAT, as its netfilter steps show it: the hook, and the probes'
 *  priorities between which it happened. */
export interface NatRewrite {
  hook: HookName;
  after: number;
  before: number;
  /** When the new tuple was first seen, and the devices of that step. */
  t: number;
  in?: number;
  out?: number;
  from: Tuple;
  to: Tuple;
  /** What NAT rules saw: they see a connection's first packet only, conntrack rewrites the later ones alike.
   *  first: a first SYN; later: a later packet of the connection (or its reply); unknown: could be either (a
   *  datagram, a retransmitted SYN whose first copy may have died before conntrack kept it). */
  packet: 'first' | 'later' | 'unknown';
  /** The reply direction of a connection NAT'd in this trace: conntrack undoes the first packet's rewrite. */
  reply?: true;
  /** Who rewrote it: a rule (named in `rule`, or its candidates), conntrack, or not known; unset until told. */
  by?: 'rule' | 'conntrack' | 'unknown';
  rule?: RuleAttribution;
  /** Why it was conntrack, or why no rule is named. */
  why?: string;
}

export interface Journey {
  id: number;
  netns: number;
  family: 4 | 6;
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  flags: number;
  seq: number;
  ack: number;
  len: number;
  ipId: number;
  start: number;
  steps: Step[];
  direction: 'in' | 'out' | 'forward';
  fate: Fate;
  drop: Drop | null;
  ending: Ending;
  /** Passed a point where tcpdump on its device would have captured it. */
  tcpdump: boolean;
  /** Devices whose tcpdump tap it passed (ifindex). */
  tcpdumpDevices: number[];
  /** 0 for the first copy of a TCP segment, n for its n-th retransmission. */
  retransmit: number;
  /** For incoming TCP: did TCP get it (true: a TCP point saw it, its free in TCP, a reset or a read; false: it
   *  died before TCP; null: nothing tells, as for an ACK that left LOCAL_IN and was freed silently), and what
   *  TCP answered (SYNs). */
  tcp?: { saw: boolean | null; reply: string | null };
  /** Key of the flow (connection) it belongs to. */
  flow: string;
  /** The tuple after NAT, when a hook rewrote it. */
  translated?: Tuple;
  /** Each rewrite NAT made of it, in order (DNAT in PRE_ROUTING, then SNAT in POST_ROUTING...). */
  nat?: NatRewrite[];
  /** Routing decision: delivered here, forwarded, or sent by this host; and the devices. */
  /** bridge: sent on without IP routing, from the port it arrived on to another (a bridge; or tc redirect). */
  route?: { decision: 'local' | 'forward' | 'bridge' | 'output'; inDev?: number; outDev?: number };
  delivery?: Delivery;
  /** Who made a packet this host sent: an application socket, the kernel's own
   *  answer (TCP RST for no socket, ICMP error), or a netfilter REJECT rule. */
  origin?: 'socket' | 'stack' | 'netfilter';
  /** ICMP errors: the packet they are about (its ports are sport/dport); mtu: the MTU a fragmentation needed
   *  (IPv6: packet too big) carries, when it has one. */
  icmp?: { type: number; code: number; about: { proto: number; dst: string } | null; mtu?: number };
  /** Time between routing and the device queue: neighbour resolution. */
  neighbourWaitNs?: number;
  /** Time spent in a qdisc queue. */
  qdiscWaitNs?: number;
  /** GRO merged this segment into the packet with this id: it shares that packet's fate. */
  mergedInto?: number;
  /** GSO: this wire segment was cut from the packet with this id. */
  segmentOf?: number;
  /** GSO: the ids of the segments this packet was cut into. */
  segments?: number[];
  /** --write: the packet's bytes as pathtrace first saw them (from the IP header). */
  bytes?: PacketBytes;
  /** Events were lost (ring buffer full) while it was under way: its steps may be missing some. */
  incomplete?: true;
}

export const TCP_FLAG_LETTERS = 'FSRPAUEC';

/** TCP flags as letters in header bit order: S, SA, FPA, RA... */
/** Built once: this is asked for every TCP packet reported. */
const FLAG_LETTERS = Array.from({ length: 256 }, (_, flags) => {
  let s = '';
  for (let i = 0; i < 8; i++) if (flags & (1 << i)) s += TCP_FLAG_LETTERS[i];
  return s;
});

export function flagLetters(flags: number): string {
  return FLAG_LETTERS[flags & 0xff]!;
}

/** The TCP header's flag bits, in TCP_FLAG_LETTERS' order. */
export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10, URG: 0x20, ECE: 0x40, CWR: 0x80 } as const;

/** A millisecond in the events' and journeys' time unit (ns). */
export const MS = 1_000_000;
