// Decoder for struct pathtrace_record (bpf/record.h). Its layout, the point table and the constants come from
// record.generated.ts, which the build writes from record.h (scripts/generate-record-ts.mjs).
import { formatAddress } from './address.js';
import {
  BYTES_HEADER,
  BYTES_OFFSETS,
  OFFSETS,
  RECORD_FIELDS,
  RECORD_SIZE,
  type RecordField,
} from './record.generated.js';

export * from './record.generated.js';

export const IPPROTO = { ICMP: 1, TCP: 6, UDP: 17, ICMPV6: 58 } as const;
/** The names pathtrace gives the protocols it follows (its --json records' `proto`), by number. */
export const PROTO_NAMES: Readonly<Record<number, string>> = { 6: 'tcp', 17: 'udp', 1: 'icmp', 58: 'icmpv6' };

/** One decoded record. Times are ns since the trace's clock base. */
export interface TraceEvent {
  readonly t: number;
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
  /** kfree_skb's way-out drops (bpf/record.h): the length its route's MTU was held against. */
  ipLen: number;
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
export interface ClockBase {
  hi: number;
  lo: number;
}

export function clockBase(monotonicNs: bigint): ClockBase {
  return { hi: Number(monotonicNs >> 32n), lo: Number(monotonicNs & 0xffffffffn) };
}

function cString(bytes: Uint8Array, off: number, max: number): string {
  let end = off;
  while (end < off + max && bytes[end] !== 0) end++;
  return end === off ? '' : Buffer.from(bytes.buffer, bytes.byteOffset + off, end - off).toString('latin1');
}

/**
 * One record of a batch, read in place: a cursor moved from record to record,
 * so that decoding allocates nothing per event. Whoever keeps an event beyond
 * the sink call must copy it (snapshotEvent). Addresses become strings only
 * when asked for, through a bounded cache.
 */
export class RecordView implements TraceEvent {
  private view: DataView;
  private o = 0;
  // Names the session resolves per event (NamedEvent): reset on each move.
  location?: string;
  reasonName?: string;
  priority?: number;
  bytes?: PacketBytes;

  constructor(
    private bytesOf: Uint8Array,
    private readonly base: ClockBase,
  ) {
    this.view = new DataView(bytesOf.buffer, bytesOf.byteOffset, bytesOf.byteLength);
  }

  // Read on every move: the correlator asks for these several times per event.
  t = 0;
  point = 0;
  skb = 0;
  netns = 0;
  hook = 0;
  probe = 0;
  family = 0;
  proto = 0;
  flags = 0;
  seq = 0;
  ack = 0;
  sport = 0;
  dport = 0;
  len = 0;

  at(o: number): this {
    this.o = o;
    this.location = this.reasonName = this.priority = this.bytes = undefined;
    this.t = (this.u32(OFFSETS.ts_ns + 4) - this.base.hi) * TWO32 + (this.u32(OFFSETS.ts_ns) - this.base.lo);
    this.point = this.u16(OFFSETS.point);
    this.skb = (this.u32(OFFSETS.skb + 4) & 0x1fffff) * TWO32 + this.u32(OFFSETS.skb);
    this.netns = this.u32(OFFSETS.netns);
    this.hook = this.u8(OFFSETS.hook);
    this.probe = this.u8(OFFSETS.probe);
    this.family = this.u8(OFFSETS.family);
    this.proto = this.u8(OFFSETS.l4proto);
    this.flags = this.u8(OFFSETS.tcp_flags);
    this.seq = this.u32(OFFSETS.seq);
    this.ack = this.u32(OFFSETS.ack);
    this.sport = this.u16(OFFSETS.sport);
    this.dport = this.u16(OFFSETS.dport);
    this.len = this.u16(OFFSETS.len);
    return this;
  }

  private u8(f: number): number {
    return this.view.getUint8(this.o + f);
  }
  private u16(f: number): number {
    return this.view.getUint16(this.o + f, true);
  }
  private u32(f: number): number {
    return this.view.getUint32(this.o + f, true);
  }

