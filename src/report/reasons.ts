// The kernel's drop reasons in words (explainDrop), the advice for each drop (dropAdvice), and TCP's states and a
// too-big drop told. The table of the reasons themselves (their layer and meaning) is correlate/drop-reasons.ts. Pure.
import type { DeviceHookDrop, Layer, TcpStateSeen, TooBig } from '../correlate/journey.js';
import type { NfqueueFacts } from '../rules/nfqueue.js';
import type { RuleAttribution } from '../rules/attribute.js';
import { explainQueueDrop, queueAdvice } from './nfqueue.js';
import type { Listener } from '../trace/listeners.js';
import { reasonText, TCP_STATE_REASONS, tooBigWhere } from '../correlate/drop-reasons.js';

/** What a layer's freeing function did, where the kernel names no reason (before 5.17, or NOT_SPECIFIED). */
const BY_LAYER: Record<Layer, string> = {
  xdp: 'the XDP program on the device it came in on dropped it (or failed to send it on), before the kernel stack and before tcpdump',
  tc: 'a tc filter or program on its device dropped it',
  netfilter: 'a netfilter rule (iptables or nftables) dropped it',
  tcp: 'TCP refused it',
  udp: 'UDP refused it',
  icmp: 'ICMP refused it',
  socket: 'its socket refused it',
  ip: 'IP refused it (its header, its addresses or no route)',
  neighbour: "its next hop's link-layer address could not be resolved, or too many packets were waiting for it",
  qdisc: "its device's queueing discipline dropped it",
  device: 'its device dropped it',
  kernel: 'the kernel freed it',
};

/** States past the handshake's first SYN, where TCP checks a segment's sequence number, ACK and flags
 *  (tcp_validate_incoming, RFC 793's "synchronized" states). */
const SYNCHRONIZED = new Set([
  'SYN_RECV',
  'ESTABLISHED',
  'FIN_WAIT1',
  'FIN_WAIT2',
  'CLOSE_WAIT',
  'CLOSING',
  'LAST_ACK',
]);

/** What each state meant for the socket (include/net/tcp_states.h). */
const STATE_WORDS: Record<string, string> = {
  ESTABLISHED: 'its connection was ESTABLISHED',
  SYN_SENT: 'its socket was in SYN_SENT (connect() waiting for the SYN-ACK)',
  SYN_RECV: "its socket was in SYN_RECV (waiting for the handshake's last ACK)",
  FIN_WAIT1: 'its socket was in FIN_WAIT1 (this side had closed, its FIN not yet acknowledged)',
  FIN_WAIT2: 'its socket was in FIN_WAIT2 (this side had closed and the peer had acknowledged its FIN)',
  CLOSE_WAIT: "its socket was in CLOSE_WAIT (the peer had closed its side, this side's application not yet)",
  CLOSING: 'its socket was in CLOSING (both sides had sent a FIN at once)',
  LAST_ACK: 'its socket was in LAST_ACK (both sides had closed; it waited for the ACK of its FIN)',
  LISTEN: 'it came to a listening socket (LISTEN)',
  NEW_SYN_RECV: 'it came to a request socket (NEW_SYN_RECV: a SYN-ACK sent, the handshake not complete)',
};

/** Where the socket stood: its state when the packet reached TCP, and what it went to before the drop. */
function stateWords(s: TcpStateSeen): string {
  let where: string;
  if (s.state === 'CLOSE') {
    // A socket that closed first reports FIN_WAIT2>CLOSE (or CLOSING>CLOSE), never TIME_WAIT: tcp_time_wait hands
    // the connection to a time-wait socket (substate TIME_WAIT, or FIN_WAIT2 while the peer's FIN is due), and
    // closes the full one. That handover is the usual case, not a certainty (a reset also closes from there).
    where =
      s.from === 'FIN_WAIT2' || s.from === 'CLOSING'
        ? `its socket had gone from ${s.from} to CLOSE (normally a time-wait socket then takes over the connection, shown by ss as TIME-WAIT or FIN-WAIT-2, which no state change reports)`
        : `its connection's socket had closed (${s.from ? `${s.from}>` : ''}CLOSE)`;
  } else {
    where = STATE_WORDS[s.state!] ?? `its socket was in ${s.state}`;
  }
  return s.then.length ? `${where}, and went to ${s.then.join(' then ')} before the drop` : where;
}

/** Why a socket in that state refused the packet, from the code that returns each reason (tcp_input.c:
 *  tcp_rcv_state_process, tcp_rcv_synsent_state_process, tcp_validate_incoming, tcp_sequence, tcp_data_queue). */
