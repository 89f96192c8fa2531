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
  len: number;   // transport payload
  ipId: number;
}

const u16 = (b: Uint8Array, o: number) => (b[o] << 8) | b[o + 1];
const u32 = (b: Uint8Array, o: number) => ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];

/** IP (v4 or v6) packet bytes to headers; null when they are not an IP packet. */
export function parseIp(b: Uint8Array): PacketHeaders | null {
  if (b.length < 1) return null;
  const v = b[0] >> 4;
  let family: 4 | 6, proto: number, l4: number, l4len: number, ipId = 0, src: string, dst: string;
  if (v === 4 && b.length >= 20) {
    const ihl = (b[0] & 0xf) * 4;
    family = 4; proto = b[9]; ipId = u16(b, 4);
    src = formatAddress(b, 12, 4); dst = formatAddress(b, 16, 4);
    l4 = ihl; l4len = u16(b, 2) - ihl;
  } else if (v === 6 && b.length >= 40) {
    family = 6; proto = b[6];
    src = formatAddress(b, 8, 6); dst = formatAddress(b, 24, 6);
    l4 = 40; l4len = u16(b, 4);
  } else {
    return null;
  }
  const h: PacketHeaders = { family, proto, src, dst, sport: 0, dport: 0, seq: 0, ack: 0, flags: 0, len: l4len, ipId };
  if (proto === 6 && b.length >= l4 + 14) {
    h.sport = u16(b, l4); h.dport = u16(b, l4 + 2); h.seq = u32(b, l4 + 4); h.ack = u32(b, l4 + 8);
    h.flags = b[l4 + 13];
    h.len = Math.max(0, l4len - (b[l4 + 12] >> 4) * 4);
  } else if (proto === 17 && b.length >= l4 + 4) {
    h.sport = u16(b, l4); h.dport = u16(b, l4 + 2); h.len = Math.max(0, l4len - 8);
  }
  return h;
}