  get locLo(): number {
    return this.u32(OFFSETS.location);
  }
  get locHi(): number {
    return this.u32(OFFSETS.location + 4);
  }
  get ifindex(): number {
    return this.u32(OFFSETS.ifindex);
  }
  get ifindexOut(): number {
    return this.u32(OFFSETS.ifindex_out);
  }
  get reason(): number {
    return this.u32(OFFSETS.reason);
  }
  get ttl(): number {
    return this.u8(OFFSETS.ttl);
  }
  get ipId(): number {
    return this.u16(OFFSETS.ip_id);
  }
  get src(): string {
    return cachedAddress(this.bytesOf, this.view, this.o + OFFSETS.saddr, this.family);
  }
  get dst(): string {
    return cachedAddress(this.bytesOf, this.view, this.o + OFFSETS.daddr, this.family);
  }
  get pid(): number {
    return this.u32(OFFSETS.pid);
  }
  get oldState(): number {
    return this.u8(OFFSETS.old_state);
  }
  get newState(): number {
    return this.u8(OFFSETS.new_state);
  }
  get icmpType(): number {
    return this.u8(OFFSETS.icmp_type);
  }
  get icmpCode(): number {
    return this.u8(OFFSETS.icmp_code);
  }
  get innerProto(): number {
    return this.u8(OFFSETS.inner_proto);
  }
  get innerDst(): string {
    return this.innerProto ? cachedAddress(this.bytesOf, this.view, this.o + OFFSETS.inner_daddr, this.family) : '';
  }
  get aux(): number {
    return this.u32(OFFSETS.aux);
  }
  get ipLen(): number {
    return this.u16(OFFSETS.ip_len);
  }
  get comm(): string {
    return this.innerProto ? '' : cString(this.bytesOf, this.o + OFFSETS.comm, 16);
  }
  /** A number that changes when the packet's addresses or ports do (NAT), without making strings. */
  get tupleHash(): number {
    let h = (this.u16(OFFSETS.sport) << 16) ^ this.u16(OFFSETS.dport);
    for (let i = 0; i < 16; i += 4)
      h = Math.imul(h ^ this.u32(OFFSETS.saddr + i), 0x9e3779b1) ^ this.u32(OFFSETS.daddr + i);
    return h >>> 0;
  }
}

/** A plain copy of an event, to keep beyond the sink call. */
export function snapshotEvent<E extends TraceEvent>(e: E): E {
  const out: Record<string, unknown> = {};
  for (const k of EVENT_FIELDS) out[k] = (e as unknown as Record<string, unknown>)[k];
  for (const k of ['location', 'reasonName', 'priority', 'bytes']) {
    const v = (e as unknown as Record<string, unknown>)[k];
    if (v !== undefined) out[k] = v;
  }
  return out as unknown as E;
}

/**
 * What each field of the record is called in a TraceEvent, in the order of a snapshot's keys (and so of events
 * recorded by PATHTRACE_RECORD_EVENTS). tsc fails here when a field of bpf/record.h has no entry, so that a new
 * field cannot be left out of snapshots.
 */
const EVENT_NAMES = {
  ts_ns: ['t'],
  point: ['point'],
  skb: ['skb'],
  location: ['locLo', 'locHi'],
  netns: ['netns'],
  ifindex: ['ifindex'],
  ifindex_out: ['ifindexOut'],
  reason: ['reason'],
  seq: ['seq'],
  ack: ['ack'],
  hook: ['hook'],
  probe: ['probe'],
  family: ['family'],
  l4proto: ['proto'],
  tcp_flags: ['flags'],
  ttl: ['ttl'],
  sport: ['sport'],
  dport: ['dport'],
  len: ['len'],
  ip_id: ['ipId'],
  saddr: ['src'],
  daddr: ['dst'],
  pid: ['pid'],
  old_state: ['oldState'],
  new_state: ['newState'],
  icmp_type: ['icmpType'],
  icmp_code: ['icmpCode'],
  inner_proto: ['innerProto'],
  inner_daddr: ['innerDst'],
  ip_len: ['ipLen'],
  aux: ['aux'],
  comm: ['comm'],
  pad: [],
} as const satisfies { readonly [F in RecordField]: readonly (keyof TraceEvent)[] };

const EVENT_FIELDS: readonly (keyof TraceEvent)[] = Object.values(EVENT_NAMES).flat();

/** Raw values of a record's fields, by their names in bpf/record.h: numbers (a bigint for 64 bits), bytes for an
 *  array. */
export type RecordValues = Partial<Record<RecordField, number | bigint | ArrayLike<number>>>;

/** Writes one record at `at` by the layout: the decoder's inverse, for synthetic events (tests, the benchmark),
 *  so that a field added to record.h needs nothing there. Fields not given stay as they are (zero). */
export function writeRecord(buf: Uint8Array, at: number, values: RecordValues): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (const f of RECORD_FIELDS) {
    const v = values[f.name];
    if (v === undefined) continue;
    const o = at + f.offset;
    if (typeof v === 'object') buf.set(v, o);
    else if (f.size === 8) view.setBigUint64(o, BigInt(v), true);
    else if (f.size === 4) view.setUint32(o, Number(v), true);
    else if (f.size === 2) view.setUint16(o, Number(v), true);
    else view.setUint8(o, Number(v));
  }
}