function stateWhy(reason: string, s: TcpStateSeen): string {
  const at = s.state!;
  const closedSince = s.then.includes('CLOSE');
  switch (reason) {
    case 'TCP_FLAGS':
      if (at === 'LISTEN') return ': a listening socket takes only a SYN (a segment with ACK gets a reset)';
      // Its socket gone, the lookup found the port's listener: nothing else returns TCP_FLAGS for a segment of a
      // closed connection (a time-wait socket answers with an ACK or a reset, naming no reason; none at all: NO_SOCKET).
      if (at === 'CLOSE')
        return ': a listening socket on its port got it, and a listener takes only a SYN (a segment with ACK gets a reset)';
      if (at === 'SYN_SENT')
        return ': waiting for a SYN-ACK, it drops a segment that acknowledges its SYN without a SYN of its own';
      if (SYNCHRONIZED.has(at)) return ', where every segment must carry ACK, RST or SYN, and it had none of them';
      return '';
    case 'TCP_ABORT_ON_DATA':
      return ': the peer still sent data after the application had closed the socket (or shut down reading), and with no one to read it TCP resets the connection (RFC 1122)';
    case 'TCP_OLD_DATA':
      return SYNCHRONIZED.has(at)
        ? ": a copy the peer resent because this host's ACK was lost or late, or one the network duplicated"
        : '';
    case 'TCP_OLD_SEQUENCE':
      return SYNCHRONIZED.has(at)
        ? ': an old duplicate delayed in the network, or a segment of an earlier connection on the same ports'
        : '';
    case 'TCP_INVALID_SEQUENCE':
    case 'TCP_INVALID_END_SEQUENCE':
      return SYNCHRONIZED.has(at)
        ? ': either the peer overran the window this host offered, or the segment is stale, forged or rewritten by a middlebox (TCP answers with a duplicate ACK)'
        : '';
    case 'TCP_RESET':
      if (closedSince) return '';
      if (at === 'LISTEN' || at === 'CLOSE')
        return ': no connection was left to reset, and a listening socket ignores a reset';
      if (at === 'SYN_SENT')
        return ': waiting for a SYN-ACK, it takes a reset only along with an ACK of its SYN, and this one had no ACK';
      if (SYNCHRONIZED.has(at))
        return ': its sequence number was in the window but not the next expected one, so TCP kept the connection and sent a challenge ACK (RFC 5961)';
      return '';
    case 'TCP_INVALID_SYN':
      return SYNCHRONIZED.has(at)
        ? ', and TCP answers a SYN there with a challenge ACK (RFC 5961) instead of a new connection: the peer has likely lost the old one (a restart) and reuses its ports'
        : '';
    case 'TCP_INVALID_ACK_SEQUENCE':
      return at === 'SYN_SENT'
        ? ': the ACK is not for its SYN (a SYN-ACK of an earlier attempt on the same ports), so TCP answers with a reset'
        : '';
    case 'TCP_OLD_ACK':
    case 'TCP_TOO_OLD_ACK':
    case 'TCP_ACK_UNSENT_DATA':
      return at === 'SYN_RECV'
        ? ": the handshake's last ACK does not acknowledge its SYN-ACK, so TCP answers with a reset"
        : '';
    case 'TCP_CLOSE':
      if (closedSince)
        return ': it closed after the packet arrived and before TCP processed it, and TCP takes nothing on a closed socket';
      return at === 'CLOSE'
        ? ': the packet reached it while it was being torn down, and TCP takes nothing on a closed socket'
        : '';
    case '':
      // No reason named: TCP dropped it after answering with a reset (classify.ts), which a time-wait socket does
      // for data that comes after this side closed (tcp_timewait_state_process: TCP_TW_RST).
      return at === 'CLOSE' && (s.from === 'FIN_WAIT2' || s.from === 'CLOSING') && !s.then.length
        ? ': a time-wait socket takes no data'
        : '';
  }
  return '';
}

/** A TCP drop's clause about the connection's state: what it was, as seen, and why that state refused the packet
 *  (reason '' where the kernel named none). */
export function tcpStateClause(reason: string, s: TcpStateSeen): string {
  if (s.state === null) return "its connection's state was not seen since tracing began";
  return stateWords(s) + stateWhy(reason, s);
}

/** The name pathtrace gives ICMP's fragmentation needed and ICMPv6's packet too big alike (tcpdump says "need to frag
 *  (mtu N)" and "packet too big, mtu N"), with the MTU it carries. */
export const tooBigIcmpName = (mtu: number | undefined | null): string => `packet too big${mtu ? `, MTU ${mtu}` : ''}`;

