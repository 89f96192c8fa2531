// Reads pcap and pcapng files (tcpdump's, Wireshark's, pathtrace's own) into
// frames whose data starts at the IP header. Refuses empty, truncated and
// foreign files with one clear sentence.
export class CaptureError extends Error {}

export interface Frame {
  index: number;         // 1-based, as tshark numbers them
  timeNs: bigint;        // since the epoch
  ifname?: string;       // pcapng interface name
  data: Uint8Array | null; // from the IP header; null for non-IP frames or unknown link types
  comments: string[];
}

const ETHERTYPE_IP = 0x0800, ETHERTYPE_IPV6 = 0x86dd, ETHERTYPE_VLAN = [0x8100, 0x88a8];

/** Strips the link layer: Ethernet (with VLAN tags), Linux cooked v1/v2, raw IP, BSD loopback. */
export function ipPayload(linktype: number, d: Uint8Array): Uint8Array | null {
  const ip = (type: number, off: number) => (type === ETHERTYPE_IP || type === ETHERTYPE_IPV6 ? d.subarray(off) : null);
  switch (linktype) {
    case 1: { // EN10MB
      let off = 12;
      while (d.length >= off + 2 && ETHERTYPE_VLAN.includes((d[off] << 8) | d[off + 1])) off += 4;
      return d.length >= off + 2 ? ip((d[off] << 8) | d[off + 1], off + 2) : null;
    }
    case 113: return d.length >= 16 ? ip((d[14] << 8) | d[15], 16) : null;  // LINUX_SLL
    case 276: return d.length >= 20 ? ip((d[0] << 8) | d[1], 20) : null;    // LINUX_SLL2
    case 101: case 228: case 229: case 12: case 14: return d;               // raw IPv4/IPv6
    case 0: return d.subarray(4);                                           // BSD loopback
    default: return null;
  }
}

/** At most max frames are kept; the rest are only checked and counted (beyond): a huge capture costs the
 *  frames compared, not one object per frame. */
export interface FrameLimit { max: number; beyond: number }

function readPcap(b: Buffer, name: string, limit: FrameLimit): Frame[] {
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const nano = magic === 0xa1b23c4d || magic === 0x4d3cb2a1;
  if (b.length < 24) throw new CaptureError(`${name} is truncated: its pcap header is cut short`);
  const r32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const linktype = r32(20) & 0x0fffffff;
  const frames: Frame[] = [];
  for (let o = 24; o < b.length; ) {
    if (o + 16 > b.length) throw new CaptureError(`${name} is truncated: packet ${frames.length + 1} is cut short (${frames.length} complete packets before it)`);
    const sec = r32(o), frac = r32(o + 4), incl = r32(o + 8);
    if (o + 16 + incl > b.length) throw new CaptureError(`${name} is truncated: packet ${frames.length + limit.beyond + 1} is cut short (${frames.length + limit.beyond} complete packets before it)`);
    if (frames.length >= limit.max) {
      limit.beyond++;
      o += 16 + incl;
      continue;
    }
    const data = new Uint8Array(b.buffer, b.byteOffset + o + 16, incl);
    frames.push({
      index: frames.length + 1, timeNs: BigInt(sec) * 1_000_000_000n + BigInt(frac) * (nano ? 1n : 1000n),
      data: ipPayload(linktype, data), comments: [],
    });
    o += 16 + incl;
  }
  return frames;
}

interface Iface { linktype: number; name?: string; tsPerSec: bigint }

function readOptions(b: Buffer, start: number, end: number, le: boolean): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let o = start; o + 4 <= end; ) {
    const code = le ? b.readUInt16LE(o) : b.readUInt16BE(o);
    const len = le ? b.readUInt16LE(o + 2) : b.readUInt16BE(o + 2);
    if (code === 0) break;
    out.push([code, b.subarray(o + 4, o + 4 + len)]);
    o += 4 + ((len + 3) & ~3);
  }
  return out;
}