// Addresses repeat: the same few hosts. A bounded cache saves a string per event.
const v4Cache = new Map<number, string>();
const v6Cache = new Map<string, string>();

/** view: b's bytes as a DataView. */
function cachedAddress(b: Uint8Array, view: DataView, off: number, family: number): string {
  if (family === 4) {
    const k = view.getInt32(off); // a small-integer key
    let s = v4Cache.get(k);
    if (s === undefined) {
      if (v4Cache.size > 65536) v4Cache.clear();
      v4Cache.set(k, (s = formatAddress(b, off, 4)));
    }
    return s;
  }
  if (family !== 6) return '';
  const k = String.fromCharCode(...b.subarray(off, off + 16));
  let s = v6Cache.get(k);
  if (s === undefined) {
    if (v6Cache.size > 65536) v6Cache.clear();
    v6Cache.set(k, (s = formatAddress(b, off, 6)));
  }
  return s;
}

/** Decodes count records from buf, calling sink for each with the same moving view. */
export function decodeRecords(buf: Uint8Array, count: number, base: ClockBase, sink: (e: RecordView) => void): void {
  const view = new RecordView(buf, base);
  for (let i = 0; i < count; i++) sink(view.at(i * RECORD_SIZE));
}

/** Packet bytes of --write (struct pathtrace_bytes): the IP packet from its header, as captured. */
export interface PacketBytes {
  data: Uint8Array;
  wireLen: number;
  skb: number;
}

/** Decodes the packet-byte records in buf[0..len) (each padded to 8), keyed by event time. */
export function decodeBytes(buf: Uint8Array, len: number, base: ClockBase, into: Map<number, PacketBytes>): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const B = BYTES_OFFSETS;
  for (let o = 0; o + BYTES_HEADER <= len;) {
    const t = (view.getUint32(o + B.ts_ns + 4, true) - base.hi) * TWO32 + (view.getUint32(o + B.ts_ns, true) - base.lo);
    const caplen = view.getUint16(o + B.caplen, true);
    const wireLen = view.getUint16(o + B.wirelen, true);
    const skb = (view.getUint32(o + B.skb + 4, true) & 0x1fffff) * TWO32 + view.getUint32(o + B.skb, true); // as RecordView.skb
    into.set(t, { data: buf.slice(o + BYTES_HEADER, o + BYTES_HEADER + caplen), wireLen, skb });
    o += (BYTES_HEADER + caplen + 7) & ~7;
  }
}