/** A packet too big for its way out, in words: its size, the MTU, the device and the route that refused it, whether
 *  (and whom) this host told, and a path MTU black hole where the same segment came again after that. Pure. */
export function tooBigWords(t: TooBig, location: string): string {
  const fromRoute = t.mtu !== null && (t.mtuFrom === 'route' || t.routeMtu === t.mtu);
  const mtu = t.mtu === null ? '' : `MTU ${t.mtu}${fromRoute ? " (its route's mtu)" : ''}`;
  const what = [t.size === null ? '' : `${t.size} bytes`, mtu].filter(Boolean).join(', ');
  let s = `too big for the way out${what ? `: ${what}` : ''}${t.dev ? ` on ${t.dev}` : ''}`;
  if (t.route)
    s += t.routeDiffers
      ? ` (a route lookup now answers "${t.route}", not the way it took: policy routing (ip rule), or a change since)`
      : ` (route ${t.route})`;
  if (t.mtu === null) s += '; its MTU was not read';
  const icmp = `ICMP ${tooBigIcmpName(t.mtuFrom === 'icmp' ? t.mtu : null)}`;
  // ip6_xmit tells the socket itself (EMSGSIZE on its error queue), with no ICMP error.
  if (/^ip6_xmit\b/.test(location)) s += '; this host sent it, and the kernel told its socket (EMSGSIZE) directly';
  else if (!t.told) s += '; no ICMP error for it was seen leaving (the kernel rate-limits them per destination)';
  else if (tooBigWhere(location) === 'sent')
    s += `; this host sent it, and told its own socket (${icmp}), which learns the path MTU from it`;
  else s += `; this host told the sender (${icmp})`;
  // The count stays out of the words: the summary groups drops by them.
  if (t.resentAfterTold > 0)
    s +=
      '; the sender sent this same segment again after this host had told it the MTU: the ICMP errors do not reach it, or it ignores them (a path MTU black hole: often a firewall on the way back that drops ICMP)';
  return s;
}

/** A drop in one sentence: the reason's meaning, refined by where it happened and, for TCP, by the state of the
 *  connection (when the correlator noted it); for a packet too big for its way out, what refused it. Pure. */
export function explainDrop(d: {
  reason: string | null;
  location: string;
  layer: Layer;
  tcpState?: TcpStateSeen;
  device?: DeviceHookDrop;
  nfqueue?: NfqueueFacts;
  tooBig?: TooBig;
  listening?: Listener[];
}): string {
  if (d.device) return deviceHookWords(d.device, d.location);
  const queued = explainQueueDrop(d);
  if (queued) return queued;
  const where = d.location ? ` (${d.location})` : '';
  const state = d.tcpState ? `; ${tcpStateClause('', d.tcpState)}` : '';
  if (d.reason === null)
    return `${BY_LAYER[d.layer]}${where}; this kernel names no drop reasons (Linux < 5.17)${state}`;
  if (d.reason === 'NOT_SPECIFIED') return `${BY_LAYER[d.layer]}${where}, naming no reason${state}`;
  // ip_forward and ip6_forward use IP_INHDR for one thing only: the TTL (hop limit) that ran out.
  if (d.reason === 'IP_INHDR' && /^ip6?_forward/.test(d.location)) {
    return 'its TTL (hop limit) ran out while it was forwarded: this host answers with ICMP time exceeded';
  }
  // Who does not accept fast enough, where pathtrace found the listener.
  if (d.reason === 'TCP_LISTEN_OVERFLOW' && d.listening?.length)
    return reasonText(d.reason).replace('the application', listenerWords(d.listening));
  if (d.tcpState && TCP_STATE_REASONS.has(d.reason))
    return `${reasonText(d.reason)}; ${tcpStateClause(d.reason, d.tcpState)}`;
  if (d.reason === 'PKT_TOO_BIG' && d.tooBig) return tooBigWords(d.tooBig, d.location);
  return reasonText(d.reason);
}

