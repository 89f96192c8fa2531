// Which layer freed a packet, from the freeing function and the drop reason.
// Pure: names in, names out.
import { REASONS } from './drop-reasons.js';
import type { Layer } from './journey.js';

const LOCATION_LAYERS: [RegExp, Layer][] = [
  // XDP in generic mode (do_xdp_generic frees what the program dropped, or failed to send on) and in a driver
  // that gives its program an skb (veth: its NAPI poll, veth_poll, runs only for XDP and frees only what XDP
  // dropped; 5.10 inlines veth_xdp_rcv_skb into it), or the CPU and device maps XDP redirects to.
  [
    /^(do_xdp_generic|netif_receive_generic_xdp|bpf_prog_run_generic_xdp|generic_xdp_tx|veth_xdp_|veth_poll|xdp_|__xdp_|cpu_map_|dev_map_|bq_xmit_all)/,
    'xdp',
  ],
  // tc's classifiers and actions, from the ingress and egress hooks (sch_handle_*, tcx).
  [/^(tcf_|tcx_|sch_handle_ingress|sch_handle_egress|__sch_handle|cls_bpf_|tc_run)/, 'tc'],
  [/^(nft_|nf_|ipt_|ip6t_|ebt_|xt_|__nf_|nfqnl_|ipv6_defrag|ipv4_conntrack)/, 'netfilter'],
  [/^(tcp_|__tcp_|inet_csk_|inet_twsk_|tcp_v4|tcp_v6)/, 'tcp'],
  [/^(udp|__udp|udpv6_|__udp6)/, 'udp'],
  [/^(icmp|icmpv6_|__icmp)/, 'icmp'],
  [/^(sk_|__sk_|sock_|skb_queue_purge|inet_sock_destruct)/, 'socket'],
  [/^(ip_|ip6_|ipv6_|__ip_|__ip6_|ip_rcv|ip6_rcv|fib_|rt6_|ip_route)/, 'ip'],
  [/^(neigh_|__neigh_|arp_|ndisc_)/, 'neighbour'],
  [/^(qdisc_|__qdisc_|sch_|pfifo_|tbf_|fq_|__dev_xmit_skb)/, 'qdisc'],
  [
    /^(dev_|__dev_|netif_|__netif_|napi_|veth_|loopback_|validate_xmit|sch_direct_xmit|net_rx_action|process_backlog|gro_)/,
    'device',
  ],
];

const REASON_LAYERS: [RegExp, Layer][] = [
  [/^NETFILTER_DROP$/, 'netfilter'],
  [/^(TCP_|SOCKET_BACKLOG|TCP)/, 'tcp'],
  [/^(UDP_)/, 'udp'],
  [/^(SOCKET_|PROTO_MEM|NO_SOCKET)/, 'socket'],
  [/^(IP_|IPV6|OTHERHOST|IP_NOPROTO|IP_RPFILTER|IP_INHDR|IP_OUTNOROUTES|PKT_TOO_BIG|IP_TUNNEL)/, 'ip'],
  [/^(NEIGH_)/, 'neighbour'],
  [/^XDP/, 'xdp'],
  [/^TC_/, 'tc'],
  [/^QDISC_/, 'qdisc'],
  [/^(DEV_|DEV_READY|FULL_RING|NOMEM|DUP_FRAG|FRAG_)/, 'device'],
  [/^(ICMP_)/, 'icmp'],
];

const locationLayers = new Map<string, Layer | undefined>();

/** The layer of a freeing function, by its name's prefix (asked for every freed packet: kept by name). */
export function layerOfLocation(location: string): Layer | undefined {
  if (locationLayers.has(location)) return locationLayers.get(location);
  const layer = LOCATION_LAYERS.find(([re]) => re.test(location))?.[1];
  if (locationLayers.size > 4096) locationLayers.clear();
  locationLayers.set(location, layer);
  return layer;
}

const layers = new Map<string, Layer>();

/** The layer a drop belongs to: by reason when it names one (the table in reasons.ts, else the naming rules
 *  above, for a reason newer than the table), else by where it happened. */
export function dropLayer(reason: string, location: string): Layer {
  const key = `${reason} ${location}`;
  let layer = layers.get(key);
  if (layer === undefined) {
    const named = reason === 'NOT_SPECIFIED' ? undefined : REASONS[reason]?.layer; // it names none: where says
    layer = named ?? REASON_LAYERS.find(([re]) => re.test(reason))?.[1] ?? layerOfLocation(location) ?? 'kernel';
    if (layers.size > 4096) layers.clear();
    layers.set(key, layer);
  }
  return layer;
}

/**
 * Whether a kfree_skb is a real drop. NOT_SPECIFIED frees are mostly the
 * transport layer finishing with a packet it already handled (a retransmitted
 * SYN answered by the request socket, say); elsewhere they are drops.
 * reason null: the kernel reports none (< 5.17), where kfree_skb is used for
 * drops only, except by TCP for packets it handled.
 * Either way, a free at TCP after it answered the packet with a reset is a
 * drop: no socket (< 5.17), or a time-wait socket refusing data that came
 * after this side closed (tcp_v4_rcv's TCP_TW_RST, NOT_SPECIFIED on 6.18).
 */
export function isDrop(reason: string | null, location: string, reachedTransport: boolean, resetSent = false): boolean {
  const layer = layerOfLocation(location);
  if (reason === null) return !(reachedTransport && layer === 'tcp' && !resetSent);
  if (reason !== 'NOT_SPECIFIED' && reason !== '0') return true;
  if (layer === 'tcp' && resetSent) return true;
  return !(reachedTransport && (layer === 'tcp' || layer === 'udp' || layer === 'socket' || layer === 'icmp'));
}
