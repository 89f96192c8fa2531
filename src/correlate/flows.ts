// Flows: the packets of one connection (both directions), with what the
// socket layer told about it. Keyed by the endpoints in either order; a tuple
// rewritten by NAT is an alias of the flow it came from.
import { tcpStateName } from '../trace/kernel-names.js';
import type { Journey } from './journey.js';

export interface FlowTuple {
  proto: number;
  family: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export interface Owner {
  pid: number;
  comm: string;
}

export interface FlowState {
  key: string;
  proto: number;
  family: 4 | 6;
  /** Endpoints as first seen: a is the sender of the first packet. */
  a: string;
  b: string;
  /** TCP state changes, with the local endpoint of the socket that made them. */
  states: { t: number; from: string; to: string; local: string }[];
  synackRetransmits: number;
  retransmits: number;
  resetsSent: number;
  resetsReceived: number;
  /** TCP segment copies seen, per direction, for retransmission numbering (bounded). */
  segments: [SegmentCopies, SegmentCopies];
  /** Start times of SYN-ACK and RST packets this host sent, to tell whether a SYN was answered. */
  replies: { t: number; kind: string }[];
  /** The latest incoming packet that was dropped, to tell a REJECT's answer from the stack's. */
  lastInDrop: { t: number; layer: string } | null;
  /** When TCP last sent a reset for this flow (tcp_send_reset). */
  lastStackReset: number;
  /** When this host last began to send an answer (TCP RST or ICMP error) in the flow: a REJECT rule
   *  sends one from inside the hook, before the packet is dropped. */
  lastAnswer: number;
  /** What that answer was: an ICMP error's type and code (in its family's numbering) and the MTU a too-big one
   *  carries; null for a TCP reset. */
  lastAnswerIcmp: { type: number; code: number; mtu?: number } | null;
  /** The latest answer sent, while the packet it answered may still be dying: a reset can leave the host before
   *  the SYN that caused it is freed, and that free tells whose answer it was. */
  answerSent: Journey | null;
  /** TCP segments refused as too big for the way out after which the sender was told (ICMP), by sequence number:
   *  their size and how many ICMP errors were sent for them (a few at most; null until the first). */
  tooBigTold: Map<number, { size: number | null; told: number }> | null;
  /** The process of the local socket, where a process-context event showed it. */
  owner: Owner | null;
  /** Once a rewritten packet of the flow left the last hook (conntrack keeps its mapping then): the tuple it
   *  left with, and whether it was the connection's first packet. Later packets are conntrack's to rewrite. */
  nat: { final: { src: string; dst: string; sport: number; dport: number }; first: boolean } | null;
  /** When it was last looked up (FlowTable generations): the least recent go first past the bound. */
  seen: number;
}

/** How often each recent TCP segment was seen: the latest `keep` to 2 × `keep` of them, in two
 *  generations. (Deleting a Map's oldest key one at a time makes V8 walk the deleted slots on every
 *  keys().next(): that was the correlator's hottest line under a request/response load.) Keyed by the
 *  sequence number as an int32, a small integer to V8 (a 52-bit key is a boxed double: allocated and
 *  hashed as such on every packet); the value holds the segment's kind and its count. */
export class SegmentCopies {
  private current = new Map<number, number>();
  private previous = new Map<number, number>();
  /** Segments that share a sequence number with another kind (a retransmission cut differently). */
  private apart = new Map<number, number>();

  constructor(private readonly keep = 2048) {}

  /** Counts one more copy of the segment at seq of this kind (flags and length, < 2^20); returns how
   *  many were seen before. */
  count(seq: number, kind: number): number {
    const k = seq | 0;
    const v = this.current.get(k) ?? this.previous.get(k);
    if (v !== undefined && v >>> 10 !== kind) return this.countApart(seq, kind);
    const n = v === undefined ? 0 : v & 1023;
    if (n === 0 && this.current.size >= this.keep) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(k, kind * 1024 + Math.min(n + 1, 1023));
    return n;
  }

