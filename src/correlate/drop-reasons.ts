// The kernel's drop reasons (enum skb_drop_reason, read from its BTF) in plain words: what each means for
// the packet, and the layer it belongs to. Written from include/net/dropreason-core.h and the code that
// uses each one; a reason this table does not know (a newer kernel) still gets its name and its layer by
// the naming rules in classify.ts, and says pathtrace has no words for it yet. Pure.
// Here, below report/ (which explains and advises with it), because the correlator reads it too: a reason's layer,
// the TCP reasons that need the socket's state, where a too-big drop was.
import type { Layer } from './journey.js';

export interface ReasonText {
  layer: Layer;
  text: string;
}

const r = (layer: Layer, text: string): ReasonText => ({ layer, text });

/** Not drops: the kernel's own markers in the enum. */
export const NOT_REASONS = new Set(['SKB_NOT_DROPPED_YET', 'SKB_CONSUMED', 'MAX', 'SUBSYS_MASK']);

export const REASONS: Record<string, ReasonText> = {
  NOT_SPECIFIED: r('kernel', 'the kernel freed it without naming a reason at this place'),
  NO_SOCKET: r(
    'socket',
    'no socket was bound to its destination port and address (nothing listening there): TCP answers such a packet with a reset, UDP with ICMP port unreachable',
  ),
  SOCKET_CLOSE: r('socket', 'its socket was being closed'),
  SOCKET_FILTER: r(
    'socket',
    'a filter attached to the socket (SO_ATTACH_FILTER: a BPF program of the application or of a capture) refused it',
  ),
  SOCKET_RCVBUFF: r(
    'socket',
    "its socket's receive buffer was full: the application does not read fast enough (SO_RCVBUF, net.core.rmem_max)",
  ),
  UNIX_DISCONNECT: r('socket', 'its unix socket was disconnected'),
  UNIX_SKIP_OOB: r('socket', "a unix stream socket's out-of-band byte was skipped"),
  PKT_TOO_SMALL: r('ip', 'it is shorter than its headers say'),
  TCP_CSUM: r('tcp', 'its TCP checksum is wrong'),
  UDP_CSUM: r('udp', 'its UDP checksum is wrong'),
  NETFILTER_DROP: r('netfilter', 'a netfilter rule (iptables or nftables) dropped it'),
  OTHERHOST: r('ip', "its link-layer destination is another host's (the device receives it only in promiscuous mode)"),
  IP_CSUM: r('ip', 'its IP header checksum is wrong'),
  IP_INHDR: r(
    'ip',
    'its IP header is invalid (version, length or options), or, where it is forwarded, its TTL (hop limit) ran out',
  ),
  IP_RPFILTER: r(
    'ip',
    'reverse path filtering: a reply to its source would not leave by the device it came in on (rp_filter)',
  ),
  UNICAST_IN_L2_MULTICAST: r('ip', 'an IP unicast packet came in a link-layer multicast or broadcast frame'),
  XFRM_POLICY: r('ip', 'an IPsec (xfrm) policy refused it'),
  IP_NOPROTO: r('ip', 'no protocol handler for its IP protocol number'),
  PROTO_MEM: r('socket', "the protocol's memory limit was reached (net.ipv4.tcp_mem, udp_mem)"),
  TCP_AUTH_HDR: r('tcp', 'it carries TCP-MD5 and TCP-AO signatures both, or a signature option that cannot be read'),
  TCP_MD5NOTFOUND: r('tcp', 'it has no TCP-MD5 signature, which its socket requires'),
  TCP_MD5UNEXPECTED: r('tcp', 'it has a TCP-MD5 signature its socket does not expect'),
  TCP_MD5FAILURE: r('tcp', 'its TCP-MD5 signature is wrong'),
  TCP_AONOTFOUND: r('tcp', 'it has no TCP-AO signature, which its socket requires'),
  TCP_AOUNEXPECTED: r('tcp', 'it has a TCP-AO signature its socket does not expect'),
  TCP_AOKEYNOTFOUND: r('tcp', 'its TCP-AO key is not configured on the socket'),
  TCP_AOFAILURE: r('tcp', 'its TCP-AO signature is wrong'),
  SOCKET_BACKLOG: r(
    'tcp',
    "its socket's backlog was full while the application held the socket (receive and send buffers' worth queued)",
  ),
  TCP_FLAGS: r('tcp', "its TCP flags are not acceptable in the connection's state"),
  TCP_ABORT_ON_DATA: r(
    'tcp',
    'data came for a socket its application had closed: the connection was aborted with a reset',
  ),
  TCP_ZEROWINDOW: r('tcp', 'the receive window was zero: no room for its data'),
  TCP_OLD_DATA: r('tcp', 'all its data had been received already (a retransmission of what was acknowledged)'),
  TCP_OVERWINDOW: r('tcp', 'its data lies beyond the receive window'),
  TCP_OFOMERGE: r('tcp', 'its out-of-order data was queued already'),
  TCP_RFC7323_PAWS: r('tcp', 'its timestamp is older than the last one seen (PAWS, RFC 7323): an old duplicate'),
  TCP_RFC7323_PAWS_ACK: r('tcp', 'a pure ACK whose timestamp is older than the last one seen (PAWS, RFC 7323)'),
  TCP_RFC7323_TW_PAWS: r(
    'tcp',
    'its timestamp is older than the last one seen by the TIME_WAIT socket (PAWS, RFC 7323)',
  ),
  TCP_RFC7323_TSECR: r('tcp', 'the timestamp it echoes (TSecr) was never sent'),
  TCP_LISTEN_OVERFLOW: r(
    'tcp',
    "the listening socket's accept queue was full: the application does not accept connections fast enough (listen backlog, net.core.somaxconn)",
  ),
  TCP_OLD_SEQUENCE: r('tcp', 'its sequence number is older than the receive window (an old segment)'),
  TCP_INVALID_SEQUENCE: r('tcp', 'its sequence number is outside the receive window'),
  TCP_INVALID_END_SEQUENCE: r('tcp', 'its data ends beyond the receive window'),
  TCP_INVALID_ACK_SEQUENCE: r('tcp', 'it acknowledges data never sent, or data older than the window'),
  TCP_RESET: r('tcp', 'a reset (RST) that TCP refused as invalid'),
  TCP_INVALID_SYN: r('tcp', 'a SYN the connection cannot take in its state (a SYN inside an established connection)'),
  TCP_CLOSE: r('tcp', 'its socket was closed (in state CLOSE) when TCP processed it'),
  TCP_FASTOPEN: r('tcp', 'TCP Fast Open data that was not accepted'),
  TCP_OLD_ACK: r('tcp', 'it acknowledges data acknowledged already'),
  TCP_TOO_OLD_ACK: r('tcp', 'it acknowledges data far older than the window'),
  TCP_ACK_UNSENT_DATA: r('tcp', 'it acknowledges data not sent yet'),
  TCP_OFO_QUEUE_PRUNE: r('tcp', 'the out-of-order queue was pruned: the socket ran short of receive memory'),
  TCP_OFO_DROP: r('tcp', 'out-of-order data with no room for it (beyond the window, or no receive memory)'),
  IP_OUTNOROUTES: r('ip', 'no route to its destination'),
  BPF_CGROUP_EGRESS: r('kernel', "a cgroup's BPF program refused it on its way out"),
  IPV6DISABLED: r('ip', 'IPv6 is disabled on its device'),
  NEIGH_CREATEFAIL: r('neighbour', 'no neighbour (ARP or NDP) entry could be made for its next hop'),
  NEIGH_FAILED: r('neighbour', "its next hop's link-layer address could not be resolved: ARP or NDP got no answer"),
  NEIGH_QUEUEFULL: r(
    'neighbour',
    "too many packets were waiting for its next hop's address to be resolved (unres_qlen)",
  ),
  NEIGH_DEAD: r('neighbour', "its next hop's neighbour entry was removed"),
  NEIGH_HH_FILLFAIL: r('neighbour', 'its link-layer header could not be filled in from the neighbour entry'),
  TC_EGRESS: r('tc', 'a tc program or action on the egress of its device dropped it'),
  SECURITY_HOOK: r('kernel', 'a security module (SELinux, AppArmor, ...) refused it'),
  QDISC_DROP: r('qdisc', "its device's queueing discipline dropped it (a full queue, or a qdisc that drops)"),
  QDISC_OVERLIMIT: r('qdisc', "its device's queue was over its limit"),
  QDISC_CONGESTED: r('qdisc', "its device's queueing discipline dropped it to fight congestion (RED, CoDel, ...)"),
  CAKE_FLOOD: r('qdisc', "the CAKE qdisc's flood protection dropped it"),
  FQ_BAND_LIMIT: r('qdisc', "the fq qdisc's band was over its limit"),
  FQ_HORIZON_LIMIT: r('qdisc', "its departure time was beyond the fq qdisc's horizon"),
  FQ_FLOW_LIMIT: r('qdisc', "its flow was over the fq qdisc's per-flow limit"),
  CPU_BACKLOG: r('device', "the receiving CPU's backlog queue was full (net.core.netdev_max_backlog)"),
  XDP: r('xdp', 'an XDP program dropped it'),
  TC_INGRESS: r('tc', 'a tc program or action on the ingress of its device dropped it'),
  UNHANDLED_PROTO: r('device', 'no handler for its link-layer protocol'),
  SKB_CSUM: r('device', 'its checksum could not be computed or is wrong'),
  SKB_GSO_SEG: r('device', 'cutting it into segments (GSO) failed'),
  SKB_RX_HEADROOM: r('device', 'the kernel could not make the room it needed in front of its headers on receive'),
  SKB_UCOPY_FAULT: r('socket', "copying its data to the application's buffer failed"),
  DEV_HDR: r('device', 'its link-layer header is invalid'),
  DEV_READY: r('device', 'its device was not ready: down, or without carrier'),
  FULL_RING: r('device', "the device's ring buffer was full"),
  NOMEM: r('kernel', 'the kernel had no memory for it'),
  HDR_TRUNC: r('device', 'its headers were cut short'),
  TAP_FILTER: r('device', "a tun/tap device's filter dropped it"),
  TAP_TXFILTER: r('device', "a tun/tap device's transmit filter dropped it"),
  ICMP_CSUM: r('icmp', 'its ICMP checksum is wrong'),
  INVALID_PROTO: r('ip', 'its protocol does not fit where it is (an IP version the header contradicts)'),
  IP_INADDRERRORS: r('ip', 'its destination address is not valid for this host (a martian)'),
  IP_INNOROUTES: r('ip', 'no route for it on input'),
  IP_LOCAL_SOURCE: r('ip', "its source address is this host's own: a looped or spoofed packet"),
  IP_INVALID_SOURCE: r('ip', 'its source address cannot be a source (multicast, broadcast, zero)'),
  IP_LOCALNET: r(
    'ip',
    'a loopback address (127.0.0.0/8) on a device other than lo (net.ipv4.conf.*.route_localnet is off)',
  ),
  IP_INVALID_DEST: r('ip', 'its destination address cannot be a destination here'),
  PKT_TOO_BIG: r('ip', 'bigger than the MTU of the way out, and not to be fragmented'),
  DUP_FRAG: r('ip', 'a fragment received twice'),
  FRAG_REASM_TIMEOUT: r('ip', 'the other fragments of its datagram did not all come in time (ipfrag_time)'),
  FRAG_TOO_FAR: r('ip', 'a fragment too far ahead of the others (ipfrag_max_dist)'),
  TCP_MINTTL: r('tcp', "its TTL was below its socket's minimum (IP_MINTTL)"),
  IPV6_BAD_EXTHDR: r('ip', 'an IPv6 extension header is invalid'),
  IPV6_TOO_MANY_EXTHDRS: r('ip', 'it carries more IPv6 extension headers than the kernel accepts'),
  IPV6_NDISC_FRAG: r('icmp', 'a neighbour discovery message in a fragment'),
  IPV6_NDISC_HOP_LIMIT: r('icmp', 'a neighbour discovery message whose hop limit is not 255'),
  IPV6_NDISC_BAD_CODE: r('icmp', 'a neighbour discovery message with a bad code'),
  IPV6_NDISC_BAD_OPTIONS: r('icmp', 'a neighbour discovery message with bad options'),
  IPV6_NDISC_NS_OTHERHOST: r('icmp', "a neighbour solicitation for another host's address"),
  QUEUE_PURGE: r('kernel', 'a queue it waited in was purged (its socket or device went away)'),
  TC_COOKIE_ERROR: r('tc', "a tc filter's cookie could not be read"),
  PACKET_SOCK_ERROR: r('socket', 'a packet socket could not take it'),
  TC_CHAIN_NOTFOUND: r('tc', 'tc sent it to a filter chain that does not exist'),
  TC_RECLASSIFY_LOOP: r('tc', 'tc reclassified it too many times (a loop)'),
  VXLAN_INVALID_HDR: r('device', 'its VXLAN header is invalid'),
  VXLAN_VNI_NOT_FOUND: r('device', 'no VXLAN device for its VNI'),
  MAC_INVALID_SOURCE: r('device', 'its source MAC address is invalid'),
  VXLAN_ENTRY_EXISTS: r('device', 'its VXLAN forwarding entry exists already'),
  NO_TX_TARGET: r('device', 'nowhere to send it (no forwarding entry for its destination)'),
  IP_TUNNEL_ECN: r('device', "its tunnel's outer and inner ECN bits contradict each other"),
  TUNNEL_TXINFO: r('device', 'the tunnel it should leave by has no transmit information'),
  LOCAL_MAC: r('device', "its source MAC address is this host's own"),
  ARP_PVLAN_DISABLE: r('neighbour', 'proxy ARP for a private VLAN is disabled'),
  MAC_IEEE_MAC_CONTROL: r('device', 'an IEEE 802.3 MAC control frame'),
  BRIDGE_INGRESS_STP_STATE: r('device', 'its bridge port does not forward in its spanning-tree state'),
  CAN_RX_INVALID_FRAME: r('device', 'an invalid CAN frame'),
  CANFD_RX_INVALID_FRAME: r('device', 'an invalid CAN FD frame'),
  CANXL_RX_INVALID_FRAME: r('device', 'an invalid CAN XL frame'),
  PFMEMALLOC: r('socket', 'allocated from the memory reserve, for a socket that may not use it'),
  DUALPI2_STEP_DROP: r('qdisc', "the DualPI2 qdisc's step threshold dropped it"),
  PSP_INPUT: r('ip', 'PSP encryption policy refused it on input'),
  PSP_OUTPUT: r('ip', 'PSP encryption policy refused it on output'),
  RECURSION_LIMIT: r('device', 'too many devices nested on its way out (the transmit recursion limit)'),
};

