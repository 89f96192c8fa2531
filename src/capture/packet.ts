// The headers of a captured IP packet: enough to match it to a journey. Pure.
import { formatAddress } from '../trace/address.js';

export interface PacketHeaders {
  family: 4 | 6;
  proto: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  flags: number;
  len: number; // transport payload
  ipId: number;
}

/** IP (v4 or v6) packet bytes to headers; null when they are not an IP packet. */
export function parseIp(b: Uint8Array): PacketHeaders | null {
  if (b.length < 1) return null;
  // Big-endian reads, each within a length checked before it.
  const d = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const v = d.getUint8(0) >> 4;
  let family: 4 | 6,
    proto: number,
    l4: number,
    l4len: number,
    ipId = 0,
    src: string,
    dst: string;
  if (v === 4 && b.length >= 20) {
    const ihl = (d.getUint8(0) & 0xf) * 4;
    family = 4;
    proto = d.getUint8(9);
    ipId = d.getUint16(4);
    src = formatAddress(b, 12, 4);
    dst = formatAddress(b, 16, 4);
    l4 = ihl;
    l4len = d.getUint16(2) - ihl;
  } else if (v === 6 && b.length >= 40) {
    family = 6;
    proto = d.getUint8(6);
    src = formatAddress(b, 8, 6);
    dst = formatAddress(b, 24, 6);
    l4 = 40;
    l4len = d.getUint16(4);
  } else {
    return null;
  }
  const h: PacketHeaders = { family, proto, src, dst, sport: 0, dport: 0, seq: 0, ack: 0, flags: 0, len: l4len, ipId };
  if (proto === 6 && b.length >= l4 + 14) {
    h.sport = d.getUint16(l4);
    h.dport = d.getUint16(l4 + 2);
    h.seq = d.getUint32(l4 + 4);
    h.ack = d.getUint32(l4 + 8);
    h.flags = d.getUint8(l4 + 13);
    h.len = Math.max(0, l4len - (d.getUint8(l4 + 12) >> 4) * 4);
  } else if (proto === 17 && b.length >= l4 + 4) {
    h.sport = d.getUint16(l4);
    h.dport = d.getUint16(l4 + 2);
    h.len = Math.max(0, l4len - 8);
  }
  return h;
}
