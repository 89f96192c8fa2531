// The user's tcpdump filter expression. libpcap compiles it for raw IP, exactly as tcpdump does (native
// compileExpression); the program is checked for what the kernel interpreter (bpf/expression.bpf.h) runs,
// and run here too on captured frames (compare), by the same classic BPF rules.
import { addressBytes } from './address.js';
import { EXPR_MAX_INSNS, EXPR_WINDOW } from './record.js';

/** A compiled expression: its text as the user gave it, and classic BPF (8 bytes per instruction, as
 *  struct sock_filter) for a packet that starts at its IP header. */
export interface Expression {
  text: string;
  program: Uint8Array;
}

/** The libpcap names tried, in order: RHEL and Amazon Linux, Debian and Ubuntu, a development link. */
export const LIBPCAP_NAMES = ['libpcap.so.1', 'libpcap.so.0.8', 'libpcap.so'];

/** Instructions the kernel runs at most (bpf/record.h's PT_EXPR_MAX_INSNS). */
export const MAX_INSNS = EXPR_MAX_INSNS;

export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/** Instructions as a --json trace's ready record holds them ([code, jt, jf, k], as tcpdump -ddd). */
export const insnsOf = (bpf: readonly (readonly [number, number, number, number])[]): Insn[] =>
  bpf.map(([code, jt, jf, k]) => ({ code, jt, jf, k }));

export function instructions(program: Uint8Array): Insn[] {
  const v = new DataView(program.buffer, program.byteOffset, program.byteLength);
  const out: Insn[] = [];
  for (let o = 0; o + 8 <= program.byteLength; o += 8) {
    out.push({ code: v.getUint16(o, true), jt: v.getUint8(o + 2), jf: v.getUint8(o + 3), k: v.getUint32(o + 4, true) });
  }
  return out;
}

const CLASS = (c: number) => c & 0x07;
const MODE = (c: number) => c & 0xe0;
const SKF_AD_OFF = 0xfffff000; // Linux's ancillary data (the skb's metadata, not its bytes)

/** The pcap-filter primitives libpcap compiles to a load of Linux's ancillary data, by its offset (linux/filter.h). */
const METADATA_PRIMITIVES: Record<number, string> = {
  4: "'inbound' and 'outbound' (the packet's direction; each step of a journey says in or out)",
  8: "'ifindex' (the packet's interface; --netns and the steps' devices say where it was)",
  44: "'vlan' (the packet's VLAN tag)",
  48: "'vlan' (the packet's VLAN tag)",
  60: "'vlan' (the packet's VLAN tag)",
};

/** Why the kernel program cannot run this program, or null: too long, a read of the skb's metadata, or a read
 *  past the bytes the probes hold (false on every packet, where tcpdump would answer). Pure. */
export function programRefusal(program: Uint8Array, maxInsns: number, window = EXPR_WINDOW): string | null {
  const insns = instructions(program);
  if (insns.length > maxInsns) {
    return (
      `it compiles to ${insns.length} classic BPF instructions, and pathtrace runs at most ${maxInsns} in the kernel: ` +
      'shorten it, or filter with --port and --host'
    );
  }
  for (const i of insns) {
    const cls = CLASS(i.code),
      mode = MODE(i.code);
    if ((cls !== 0x00 && cls !== 0x01) || (mode !== 0x20 && mode !== 0x40 && mode !== 0xa0)) continue;
    if (i.k >= SKF_AD_OFF) {
      const primitive = METADATA_PRIMITIVES[i.k - SKF_AD_OFF] ?? 'a primitive of it';
      return `${primitive} reads packet metadata (a Linux BPF extension), which pathtrace's probes do not have`;
    }
    // Bytes from the IP header: an absolute read's last byte is known; an indexed one (X + k, X a header's
    // length) reads from k on at least.
    const size = mode === 0xa0 || (i.code & 0x18) === 0x10 ? 1 : (i.code & 0x18) === 0x08 ? 2 : 4;
    if (i.k + size > window) {
      return (
        `it reads byte ${i.k + size - 1} or beyond (counted from the IP header), and pathtrace's probes hold a ` +
        `packet's first ${window} bytes: a test that far in cannot be evaluated`
      );
    }
  }
  return null;
}

/** Whether the packet (from its IP header; wirelen: its whole length) passes the program: classic BPF as
 *  the kernel runs it, a load beyond the bytes held failing the filter. Pure. */