/** What a reason means, in one phrase; for one the table lacks, its name and that pathtrace has no words for it. */
export function reasonText(reason: string): string {
  return REASONS[reason]?.text ?? `the kernel's reason ${reason}, which pathtrace has no words for yet`;
}

/** TCP reasons whose meaning depends on the state of the socket the packet came to: for these the correlator
 *  notes that state (Drop.tcpState) and the explanation says what it was and why it refused the packet. */
export const TCP_STATE_REASONS = new Set([
  'TCP_FLAGS',
  'TCP_ABORT_ON_DATA',
  'TCP_OLD_DATA',
  'TCP_OLD_SEQUENCE',
  'TCP_INVALID_SEQUENCE',
  'TCP_INVALID_END_SEQUENCE',
  'TCP_INVALID_ACK_SEQUENCE',
  'TCP_OLD_ACK',
  'TCP_TOO_OLD_ACK',
  'TCP_ACK_UNSENT_DATA',
  'TCP_RESET',
  'TCP_INVALID_SYN',
  'TCP_CLOSE',
  'TCP_RFC7323_PAWS',
  'TCP_RFC7323_PAWS_ACK',
]);

/** Where the kernel frees a packet too big for its way out, by whose packet it was: forwarding's MTU check
 *  (ip_forward, ip6_forward), or fragmentation's refusal of a packet this host sent that must not be fragmented
 *  (ip_fragment, inlined into __ip_finish_output or ip_finish_output on some builds; ip6_fragment; ip6_xmit, for a
 *  TCP segment over IPv6 bigger than its socket's route allows). null: neither (openvswitch's, say). */
export function tooBigWhere(location: string): 'forwarded' | 'sent' | null {
  if (/^ip6?_forward\b/.test(location)) return 'forwarded';
  return /^(ip_fragment|__ip_finish_output|ip_finish_output|ip6_fragment|ip6_xmit)\b/.test(location) ? 'sent' : null;
}