/** An XDP or tc drop in words: what dropped it, and where that runs against tcpdump's capture and netfilter. */
function deviceHookWords(h: DeviceHookDrop, location: string): string {
  const p = h.program;
  if (h.hook === 'xdp') {
    const who = p ? `the XDP program ${p.name} on ${h.dev}` : `an XDP program on ${h.dev}`;
    const generic = /generic/.test(location) || p?.mode === 'generic';
    const what =
      p?.found === 'verdict' ? xdpVerdictWords(p.verdict ?? '', p.error) : 'dropped it (or failed to send it on)';
    return (
      `${who} ${what}, ` +
      (generic
        ? 'in generic mode: after the device received it, before tcpdump captures and before the kernel stack'
        : 'in its driver: before tcpdump captures and before the kernel stack')
    );
  }
  const who = p
    ? `the tc ${h.direction} ${p.mode === 'tcx' ? 'program' : 'filter'} ${p.name} on ${h.dev}`
    : `a tc ${h.direction} filter or program on ${h.dev}`;
  const dropped = p?.found === 'verdict' ? `dropped it (it returned ${p.verdict})` : 'dropped it';
  return h.direction === 'ingress'
    ? `${who} ${dropped}: after tcpdump captured it, before netfilter and the kernel stack`
    : `${who} ${dropped}: after netfilter, before its qdisc and before tcpdump captures`;
}

/** What an XDP program's verdict did to the packet it dropped: "returned XDP_ABORTED (an error path in the program)". */
function xdpVerdictWords(verdict: string, error: string | undefined): string {
  switch (verdict) {
    case 'XDP_DROP':
      return 'returned XDP_DROP';
    case 'XDP_ABORTED':
      return 'returned XDP_ABORTED (an error path in the program)';
    case 'XDP_TX':
      return 'returned XDP_TX, and sending it back out of the device failed';
    case 'XDP_REDIRECT':
      return `returned XDP_REDIRECT, and the redirect failed${error ? ` (${error})` : ''}`;
    default:
      return `returned ${verdict}, which is no XDP action: the kernel drops it as XDP_ABORTED`;
  }
}

/** Who listened where a listen queue overflowed, as /proc showed it when the drop was reported: "node[1234] on
 *  [::]:80"; with queued, how many connections then waited to be accepted. Pure. */
export function listenerWords(ls: Listener[], queued = false): string {
  return ls
    .map((l) => {
      const who = l.processes.length ? l.processes.map((p) => `${p.comm}[${p.pid}]`).join(', ') : 'no process found';
      return `${who} on ${l.address}${queued ? ` (${l.queued} waiting to be accepted)` : ''}`;
    })
    .join('; ');
}

/** The packet a drop's advice is about: its ports and addresses, the device it was on, how to run a command
 *  in its namespace ("ip netns exec web " or ""). */
export interface AdviceContext {
  proto: 'tcp' | 'udp' | 'icmp' | string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  dev: string | null;
  prefix: string;
}

/** What shows an XDP or tc drop's program or filter (p: how to run a command in the namespace). */
function deviceHookAdvice(h: DeviceHookDrop, p: string): string[] {
  const id = h.program?.id;
  const prog = id !== undefined ? [`bpftool prog show id ${id}`] : [];
  if (h.hook === 'xdp') return [`${p}ip -d link show dev ${h.dev} (prog/xdp: its program)`, ...prog];
  return [
    `${p}tc -s filter show dev ${h.dev} ${h.direction}`,
    `${p}bpftool net show dev ${h.dev} (tcx programs)`,
    ...prog,
  ];
}

/** Counters (nstat names) that count what a TCP state drop did: an abort, a challenge ACK, a PAWS reject. */
const TCP_COUNTERS: Record<string, string> = {
  TCP_ABORT_ON_DATA: 'TcpExtTCPAbortOnData',
  TCP_INVALID_SYN: 'TcpExtTCPSYNChallenge TcpExtTCPChallengeACK',
  TCP_RESET: 'TcpExtTCPChallengeACK',
  TCP_RFC7323_PAWS: 'TcpExtPAWSEstab',
  TCP_RFC7323_PAWS_ACK: 'TcpExtPAWSEstab',
};