export function runExpression(program: Uint8Array | Insn[], pkt: Uint8Array, wirelen = ipLength(pkt)): boolean {
  const insns = program instanceof Uint8Array ? instructions(program) : program;
  const mem = new Uint32Array(16);
  const len = Math.min(pkt.length, wirelen);
  let a = 0,
    x = 0;
  const load = (off: number, size: number): number | null => {
    if (off + size > len) return null;
    let v = 0;
    for (const b of pkt.subarray(off, off + size)) v = v * 256 + b;
    return v >>> 0;
  };
  for (let pc = 0; pc < insns.length;) {
    const { code, jt, jf, k } = insns[pc++]!;
    switch (CLASS(code)) {
      case 0x00:
      case 0x01: {
        // ld, ldx
        const size = (code & 0x18) === 0x00 ? 4 : (code & 0x18) === 0x08 ? 2 : 1;
        let v: number | null;
        switch (MODE(code)) {
          case 0x00:
            v = k;
            break;
          case 0x80:
            v = wirelen;
            break;
          case 0x60:
            v = mem[k & 15]!;
            break;
          case 0x20:
            v = load(k, size);
            break;
          case 0x40:
            v = load((x + k) >>> 0, size);
            break;
          case 0xa0: {
            const b = load(k, 1);
            v = b === null ? null : (b & 0xf) << 2;
            break;
          }
          default:
            return false;
        }
        if (v === null) return false;
        if (CLASS(code) === 0x00) a = v;
        else x = v;
        break;
      }
      case 0x02:
        mem[k & 15] = a;
        break;
      case 0x03:
        mem[k & 15] = x;
        break;
      case 0x04: {
        const s = code & 0x08 ? x : k;
        switch (code & 0xf0) {
          case 0x00:
            a = (a + s) >>> 0;
            break;
          case 0x10:
            a = (a - s) >>> 0;
            break;
          case 0x20:
            a = Math.imul(a, s) >>> 0;
            break;
          case 0x30:
            if (!s) return false;
            a = Math.floor(a / s) >>> 0;
            break;
          case 0x40:
            a = (a | s) >>> 0;
            break;
          case 0x50:
            a = (a & s) >>> 0;
            break;
          case 0x60:
            a = (a << (s & 31)) >>> 0;
            break;
          case 0x70:
            a = a >>> (s & 31);
            break;
          case 0x80:
            a = -a >>> 0;
            break;
          case 0x90:
            if (!s) return false;
            a = (a % s) >>> 0;
            break;
          case 0xa0:
            a = (a ^ s) >>> 0;
            break;
          default:
            return false;
        }
        break;
      }
      case 0x05: {
        const s = code & 0x08 ? x : k;
        let t: boolean;
        switch (code & 0xf0) {
          case 0x00:
            pc += k;
            continue;
          case 0x10:
            t = a === s;
            break;
          case 0x20:
            t = a > s;
            break;
          case 0x30:
            t = a >= s;
            break;
          case 0x40:
            t = (a & s) !== 0;
            break;
          default:
            return false;
        }
        pc += t ? jt : jf;
        break;
      }
      case 0x06:
        return ((code & 0x18) === 0x10 ? a : k) !== 0;
      case 0x07:
        if (code & 0x80) a = x;
        else x = a;
        break;
    }
  }
  return false;
}

/** Whether the expression takes the packet as the kernel does: its own bytes, or for an ICMP error the
 *  packet it quotes (the error belongs to that packet's flow). Pure. */
export function expressionTakes(program: Uint8Array | Insn[], pkt: Uint8Array): boolean {
  const insns = program instanceof Uint8Array ? instructions(program) : program;
  if (runExpression(insns, pkt)) return true;
  const v = byteAt(pkt, 0) >> 4;
  const l4 = v === 4 ? (byteAt(pkt, 0) & 0xf) * 4 : 40;
  const proto = byteAt(pkt, v === 4 ? 9 : 6);
  const type = byteAt(pkt, l4);
  const error =
    v === 4 ? proto === 1 && (type === 3 || type === 11 || type === 12) : proto === 58 && type >= 1 && type <= 4;
  return error && pkt.length > l4 + 8 && runExpression(insns, pkt.subarray(l4 + 8));
}

