// What a trace amounted to: counts by fate, drop points, and per connection
// the groups of like packets, its TCP states and a one-line verdict: the shape
// every output reads. tally.ts builds it from the journeys that were reported.
import type { Owner } from '../correlate/flows.js';
import type { Drop, Fate, Journey } from '../correlate/journey.js';
import { PROTO_NAMES } from '../trace/record.js';

export interface PacketGroup {
  direction: Journey['direction'];
  kind: string; // TCP flag letters, 'udp', 'icmp'...
  fate: Fate;
  hook: string | null; // drop hook
  reason: string | null; // drop reason
  location: string | null;
  layer: string | null;
  origin: Journey['origin'] | null;
  count: number;
  tcpdump: number; // how many tcpdump would have captured
  tcpSaw: number; // incoming TCP: how many TCP received
  answered: number; // netfilter drops this host answered (a REJECT's RST or ICMP error)
  listener?: string; // a listen queue's overflow: who listened (listenerWords)
  replies: Record<string, number>;
  retransmits: number;
  bytes: number; // transport payload
  read: number; // how many the application read
}

export interface FlowSummary {
  flow: string;
  proto: string;
  a: string;
  b: string;
  packets: number;
  ids: number[];
  groups: PacketGroup[];
  states: string[]; // TCP state changes seen, "SYN_SENT>ESTABLISHED"
  /** The same, per local socket endpoint (both ends show when both are on this host). */
  socketStates: Record<string, string[]>;
  owner: Owner | null;
  synackRetransmits: number;
  retransmits: number;
  resetsSent: number;
  resetsReceived: number;
  verdict: string;
}

export interface Summary {
  packets: number;
  byFate: Record<Fate, number>;
  /** By cause and hook: the first such drop (its rule too), without what is one packet's own (state, advice). */
  drops: (Drop & { explanation: string; count: number })[];
  flows: FlowSummary[];
  /** netstat -s counters of the traced namespace that moved during the trace. */
  counters: Record<string, number> | null;
  lostEvents: number;
  events: number;
  cutByTimeout: number;
  /** Journeys under way when events were lost. */
  incomplete: number;
  /** Connections forgotten to keep memory bounded (their packets are counted above). */
  evictedFlows: number;
  durationNs: number;
  stoppedBy: string;
  unavailable: { point: string; reason: string }[];
  /** Packet records not written because stdout's reader fell behind (counted above all the same). */
  outputSkipped?: number;
}

export function protoName(proto: number, family: number): string {
  return PROTO_NAMES[proto] ?? `proto-${proto}${family === 6 ? '-v6' : ''}`;
}
