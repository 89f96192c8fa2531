// Reads pcap and pcapng files (tcpdump's, Wireshark's, pathtrace's own) into
// frames whose data starts at the IP header. Refuses empty, truncated and
// foreign files with one clear sentence. A file is read through a window of
// its own: a capture of any size costs the frames kept, not its size.
import { fstatSync, readSync } from 'node:fs';
import { EXPR_WINDOW } from '../trace/record.js';

export class CaptureError extends Error {}

export interface Frame {
  index: number; // 1-based, as tshark numbers them
  timeNs: bigint; // since the epoch
  ifname?: string; // pcapng interface name
  /** From the IP header, its first KEPT_BYTES at most (the headers the comparison reads); null for non-IP
   *  frames or unknown link types. */
  data: Uint8Array | null;
  comments: string[];
}

const ETHERTYPE_IP = 0x0800,
  ETHERTYPE_IPV6 = 0x86dd,
  ETHERTYPE_VLAN = [0x8100, 0x88a8];

/** Strips the link layer: Ethernet (with VLAN tags), Linux cooked v1/v2, raw IP, BSD loopback. */
export function ipPayload(linktype: number, d: Uint8Array): Uint8Array | null {
  const ip = (type: number, off: number) => (type === ETHERTYPE_IP || type === ETHERTYPE_IPV6 ? d.subarray(off) : null);
  const view = new DataView(d.buffer, d.byteOffset, d.byteLength);
  const u16 = (off: number) => view.getUint16(off); // big-endian; each within a length checked before it
  switch (linktype) {
    case 1: {
      // EN10MB
      let off = 12;
      while (d.length >= off + 2 && ETHERTYPE_VLAN.includes(u16(off))) off += 4;
      return d.length >= off + 2 ? ip(u16(off), off + 2) : null;
    }
    case 113:
      return d.length >= 16 ? ip(u16(14), 16) : null; // LINUX_SLL
    case 276:
      return d.length >= 20 ? ip(u16(0), 20) : null; // LINUX_SLL2
    case 101:
    case 228:
    case 229:
    case 12:
    case 14:
      return d; // raw IPv4/IPv6
    case 0:
      return d.subarray(4); // BSD loopback
    default:
      return null;
  }
}

/** Bytes kept of a frame: those the kernel's expression reads (the headers the comparison reads fit), so that
 *  compare's run of the expression on a frame answers as the kernel did on the packet. */
export const KEPT_BYTES = EXPR_WINDOW;
/** Options read of a block at most: pathtrace's comments are a few KiB; a bigger region is cut here. */
const OPTIONS_MAX = 1 << 20;
const WINDOW = 1 << 20;
/** A link layer's length at most (Ethernet with two VLAN tags, Linux cooked v2). */
const LINK_MAX = 32;

/** Bytes by position. at() returns exactly len bytes, valid until the next call. */
export interface ByteSource {
  readonly size: number;
  at(pos: number, len: number): Buffer;
}

export function bufferSource(b: Buffer): ByteSource {
  return { size: b.length, at: (pos, len) => b.subarray(pos, pos + len) };
}

/** An open file, read through a window of 1 MiB; progress(pos, size) is told at each refill. */
export function fileSource(fd: number, name: string, progress?: (pos: number, size: number) => void): ByteSource {
  const size = fstatSync(fd).size;
  let buf = Buffer.alloc(WINDOW),
    start = 0,
    end = 0;
  return {
    size,
    at(pos, len) {
      if (pos < start || pos + len > end) {
        if (len > buf.length) buf = Buffer.alloc(len); // callers bound len (KEPT_BYTES, OPTIONS_MAX, headers)
        let got = 0;
        for (let n = -1; n !== 0 && got < buf.length && pos + got < size; got += n)
          n = readSync(fd, buf, got, buf.length - got, pos + got);
        start = pos;
        end = pos + got;
        progress?.(pos, size);
        if (got < len) throw new CaptureError(`${name} shrank while it was read`);
      }
      return buf.subarray(pos - start, pos - start + len);
    },
  };
}

/** At most max frames are kept; the rest are only checked and counted (beyond). */
export interface FrameLimit {
  max: number;
  beyond: number;
}

/** A frame's IP bytes, copied: the source's buffer is reused. */
function kept(linktype: number, d: Buffer): Uint8Array | null {
  const ip = ipPayload(linktype, d);
  return ip && new Uint8Array(ip.subarray(0, KEPT_BYTES));
}

function* pcapFrames(src: ByteSource, name: string, limit: FrameLimit): Generator<Frame> {
  if (src.size < 24) throw new CaptureError(`${name} is truncated: its pcap header is cut short`);
  const magic = src.at(0, 4).readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const nano = magic === 0xa1b23c4d || magic === 0x4d3cb2a1;
  const r32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  // The link layer is one byte-ordered word's low bits (the high ones hold FCS flags).
  const linktype = r32(src.at(20, 4), 0) & 0x0fffffff;
  let n = 0;
  for (let o = 24; o < src.size;) {
    if (o + 16 > src.size)
      throw new CaptureError(`${name} is truncated: packet ${n + 1} is cut short (${n} complete packets before it)`);
    const h = src.at(o, 16);
    const sec = r32(h, 0),
      frac = r32(h, 4),
      incl = r32(h, 8);
    if (o + 16 + incl > src.size)
      throw new CaptureError(`${name} is truncated: packet ${n + 1} is cut short (${n} complete packets before it)`);
    n++;
    if (n > limit.max) limit.beyond++;
    else
      yield {
        index: n,
        timeNs: BigInt(sec) * 1_000_000_000n + BigInt(frac) * (nano ? 1n : 1000n),
        data: kept(linktype, src.at(o + 16, Math.min(incl, KEPT_BYTES + LINK_MAX))),
        comments: [],
      };
    o += 16 + incl;
  }
}