  private countApart(seq: number, kind: number): number {
    const key = kind * 2 ** 32 + (seq >>> 0);
    const n = this.apart.get(key) ?? 0;
    if (n === 0 && this.apart.size >= this.keep) this.apart = new Map();
    this.apart.set(key, n + 1);
    return n;
  }
}

/** Flows kept at most; past it the least recently active tenth is forgotten. */
export const MAX_FLOWS = 10_000;

// Strings of the same address are usually the same cached object; their hash is cheap anyway.
const hashes = new Map<string, number>();
function hashString(s: string): number {
  let h = hashes.get(s);
  if (h === undefined) {
    h = 0;
    for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
    if (hashes.size > 65536) hashes.clear();
    hashes.set(s, h);
  }
  return h;
}

export function endpoint(addr: string, port: number, family: number): string {
  return family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** Which direction of its flow a packet goes (0 or 1; the reverse packet gets the other). */
export function side(t: FlowTuple): 0 | 1 {
  return t.sport < t.dport || (t.sport === t.dport && t.src < t.dst) ? 0 : 1;
}

export function flowKey(t: FlowTuple): string {
  const a = endpoint(t.src, t.sport, t.family);
  const b = endpoint(t.dst, t.dport, t.family);
  return a < b ? `${t.proto} ${a} ${b}` : `${t.proto} ${b} ${a}`;
}

// State changes made by the socket's own process (connect, close), where
// `current` is its owner; the others happen in softirq context.
const PROCESS_CONTEXT = new Set([
  'CLOSE>SYN_SENT',
  'ESTABLISHED>FIN_WAIT1',
  'CLOSE_WAIT>LAST_ACK',
  'SYN_RECV>FIN_WAIT1',
]);

export class FlowTable {
  private readonly flows = new Map<string, FlowState>();
  private readonly aliases = new Map<string, string>();

  get size(): number {
    return this.flows.size;
  }

  values(): IterableIterator<FlowState> {
    return this.flows.values();
  }

  byKey(key: string): FlowState | undefined {
    return this.flows.get(key);
  }

  /** A direct-mapped cache of recent lookups by a numeric hash of the tuple (either direction), so
   *  that the common case builds no key string; entries are checked against the tuple. */
  private readonly recent: (
    { f: FlowState; proto: number; src: string; dst: string; sport: number; dport: number } | undefined
  )[] = new Array(4096);

  /** The flow of a tuple, created on first sight. */
  of(t: FlowTuple): FlowState {
    return this.find(t) ?? this.create(t);
  }

  /** The flow of a tuple if there is one. */
  find(t: FlowTuple): FlowState | undefined {
    const h = (((t.sport ^ t.dport) * 31 + t.proto) ^ hashString(t.src) ^ hashString(t.dst)) & 4095;
    const c = this.recent[h];
    let f: FlowState | undefined;
    if (
      c &&
      c.proto === t.proto &&
      ((c.sport === t.sport && c.dport === t.dport && c.src === t.src && c.dst === t.dst) ||
        (c.sport === t.dport && c.dport === t.sport && c.src === t.dst && c.dst === t.src)) &&
      this.flows.get(c.f.key) === c.f
    ) {
      f = c.f;
    } else {
      const key = flowKey(t);
      f = this.flows.get(this.aliases.get(key) ?? key);
      if (f) this.recent[h] = { f, proto: t.proto, src: t.src, dst: t.dst, sport: t.sport, dport: t.dport };
    }
    if (f) f.seen = this.generation;
    return f;
  }

  private create(t: FlowTuple): FlowState {
    const key = flowKey(t);
    const f: FlowState = {
      key,
      proto: t.proto,
      family: t.family as 4 | 6,
      a: endpoint(t.src, t.sport, t.family),
      b: endpoint(t.dst, t.dport, t.family),
      states: [],
      synackRetransmits: 0,
      retransmits: 0,
      resetsSent: 0,
      resetsReceived: 0,
      segments: [new SegmentCopies(), new SegmentCopies()],
      replies: [],
      lastInDrop: null,
      answerSent: null,
      lastStackReset: -Infinity,
      lastAnswer: -Infinity,
      lastAnswerIcmp: null,
      tooBigTold: null,
      owner: null,
      nat: null,
      seen: this.generation,
    };
    this.flows.set(key, f);
    if (this.flows.size > MAX_FLOWS) this.evict();
    return f;
  }

  /** Advanced by the correlator's tick: the clock of `seen`. */
  generation = 0;
  /** Flows forgotten to keep memory bounded. */
  evicted = 0;
  private readonly evictListeners: ((keys: Set<string>) => void)[] = [];

  onEvict(fn: (keys: Set<string>) => void): void {
    this.evictListeners.push(fn);
  }

  private evict(): void {
    const old = [...this.flows.values()].sort((a, b) => a.seen - b.seen).slice(0, MAX_FLOWS / 10);
    const keys = new Set(old.map((f) => f.key));
    for (const k of keys) this.flows.delete(k);
    for (const [alias, k] of this.aliases) if (keys.has(k)) this.aliases.delete(alias);
    this.recent.fill(undefined);
    this.evicted += keys.size;
    for (const fn of this.evictListeners) fn(keys);
  }

  /** Makes a translated tuple (NAT) name the same flow. */
  alias(t: FlowTuple, f: FlowState): void {
    const key = flowKey(t);
    if (key !== f.key && !this.flows.has(key)) this.aliases.set(key, f.key);
    this.recent.fill(undefined); // a cached lookup may now be wrong
  }

  stateChange(t: FlowTuple, time: number, oldState: number, newState: number, owner: Owner): void {
    // tcp_set_state reports a state set again unchanged (close() of a FIN_WAIT2 socket): not a change.
    if (oldState === newState) return;
    const f = this.of(t);
    const from = tcpStateName(oldState),
      to = tcpStateName(newState);
    f.states.push({ t: time, from, to, local: endpoint(t.src, t.sport, t.family) });
    if (PROCESS_CONTEXT.has(`${from}>${to}`) && owner.pid) f.owner = owner;
  }
}
