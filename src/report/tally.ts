// Counts the reported journeys, cheaply per packet, into the Summary of the trace (summary.ts).
import type { Correlator } from '../correlate/correlate.js';
import type { FlowState } from '../correlate/flows.js';
import { flagLetters, type Fate, type Journey } from '../correlate/journey.js';
import { IPPROTO } from '../trace/record.js';
import { explainDrop, listenerWords } from './reasons.js';
import { connectionVerdict } from './story.js';
import { protoName, type FlowSummary, type PacketGroup, type Summary } from './summary.js';

/** What kind of packet, for grouping: TCP flag letters, else the protocol. */
export function packetKindKey(j: Journey): string {
  return j.proto === IPPROTO.TCP ? flagLetters(j.flags) : protoName(j.proto, j.family);
}

/** Packet ids listed per connection record (a long stream's count goes on). */
const MAX_IDS_PER_FLOW = 1000;

/** Whether the journey belongs in the group (the fields its key is made of). */
function inGroup(g: PacketGroup, j: Journey, kind: string): boolean {
  return (
    g.direction === j.direction &&
    g.kind === kind &&
    g.fate === j.fate &&
    g.hook === (j.drop?.hook ?? null) &&
    g.reason === (j.drop?.reason ?? null) &&
    g.location === (j.drop?.location ?? null) &&
    g.origin === (j.origin ?? null)
  );
}

/** Counts reported journeys; cheap per packet, turned into a Summary at the end. */
export class Tally {
  packets = 0;
  readonly byFate: Record<Fate, number> = { delivered: 0, sent: 0, forwarded: 0, dropped: 0, unfinished: 0 };
  cutByTimeout = 0;
  incomplete = 0;
  private readonly drops = new Map<string, Summary['drops'][number]>();
  private readonly groups = new Map<string, Map<string, PacketGroup>>();
  /** The groups the flow's last packets went to: most packets go where one of the last few went (no key to build). */
  private readonly recentGroups = new Map<string, PacketGroup[]>();
  private readonly ids = new Map<string, number[]>();

  add(j: Journey): void {
    this.packets++;
    this.byFate[j.fate]++;
    if (j.ending === 'timeout') this.cutByTimeout++;
    if (j.incomplete) this.incomplete++;
    if (j.drop) {
      // By what it means and where: the same cause at two freeing functions (tcp_v4_rcv, tcp_v6_rcv) is one group.
      const explanation = explainDrop(j.drop);
      const k = `${j.drop.hook}|${explanation}`;
      // The connection's state and a too-big packet's way out are in the explanation: the group keeps no one
      // packet's (nor its advice).
      const d = this.drops.get(k) ?? { ...j.drop, tcpState: undefined, tooBig: undefined, explanation, count: 0 };
      d.count++;
      this.drops.set(k, d);
    }
    let groups = this.groups.get(j.flow);
    if (!groups) {
      this.groups.set(j.flow, (groups = new Map()));
      this.ids.set(j.flow, []);
    }
    const ids = this.ids.get(j.flow)!;
    if (ids.length < MAX_IDS_PER_FLOW) ids.push(j.id);
    const kind = packetKindKey(j);
    let recent = this.recentGroups.get(j.flow);
    if (!recent) this.recentGroups.set(j.flow, (recent = []));
    let g: PacketGroup | undefined;
    for (const x of recent)
      if (inGroup(x, j, kind)) {
        g = x;
        break;
      } // no closure per packet
    if (!g) {
      const k = `${j.direction}|${kind}|${j.fate}|${j.drop?.hook}|${j.drop?.reason}|${j.drop?.location}|${j.origin}`;
      g = groups.get(k);
      if (!g) {
        const listening = j.drop?.listening;
        g = {
          direction: j.direction,
          kind,
          fate: j.fate,
          hook: j.drop?.hook ?? null,
          reason: j.drop?.reason ?? null,
          location: j.drop?.location ?? null,
          layer: j.drop?.layer ?? null,
          origin: j.origin ?? null,
          count: 0,
          tcpdump: 0,
          tcpSaw: 0,
          answered: 0,
          replies: {},
          retransmits: 0,
          bytes: 0,
          read: 0,
          ...(listening?.length && { listener: listenerWords(listening) }),
        };
        groups.set(k, g);
      }
      if (recent.unshift(g) > 4) recent.pop();
    }
    g.count++;
    g.bytes += j.len;
    if (j.tcpdump) g.tcpdump++;
    if (j.tcp?.saw) g.tcpSaw++;
    if (j.drop?.answered) g.answered++;
    if (j.tcp?.reply) g.replies[j.tcp.reply] = (g.replies[j.tcp.reply] ?? 0) + 1;
    if (j.retransmit > 0) g.retransmits++;
    if (j.delivery?.read) g.read++;
  }

  /** Forgets the groups of flows the correlator evicted. */
  forget(keys: Set<string>): void {
    for (const k of keys) {
      this.groups.delete(k);
      this.recentGroups.delete(k);
      this.ids.delete(k);
    }
  }

  flowSummary(f: FlowState): FlowSummary {
    const groups = [...(this.groups.get(f.key)?.values() ?? [])];
    const s: FlowSummary = {
      flow: f.key,
      proto: protoName(f.proto, f.family),
      a: f.a,
      b: f.b,
      packets: groups.reduce((n, g) => n + g.count, 0),
      ids: this.ids.get(f.key) ?? [],
      groups,
      states: f.states.map((x) => `${x.from}>${x.to}`),
      owner: f.owner,
      socketStates: f.states.reduce<Record<string, string[]>>((m, x) => {
        (m[x.local] ??= []).push(`${x.from}>${x.to}`);
        return m;
      }, {}),
      synackRetransmits: f.synackRetransmits,
      retransmits: f.retransmits,
      resetsSent: f.resetsSent,
      resetsReceived: f.resetsReceived,
      verdict: '',
    };
    s.verdict = connectionVerdict(s);
    return s;
  }

  summary(
    correlator: Correlator,
    extra: Pick<Summary, 'lostEvents' | 'events' | 'durationNs' | 'stoppedBy' | 'unavailable' | 'counters'>,
  ): Summary {
    const flows = [...correlator.flows.values()]
      .map((f) => this.flowSummary(f))
      .filter((f) => f.packets > 0 || f.states.length > 0);
    return {
      packets: this.packets,
      byFate: { ...this.byFate },
      drops: [...this.drops.values()].sort((a, b) => b.count - a.count),
      flows,
      cutByTimeout: this.cutByTimeout,
      incomplete: this.incomplete,
      evictedFlows: correlator.flows.evicted,
      ...extra,
    };
  }
}