function readPcapng(b: Buffer, name: string, limit: FrameLimit): Frame[] {
  const frames: Frame[] = [];
  let ifaces: Iface[] = [];
  let le = true;
  for (let o = 0; o < b.length; ) {
    if (o + 12 > b.length) throw new CaptureError(`${name} is truncated: a block is cut short after ${frames.length} packets`);
    const type = b.readUInt32LE(o);
    if (type === 0x0a0d0d0a) {
      const bom = b.readUInt32LE(o + 8);
      if (bom !== 0x1a2b3c4d && bom !== 0x4d3c2b1a) throw new CaptureError(`${name} is not a valid pcapng file: bad byte-order magic`);
      le = bom === 0x1a2b3c4d;
      ifaces = [];
    }
    const r32 = (p: number) => (le ? b.readUInt32LE(p) : b.readUInt32BE(p));
    const btype = r32(o), len = r32(o + 4);
    if (len < 12 || o + len > b.length) throw new CaptureError(`${name} is truncated: a block is cut short after ${frames.length} packets`);
    if (btype === 1) { // interface description
      if (len < 20) throw new CaptureError(`${name} is not a valid pcapng file: an interface block is shorter than its header`);
      const opts = readOptions(b, o + 16, o + len - 4, le);
      const tsresol = opts.find(([c]) => c === 9)?.[1][0] ?? 6;
      const tsPerSec = tsresol & 0x80 ? 2n ** BigInt(tsresol & 0x7f) : 10n ** BigInt(tsresol);
      ifaces.push({
        linktype: le ? b.readUInt16LE(o + 8) : b.readUInt16BE(o + 8),
        name: opts.find(([c]) => c === 2)?.[1].toString('utf8'), tsPerSec,
      });
    } else if (btype === 6 || btype === 3) { // enhanced / simple packet
      const enhanced = btype === 6;
      if (len < (enhanced ? 32 : 16)) throw new CaptureError(`${name} is not a valid pcapng file: packet block ${frames.length + 1} is shorter than its header`);
      const iface = ifaces[enhanced ? r32(o + 8) : 0];
      if (!iface) throw new CaptureError(`${name} is not a valid pcapng file: a packet names an undeclared interface`);
      if (frames.length >= limit.max) {
        limit.beyond++;
        o += len;
        continue;
      }
      const dataAt = o + (enhanced ? 28 : 12);
      // Within the block whatever the length field says (a huge one would also overflow `& ~3` below).
      const caplen = Math.min(enhanced ? r32(o + 20) : r32(o + 8), len - (dataAt - o) - 4);
      const raw = new Uint8Array(b.buffer, b.byteOffset + dataAt, caplen);
      const ts = enhanced ? (BigInt(r32(o + 12)) << 32n) | BigInt(r32(o + 16)) : 0n;
      const comments = enhanced
        ? readOptions(b, dataAt + ((caplen + 3) & ~3), o + len - 4, le).filter(([c]) => c === 1).map(([, v]) => v.toString('utf8'))
        : [];
      frames.push({
        index: frames.length + 1, timeNs: (ts * 1_000_000_000n) / iface.tsPerSec, ifname: iface.name,
        data: ipPayload(iface.linktype, raw), comments,
      });
    }
    o += len;
  }
  return frames;
}

/** Frames of a pcap or pcapng file, the first limit.max of them (all by default). */
export function readCapture(b: Buffer, name: string, limit: FrameLimit = { max: Infinity, beyond: 0 }): Frame[] {
  if (b.length === 0) throw new CaptureError(`${name} is empty`);
  if (b.length < 4) throw new CaptureError(`${name} is not a pcap or pcapng file (only ${b.length} bytes)`);
  const magic = b.readUInt32LE(0);
  if ([0xa1b2c3d4, 0xa1b23c4d, 0xd4c3b2a1, 0x4d3cb2a1].includes(magic)) return readPcap(b, name, limit);
  if (magic === 0x0a0d0d0a) return readPcapng(b, name, limit);
  throw new CaptureError(`${name} is not a pcap or pcapng file (it starts with ${b.subarray(0, 4).toString('hex')})`);
}
