// What a trace amounted to: counts by fate, drop points, and per flow the
// groups of like packets. Built from the journeys that were reported.
import type { Correlator, FlowState } from './correlate.js';
import { flagLetters, type Fate, type Journey } from './journey.js';
import { IPPROTO } from './record.js';

export interface PacketGroup {
  direction: Journey['direction'];
  flags: string;          // TCP flag letters, '' for others
  fate: Fate;
  hook: string | null;    // drop hook
  reason: string | null;  // drop reason
  location: string | null;
  layer: string | null;
  count: number;
  tcpdump: number;        // how many tcpdump would have captured
  tcpSaw: number;         // incoming TCP: how many TCP received
  replies: Record<string, number>;
  retransmits: number;
}

export interface FlowSummary {
  flow: string;
  proto: string;
  a: string;
  b: string;
  packets: number;
  groups: PacketGroup[];
  states: string[];       // TCP state changes seen, "SYN_SENT>ESTABLISHED"
  synackRetransmits: number;
  retransmits: number;
  resetsSent: number;
  resetsReceived: number;
}

export interface Summary {
  packets: number;
  byFate: Record<Fate, number>;
  drops: { layer: string; hook: string | null; reason: string; location: string; count: number }[];
  flows: FlowSummary[];
  lostEvents: number;
  events: number;
  cutByTimeout: number;
  durationNs: number;
  stoppedBy: string;
  unavailable: { point: string; reason: string }[];
}

export function protoName(proto: number, family: number): string {
  switch (proto) {
    case IPPROTO.TCP: return 'tcp';
    case IPPROTO.UDP: return 'udp';
    case IPPROTO.ICMP: return 'icmp';
    case IPPROTO.ICMPV6: return 'icmpv6';
    default: return `proto-${proto}${family === 6 ? '-v6' : ''}`;
  }
}

/** Counts reported journeys; cheap per packet, turned into a Summary at the end. */
export class Tally {
  packets = 0;
  readonly byFate: Record<Fate, number> = { delivered: 0, sent: 0, forwarded: 0, dropped: 0, unfinished: 0 };
  cutByTimeout = 0;
  private readonly drops = new Map<string, Summary['drops'][number]>();
  private readonly groups = new Map<string, Map<string, PacketGroup>>();

  add(j: Journey): void {
    this.packets++;
    this.byFate[j.fate]++;
    if (j.ending === 'timeout') this.cutByTimeout++;
    if (j.drop) {
      const k = `${j.drop.layer}|${j.drop.hook}|${j.drop.reason}|${j.drop.location}`;
      const d = this.drops.get(k) ?? { ...j.drop, count: 0 };
      d.count++;
      this.drops.set(k, d);
    }
    let groups = this.groups.get(j.flow);
    if (!groups) this.groups.set(j.flow, (groups = new Map()));
    const flags = j.proto === IPPROTO.TCP ? flagLetters(j.flags) : '';
    const k = `${j.direction}|${flags}|${j.fate}|${j.drop?.hook}|${j.drop?.reason}|${j.drop?.location}`;
    let g = groups.get(k);
    if (!g) {
      g = {
        direction: j.direction, flags, fate: j.fate, hook: j.drop?.hook ?? null, reason: j.drop?.reason ?? null,
        location: j.drop?.location ?? null, layer: j.drop?.layer ?? null,
        count: 0, tcpdump: 0, tcpSaw: 0, replies: {}, retransmits: 0,
      };
      groups.set(k, g);
    }
    g.count++;
    if (j.tcpdump) g.tcpdump++;
    if (j.tcp?.saw) g.tcpSaw++;
    if (j.tcp?.reply) g.replies[j.tcp.reply] = (g.replies[j.tcp.reply] ?? 0) + 1;
    if (j.retransmit > 0) g.retransmits++;
  }

  flowSummary(f: FlowState): FlowSummary {
    const groups = [...(this.groups.get(f.key)?.values() ?? [])];
    return {
      flow: f.key, proto: protoName(f.proto, f.family), a: f.a, b: f.b,
      packets: groups.reduce((n, g) => n + g.count, 0), groups,
      states: f.states.map((s) => `${s.from}>${s.to}`),
      synackRetransmits: f.synackRetransmits, retransmits: f.retransmits,
      resetsSent: f.resetsSent, resetsReceived: f.resetsReceived,
    };
  }

  summary(correlator: Correlator, extra: Pick<Summary, 'lostEvents' | 'events' | 'durationNs' | 'stoppedBy' | 'unavailable'>): Summary {
    const flows = [...correlator.flows.values()]
      .map((f) => this.flowSummary(f))
      .filter((f) => f.packets > 0 || f.states.length > 0);
    return {
      packets: this.packets, byFate: { ...this.byFate },
      drops: [...this.drops.values()].sort((a, b) => b.count - a.count),
      flows, cutByTimeout: this.cutByTimeout, ...extra,
    };
  }
}