/** An IP packet's length from its header (the bytes held when it has none). */
export function ipLength(pkt: Uint8Array): number {
  const v = byteAt(pkt, 0) >> 4;
  if (v === 4 && pkt.length >= 4) return (byteAt(pkt, 2) << 8) | byteAt(pkt, 3);
  if (v === 6 && pkt.length >= 6) return ((byteAt(pkt, 4) << 8) | byteAt(pkt, 5)) + 40;
  return pkt.length;
}

/** The byte at i, or 0 beyond the bytes held (no test here takes a 0 there for a match). */
function byteAt(pkt: Uint8Array, i: number): number {
  return pkt[i] ?? 0;
}

export class ExpressionError extends Error {}

/** Compiles text with the system's libpcap (compile: the addon's compileExpression) and checks that the
 *  kernel program can run it; throws an ExpressionError naming what is wrong, in one line. */
export function compileExpression(
  text: string,
  compile: (text: string, libraries: string[]) => Uint8Array,
  maxInsns = MAX_INSNS,
  libraries = LIBPCAP_NAMES,
): Expression {
  let program: Uint8Array;
  try {
    program = compile(text, libraries);
  } catch (e) {
    const why = (e as Error).message.replace(/^can't parse filter expression: /, '');
    if (/need libpcap/.test(why)) throw new ExpressionError(`${why}: apt install libpcap0.8, or dnf install libpcap`);
    if (/rejects all packets/.test(why))
      throw new ExpressionError(`filter expression '${text}' matches no IP packet (pathtrace follows IPv4 and IPv6)`);
    throw new ExpressionError(`bad filter expression '${text}': ${why}`);
  }
  const refusal = programRefusal(program, maxInsns);
  if (refusal) throw new ExpressionError(`filter expression '${text}' cannot run in the kernel: ${refusal}`);
  return { text, program };
}

/** What a packet record says of a packet: enough to rebuild its headers. */
export interface PacketFields {
  family: 'ipv4' | 'ipv6';
  proto: string;
  src: string;
  dst: string;
  sport: number | null;
  dport: number | null;
  tcp_flags: string | null;
  seq?: number;
  ack?: number;
  len: number;
  ip_id?: number;
  icmp?: { type: number; code: number } | null;
}

const FLAG_BITS: Record<string, number> = { F: 0x01, S: 0x02, R: 0x04, P: 0x08, A: 0x10, U: 0x20, E: 0x40, C: 0x80 };

/** The headers of the packet a record describes (IP, then TCP, UDP or ICMP; no payload bytes, TTL 64), for an
 *  expression to run on where the bytes are not at hand, as the kernel does for socket records. Pure. */
export function packetFromFields(p: PacketFields): Uint8Array {
  const v6 = p.family === 'ipv6';
  const proto = p.proto === 'tcp' ? 6 : p.proto === 'udp' ? 17 : v6 ? 58 : 1;
  const l4 = new Uint8Array(proto === 6 ? 20 : 8);
  const v = new DataView(l4.buffer);
  if (proto === 6 || proto === 17) {
    v.setUint16(0, p.sport ?? 0);
    v.setUint16(2, p.dport ?? 0);
  }
  if (proto === 6) {
    v.setUint32(4, p.seq ?? 0);
    v.setUint32(8, p.ack ?? 0);
    l4[12] = 5 << 4;
    l4[13] = [...(p.tcp_flags ?? '')].reduce((m, c) => m | (FLAG_BITS[c] ?? 0), 0);
  } else if (proto === 17) {
    v.setUint16(4, 8 + p.len);
  } else {
    l4[0] = p.icmp?.type ?? 0;
    l4[1] = p.icmp?.code ?? 0;
  }
  const { addr: src } = addressBytes(p.src),
    { addr: dst } = addressBytes(p.dst);
  const wire = (v6 ? 40 : 20) + l4.length + (proto === 6 || proto === 17 ? p.len : 0);
  const ip = v6
    ? [0x60, 0, 0, 0, (wire - 40) >> 8, (wire - 40) & 255, proto, 64, ...src, ...dst]
    : [
        0x45,
        0,
        wire >> 8,
        wire & 255,
        (p.ip_id ?? 0) >> 8,
        (p.ip_id ?? 0) & 255,
        0,
        0,
        64,
        proto,
        0,
        0,
        ...src.slice(0, 4),
        ...dst.slice(0, 4),
      ];
  return Uint8Array.from([...ip, ...l4]);
}
