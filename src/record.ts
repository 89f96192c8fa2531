// Decoder for struct pathtrace_record (bpf/record.h). The layout test
// (test/unit/record-layout.test.ts) checks these offsets against the addon's.
import { formatAddress } from './address.js';

export const RECORD_SIZE = 128;

export const OFFSETS = {
  ts_ns: 0, skb: 8, location: 16, netns: 24, ifindex: 28, ifindex_out: 32, reason: 36,
  seq: 40, ack: 44, point: 48, hook: 50, probe: 51, family: 52, l4proto: 53, tcp_flags: 54,
  ttl: 55, sport: 56, dport: 58, len: 60, ip_id: 62, saddr: 64, daddr: 80, pid: 96,
  old_state: 100, new_state: 101, icmp_type: 102, icmp_code: 103, inner_proto: 104, aux: 108,
  comm: 112, inner_daddr: 112,
} as const;

/** enum pathtrace_point */
export const Point = {
  NETFILTER: 1,
  NETIF_RECEIVE_SKB: 2,
  NET_DEV_START_XMIT: 3,
  KFREE_SKB: 4,
  CONSUME_SKB: 5,
  TCP_SEND_RESET: 6,
  TCP_RECEIVE_RESET: 7,
  TCP_RETRANSMIT_SKB: 8,
  TCP_RETRANSMIT_SYNACK: 9,
  INET_SOCK_SET_STATE: 10,
  NETIF_RX: 11,
  NAPI_GRO_RECEIVE: 12,
  NET_DEV_QUEUE: 13,
  QDISC_ENQUEUE: 14,
  QDISC_DEQUEUE: 15,
  SKB_COPY_DATAGRAM: 16,
  SOCK_RECV_LENGTH: 17,
} as const;
export type PointId = (typeof Point)[keyof typeof Point];

export const POINT_NAMES: Record<number, string> = {
  [Point.NETFILTER]: 'netfilter',
  [Point.NETIF_RECEIVE_SKB]: 'netif_receive_skb',
  [Point.NET_DEV_START_XMIT]: 'net_dev_start_xmit',
  [Point.KFREE_SKB]: 'kfree_skb',
  [Point.CONSUME_SKB]: 'consume_skb',
  [Point.TCP_SEND_RESET]: 'tcp_send_reset',
  [Point.TCP_RECEIVE_RESET]: 'tcp_receive_reset',
  [Point.TCP_RETRANSMIT_SKB]: 'tcp_retransmit_skb',
  [Point.TCP_RETRANSMIT_SYNACK]: 'tcp_retransmit_synack',
  [Point.INET_SOCK_SET_STATE]: 'inet_sock_set_state',
  [Point.NETIF_RX]: 'netif_rx',
  [Point.NAPI_GRO_RECEIVE]: 'napi_gro_receive_entry',
  [Point.NET_DEV_QUEUE]: 'net_dev_queue',
  [Point.QDISC_ENQUEUE]: 'qdisc_enqueue',
  [Point.QDISC_DEQUEUE]: 'qdisc_dequeue',
  [Point.SKB_COPY_DATAGRAM]: 'skb_copy_datagram_iovec',
  [Point.SOCK_RECV_LENGTH]: 'sock_recv_length',
};

export const NF_SLOTS = 8;
export const NF_SLOT_ENTRY = 0;
export const NF_SLOT_EXIT = NF_SLOTS - 1;
export const HOOK_NONE = 0xff;

export const PROTO_TCP = 1;
export const PROTO_UDP = 2;
export const PROTO_ICMP = 4;

export const IPPROTO = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;

/** One decoded record. Times are ns since the trace's clock base. */
export interface TraceEvent {
  t: number;
  point: number;
  /** skb address folded into a number: exact for kernel direct-map addresses, a hint only. */
  skb: number;
  /** Kernel text address of kfree/consume's caller, as two 32-bit halves. */
  locHi: number;
  locLo: number;
  netns: number;
  ifindex: number;
  ifindexOut: number;
  reason: number;
  seq: number;
  ack: number;
  hook: number;
  probe: number;
  family: number;
  proto: number;
  flags: number;
  ttl: number;
  sport: number;
  dport: number;
  len: number;
  ipId: number;
  src: string;
  dst: string;
  pid: number;
  oldState: number;
  newState: number;
  icmpType: number;
  icmpCode: number;
  /** ICMP errors: protocol and destination of the quoted packet (0 / '' otherwise). */
  innerProto: number;
  innerDst: string;
  aux: number;
  /** Current task's command (socket and read records), '' otherwise. */
  comm: string;
  /** --write: the packet's bytes, when this event captured them. */
  bytes?: PacketBytes;
}