interface Iface {
  linktype: number;
  name?: string;
  tsPerSec: bigint;
}

function readOptions(b: Buffer, le: boolean): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let o = 0; o + 4 <= b.length;) {
    const code = le ? b.readUInt16LE(o) : b.readUInt16BE(o);
    const len = le ? b.readUInt16LE(o + 2) : b.readUInt16BE(o + 2);
    if (code === 0) break;
    out.push([code, Buffer.from(b.subarray(o + 4, o + 4 + len))]);
    o += 4 + ((len + 3) & ~3);
  }
  return out;
}

function* pcapngFrames(src: ByteSource, name: string, limit: FrameLimit): Generator<Frame> {
  let ifaces: Iface[] = [];
  let le = true,
    n = 0;
  const options = (from: number, to: number) =>
    readOptions(src.at(from, Math.max(0, Math.min(to - from, OPTIONS_MAX))), le);
  for (let o = 0; o < src.size;) {
    if (o + 12 > src.size) throw new CaptureError(`${name} is truncated: a block is cut short after ${n} packets`);
    let h = src.at(o, 12);
    if (h.readUInt32LE(0) === 0x0a0d0d0a) {
      const bom = h.readUInt32LE(8);
      if (bom !== 0x1a2b3c4d && bom !== 0x4d3c2b1a)
        throw new CaptureError(`${name} is not a valid pcapng file: bad byte-order magic`);
      le = bom === 0x1a2b3c4d;
      ifaces = [];
    }
    const r32 = (b: Buffer, p: number) => (le ? b.readUInt32LE(p) : b.readUInt32BE(p));
    const btype = r32(h, 0),
      len = r32(h, 4);
    if (len < 12 || o + len > src.size)
      throw new CaptureError(`${name} is truncated: a block is cut short after ${n} packets`);
    if (btype === 1) {
      // interface description
      if (len < 20)
        throw new CaptureError(`${name} is not a valid pcapng file: an interface block is shorter than its header`);
      const linktype = le ? src.at(o + 8, 2).readUInt16LE(0) : src.at(o + 8, 2).readUInt16BE(0);
      const opts = options(o + 16, o + len - 4);
      const tsresol = opts.find(([c]) => c === 9)?.[1][0] ?? 6;
      const tsPerSec = tsresol & 0x80 ? 2n ** BigInt(tsresol & 0x7f) : 10n ** BigInt(tsresol);
      ifaces.push({ linktype, name: opts.find(([c]) => c === 2)?.[1].toString('utf8'), tsPerSec });
    } else if (btype === 6 || btype === 3) {
      // enhanced / simple packet
      const enhanced = btype === 6;
      if (len < (enhanced ? 32 : 16))
        throw new CaptureError(`${name} is not a valid pcapng file: packet block ${n + 1} is shorter than its header`);
      h = src.at(o, enhanced ? 28 : 12);
      const iface = ifaces[enhanced ? r32(h, 8) : 0];
      if (!iface) throw new CaptureError(`${name} is not a valid pcapng file: a packet names an undeclared interface`);
      n++;
      if (n > limit.max) {
        limit.beyond++;
        o += len;
        continue;
      }
      const dataAt = o + (enhanced ? 28 : 12);
      // Within the block whatever the length field says (a huge one would also overflow `& ~3` below).
      const caplen = Math.min(enhanced ? r32(h, 20) : r32(h, 8), len - (dataAt - o) - 4);
      const ts = enhanced ? (BigInt(r32(h, 12)) << 32n) | BigInt(r32(h, 16)) : 0n;
      const data = kept(iface.linktype, src.at(dataAt, Math.min(caplen, KEPT_BYTES + LINK_MAX)));
      const comments = enhanced
        ? options(dataAt + ((caplen + 3) & ~3), o + len - 4)
            .filter(([c]) => c === 1)
            .map(([, v]) => v.toString('utf8'))
        : [];
      yield { index: n, timeNs: (ts * 1_000_000_000n) / iface.tsPerSec, ifname: iface.name, data, comments };
    }
    o += len;
  }
}

/** The frames of a pcap or pcapng file as they are read, the first limit.max of them (all by default). */
export function captureFrames(
  src: ByteSource,
  name: string,
  limit: FrameLimit = { max: Infinity, beyond: 0 },
): Generator<Frame> {
  if (src.size === 0) throw new CaptureError(`${name} is empty`);
  if (src.size < 4) throw new CaptureError(`${name} is not a pcap or pcapng file (only ${src.size} bytes)`);
  const head = src.at(0, 4);
  const magic = head.readUInt32LE(0);
  if ([0xa1b2c3d4, 0xa1b23c4d, 0xd4c3b2a1, 0x4d3cb2a1].includes(magic)) return pcapFrames(src, name, limit);
  if (magic === 0x0a0d0d0a) return pcapngFrames(src, name, limit);
  throw new CaptureError(`${name} is not a pcap or pcapng file (it starts with ${head.toString('hex')})`);
}

/** The frames of a capture in memory or of a ByteSource, collected. */
export function readCapture(b: Buffer | ByteSource, name: string, limit?: FrameLimit): Frame[] {
  return [...captureFrames(Buffer.isBuffer(b) ? bufferSource(b) : b, name, limit)];
}
