// Where each probe point is on a packet's way through the stack: the one table that the text's path, the UI's
// stages and merge's device times read. A new point in bpf/record.h gets its place here (tsc says so).
import type { POINTS } from '../trace/record.generated.js';

export type PointName = (typeof POINTS)[number]['name'];

export type PointPlace =
  | 'rx' // a device received it (before generic XDP and the tap)
  | 'rx-tap' // received, into the stack: generic XDP, then the RX tap follow
  | 'hook' // a netfilter hook
  | 'chain' // a table's chain returned a drop verdict (trampolines)
  | 'neighbour' // queued for a device: the neighbour was resolved, the qdisc follows
  | 'qdisc'
  | 'tx-tap' // handed to the driver: the TX tap precedes
  | 'free' // freed or consumed
  | 'tcp' // TCP's own events
  | 'app' // read by the application
  | 'program'; // an XDP or tc program's verdict

export const POINT_PLACE: Record<PointName, PointPlace> = {
  netfilter: 'hook',
  'netfilter chain': 'chain',
  napi_gro_receive_entry: 'rx',
  netif_rx: 'rx',
  netif_receive_skb: 'rx-tap',
  net_dev_queue: 'neighbour',
  net_dev_start_xmit: 'tx-tap',
  qdisc_enqueue: 'qdisc',
  qdisc_dequeue: 'qdisc',
  kfree_skb: 'free',
  consume_skb: 'free',
  tcp_send_reset: 'tcp',
  tcp_receive_reset: 'tcp',
  tcp_retransmit_skb: 'tcp',
  tcp_retransmit_synack: 'tcp',
  inet_sock_set_state: 'tcp',
  skb_copy_datagram_iovec: 'app',
  sock_recv_length: 'app',
  xdp_verdict: 'program',
  tc_verdict: 'program',
  xdp_exception: 'program',
  xdp_redirect_err: 'program',
  xdp_redirect_map_err: 'program',
};

/** The place of a step's point (a point a newer trace file names and this version does not know: none). */
export const placeOf = (point: string): PointPlace | undefined => POINT_PLACE[point as PointName];

/** A step at a device on the way in: where a received packet is first seen. */
export const atDeviceRx = (point: string): boolean => {
  const p = placeOf(point);
  return p === 'rx' || p === 'rx-tap';
};

/** A step at a device on the way out: the driver's transmit. */
export const atDeviceTx = (point: string): boolean => placeOf(point) === 'tx-tap';