const TWO32 = 2 ** 32;

/**
 * A monotonic clock base: records carry bpf_ktime_get_ns(), up to 2^64; times
 * are kept relative to the base so that they stay exact in a double.
 */
export interface ClockBase { hi: number; lo: number }

export function clockBase(monotonicNs: bigint): ClockBase {
  return { hi: Number(monotonicNs >> 32n), lo: Number(monotonicNs & 0xffffffffn) };
}

function cString(bytes: Uint8Array, off: number, max: number): string {
  let end = off;
  while (end < off + max && bytes[end] !== 0) end++;
  return end === off ? '' : Buffer.from(bytes.buffer, bytes.byteOffset + off, end - off).toString('latin1');
}

/** Decodes count records from buf, calling sink for each. */
export function decodeRecords(buf: Uint8Array, count: number, base: ClockBase, sink: (e: TraceEvent) => void): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let i = 0; i < count; i++) sink(decodeRecord(view, buf, i * RECORD_SIZE, base));
}

export function decodeRecord(view: DataView, bytes: Uint8Array, o: number, base: ClockBase): TraceEvent {
  const family = view.getUint8(o + OFFSETS.family);
  const innerProto = view.getUint8(o + OFFSETS.inner_proto);
  const tsLo = view.getUint32(o + OFFSETS.ts_ns, true);
  const tsHi = view.getUint32(o + OFFSETS.ts_ns + 4, true);
  const skbLo = view.getUint32(o + OFFSETS.skb, true);
  const skbHi = view.getUint32(o + OFFSETS.skb + 4, true);
  return {
    t: (tsHi - base.hi) * TWO32 + (tsLo - base.lo),
    point: view.getUint16(o + OFFSETS.point, true),
    skb: (skbHi & 0x1fffff) * TWO32 + skbLo,
    locLo: view.getUint32(o + OFFSETS.location, true),
    locHi: view.getUint32(o + OFFSETS.location + 4, true),
    netns: view.getUint32(o + OFFSETS.netns, true),
    ifindex: view.getUint32(o + OFFSETS.ifindex, true),
    ifindexOut: view.getUint32(o + OFFSETS.ifindex_out, true),
    reason: view.getUint32(o + OFFSETS.reason, true),
    seq: view.getUint32(o + OFFSETS.seq, true),
    ack: view.getUint32(o + OFFSETS.ack, true),
    hook: view.getUint8(o + OFFSETS.hook),
    probe: view.getUint8(o + OFFSETS.probe),
    family,
    proto: view.getUint8(o + OFFSETS.l4proto),
    flags: view.getUint8(o + OFFSETS.tcp_flags),
    ttl: view.getUint8(o + OFFSETS.ttl),
    sport: view.getUint16(o + OFFSETS.sport, true),
    dport: view.getUint16(o + OFFSETS.dport, true),
    len: view.getUint16(o + OFFSETS.len, true),
    ipId: view.getUint16(o + OFFSETS.ip_id, true),
    src: formatAddress(bytes, o + OFFSETS.saddr, family),
    dst: formatAddress(bytes, o + OFFSETS.daddr, family),
    pid: view.getUint32(o + OFFSETS.pid, true),
    oldState: view.getUint8(o + OFFSETS.old_state),
    newState: view.getUint8(o + OFFSETS.new_state),
    icmpType: view.getUint8(o + OFFSETS.icmp_type),
    icmpCode: view.getUint8(o + OFFSETS.icmp_code),
    innerProto,
    innerDst: innerProto ? formatAddress(bytes, o + OFFSETS.inner_daddr, family) : '',
    aux: view.getUint32(o + OFFSETS.aux, true),
    comm: innerProto ? '' : cString(bytes, o + OFFSETS.comm, 16),
  };
}

/** Packet bytes of --write (struct pathtrace_bytes): the IP packet from its header, as captured. */
export interface PacketBytes { data: Uint8Array; wireLen: number }

export const BYTES_HEADER = 24;

/** Decodes the packet-byte records in buf[0..len) (each padded to 8), keyed by event time. */
export function decodeBytes(buf: Uint8Array, len: number, base: ClockBase, into: Map<number, PacketBytes>): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let o = 0; o + BYTES_HEADER <= len; ) {
    const t = (view.getUint32(o + 4, true) - base.hi) * TWO32 + (view.getUint32(o, true) - base.lo);
    const caplen = view.getUint16(o + 16, true);
    const wireLen = view.getUint16(o + 18, true);
    into.set(t, { data: buf.slice(o + BYTES_HEADER, o + BYTES_HEADER + caplen), wireLen });
    o += (BYTES_HEADER + caplen + 7) & ~7;
  }
}
