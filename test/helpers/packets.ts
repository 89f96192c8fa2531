// IP packets built byte by byte, and a raw-IP pcap of them: the corpus on which pathtrace's expression
// filter is held to tcpdump's answers.
import { addressBytes } from '../../src/address.js';

export interface PacketSpec {
  src: string; dst: string;
  proto: 'tcp' | 'udp' | 'icmp';
  sport?: number; dport?: number;
  flags?: number;        // TCP
  type?: number; code?: number; // ICMP / ICMPv6
  quoted?: Uint8Array;   // ICMP errors: the packet they quote (its first bytes)
  payload?: number;      // bytes of payload
  ttl?: number;
  fragment?: number;     // IPv4: this fragment's offset in 8-byte units (non-first fragments carry no ports)
}

const PROTO = { tcp: 6, udp: 17, icmp: 1 } as const;

/** The packet's bytes from its IP header (checksums left zero: no filter reads them). */
export function ipPacket(s: PacketSpec): Uint8Array {
  const a = addressBytes(s.src), b = addressBytes(s.dst);
  const v6 = a.family === 6;
  const proto = s.proto === 'icmp' && v6 ? 58 : PROTO[s.proto];
  const l4: number[] = [];
  const payload = new Array(s.payload ?? 0).fill(0x61);
  if (s.proto === 'tcp') {
    l4.push(s.sport! >> 8, s.sport! & 255, s.dport! >> 8, s.dport! & 255, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, s.flags ?? 0x02, 0xff, 0xff, 0, 0, 0, 0, ...payload);
  } else if (s.proto === 'udp') {
    const len = 8 + payload.length;
    l4.push(s.sport! >> 8, s.sport! & 255, s.dport! >> 8, s.dport! & 255, len >> 8, len & 255, 0, 0, ...payload);
  } else {
    l4.push(s.type ?? (v6 ? 128 : 8), s.code ?? 0, 0, 0, 0, 0, 0, 0, ...(s.quoted ?? payload));
  }
  const ttl = s.ttl ?? 64;
  let ip: number[];
  if (v6) {
    ip = [0x60, 0, 0, 0, l4.length >> 8, l4.length & 255, proto, ttl, ...a.addr, ...b.addr];
  } else {
    const total = 20 + l4.length;
    const frag = s.fragment ?? 0;
    ip = [0x45, 0, total >> 8, total & 255, 0x12, 0x34, frag >> 8, frag & 255, ttl, proto, 0, 0, ...a.addr.slice(0, 4), ...b.addr.slice(0, 4)];
  }
  return Uint8Array.from([...ip, ...l4]);
}

/** A pcap file (link type RAW) of the packets, as tcpdump -r reads it. */
export function rawPcap(packets: Uint8Array[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(101, 20); // LINKTYPE_RAW
  const parts = [head];
  packets.forEach((p, i) => {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(i, 0);
    h.writeUInt32LE(p.length, 8);
    h.writeUInt32LE(p.length, 12);
    parts.push(h, Buffer.from(p));
  });
  return Buffer.concat(parts);
}

/** Both directions of TCP, UDP and ICMP between v4 and v6 hosts, with flags, ranges, errors and fragments. */
export function packetCorpus(): Uint8Array[] {
  const out: PacketSpec[] = [];
  const pairs: [string, string][] = [['198.18.0.1', '198.18.0.2'], ['198.18.0.1', '198.19.7.9'], ['fd00:198:18::1', 'fd00:198:18::2'], ['fd00:198:18::1', 'fd00:198:18:5::9']];
  for (const [x, y] of pairs) {
    for (const [src, dst] of [[x, y], [y, x]]) {
      for (const [sport, dport] of [[40000, 3306], [3306, 40000], [53, 53], [40001, 80], [8001, 22]]) {
        for (const flags of [0x02, 0x12, 0x10, 0x18, 0x04, 0x11]) out.push({ src, dst, proto: 'tcp', sport, dport, flags, payload: flags === 0x18 ? 100 : 0 });
        out.push({ src, dst, proto: 'udp', sport, dport, payload: 30 });
      }
      out.push({ src, dst, proto: 'icmp', ttl: 1 });
      const quoted = ipPacket({ src: dst, dst: src, proto: 'udp', sport: 40000, dport: 53, payload: 0 });
      const v6 = src.includes(':');
      out.push({ src, dst, proto: 'icmp', type: v6 ? 1 : 3, code: v6 ? 4 : 3, quoted });
      out.push({ src, dst, proto: 'icmp', type: v6 ? 3 : 11, code: 0, quoted });
      if (!v6) out.push({ src, dst, proto: 'udp', sport: 40000, dport: 53, payload: 600, fragment: 0x20b9 });
      out.push({ src, dst, proto: 'udp', sport: 5000, dport: 5001, payload: 1200 });
    }
  }
  return out.map(ipPacket);
}