/** What to run next for a drop, with this packet's values: the commands that show the cause. Pure. */
export function dropAdvice(
  d: {
    reason: string | null;
    location: string;
    attribution?: Partial<RuleAttribution>;
    device?: DeviceHookDrop;
    nfqueue?: NfqueueFacts;
    tooBig?: TooBig;
  },
  c: AdviceContext,
): string[] {
  const p = c.prefix;
  const queued = queueAdvice(d, p);
  if (queued) return queued;
  const dev = c.dev;
  const listening = `${p}ss -${c.proto === 'udp' ? 'u' : 't'}lnp 'sport = :${c.dport}'`;
  const v6 = c.dst.includes(':');
  const routeGet = `${p}ip ${v6 ? '-6 ' : ''}route get ${c.dst}`;
  // The kernel's own route lookup for a packet that came in (reverse-path check included): an error is the refusal.
  const inputLookup = dev
    ? `${routeGet} from ${c.src} iif ${dev} (the kernel's lookup for it: an error is the refusal)`
    : routeGet;
  const rpFilter = `${p}sysctl net.ipv4.conf.all.rp_filter${dev ? ` net.ipv4.conf.${dev}.rp_filter` : ''}`;
  switch (d.reason) {
    case 'NETFILTER_DROP':
      return d.attribution ? [] : [`${p}nft list ruleset`, `${p}iptables-legacy-save`];
    case 'NO_SOCKET':
      return [listening];
    case 'TCP_LISTEN_OVERFLOW':
      return [
        `${listening} (Recv-Q: connections waiting to be accepted, Send-Q: the backlog)`,
        `${p}sysctl net.core.somaxconn`,
      ];
    case 'SOCKET_RCVBUFF':
      return [
        `${p}ss -${c.proto === 'udp' ? 'u' : 't'}amn 'sport = :${c.dport}' (skmem: rb is the buffer)`,
        `${p}sysctl net.core.rmem_max net.core.rmem_default`,
      ];
    case 'PROTO_MEM':
      return [`${p}sysctl net.ipv4.tcp_mem net.ipv4.udp_mem`, `${p}cat /proc/net/sockstat`];
    case 'IP_RPFILTER':
      return [rpFilter, inputLookup];
    case 'IP_INNOROUTES':
      return [inputLookup];
    case 'IP_OUTNOROUTES':
      return [routeGet];
    case 'IP_INHDR':
      return /^ip6?_forward/.test(d.location) ? [`${routeGet} (a loop between routers also exhausts the TTL)`] : [];
    case 'CPU_BACKLOG':
      return ['sysctl net.core.netdev_max_backlog', 'cat /proc/net/softnet_stat (second column: drops per CPU)'];
    case 'DEV_READY':
      return dev ? [`${p}ip link show ${dev}`] : [];
    case 'PKT_TOO_BIG':
      return tooBigAdvice(d.location, d.tooBig?.dev, c, routeGet);
  }
  if (d.device) return deviceHookAdvice(d.device, p);
  // A TCP state drop: the connection's socket as it is now (-a: TIME_WAIT entries too; -o: its timers), from this
  // host's side (its local port is the packet's destination). A duplicate (OLD_DATA, OLD_SEQUENCE) needs nothing.
  if (d.reason && TCP_STATE_REASONS.has(d.reason) && d.reason !== 'TCP_OLD_DATA' && d.reason !== 'TCP_OLD_SEQUENCE') {
    const counters = TCP_COUNTERS[d.reason];
    return [
      `${p}ss -tanoi 'sport = :${c.dport} and dport = :${c.sport}'`,
      ...(counters ? [`${p}nstat -az ${counters}`] : []),
    ];
  }
  // Before 5.17 the input route's refusals (rp_filter, a martian source) are freed in ip_rcv_finish, unnamed.
  if (d.reason === null && /^ip_rcv_finish/.test(d.location) && !v6) return [inputLookup, rpFilter];
  if (d.reason?.startsWith('NEIGH_') && dev) return [`${p}ip neigh show dev ${dev}`];
  if (d.reason && /^(QDISC_|CAKE_|FQ_|DUALPI2_)/.test(d.reason) && dev) return [`${p}tc -s qdisc show dev ${dev}`];
  if (d.reason && /^TC_/.test(d.reason) && dev)
    return [`${p}tc -s filter show dev ${dev} ${d.reason === 'TC_INGRESS' ? 'ingress' : 'egress'}`];
  return [];
}

/** What to run for a packet too big for its way out: the route and the out device's MTU; forwarded, the path MTU
 *  beyond (tracepath) and, for TCP, MSS clamping, which keeps segments small enough whether or not ICMP gets back;
 *  sent by this host, the policy routing that can take it another way than its socket's route. */
function tooBigAdvice(location: string, out: string | undefined, c: AdviceContext, routeGet: string): string[] {
  const p = c.prefix;
  const items = [routeGet, ...(out ? [`${p}ip link show dev ${out}`] : [])];
  const where = tooBigWhere(location);
  if (where === 'sent')
    return [...items, `${p}ip rule (a mark or a rule can route it elsewhere than its socket's route)`];
  if (where !== 'forwarded') return items;
  items.push(`${p}tracepath -n ${c.dst}`);
  if (c.proto === 'tcp') {
    const ipt = c.dst.includes(':') ? 'ip6tables' : 'iptables';
    items.push(
      `MSS clamping: ${p}${ipt} -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu (nft, in a forward chain: tcp flags syn tcp option maxseg size set rt mtu)`,
    );
  }
  return items;
}
