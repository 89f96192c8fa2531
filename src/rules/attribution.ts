// Names the table, chain and rule of netfilter drops, read-only: the probes
// between chains bracket the drop, the ruleset's counters and matches name
// the rule (attribute.ts); and the NAT rule behind a rewrite (nat.ts). Keeps
// the counter baseline and moves the probes when the ruleset's layout changes.
import type { DeviceNames, Journey, NatRewrite } from '../correlate/journey.js';
import type { NetfilterProbes } from '../trace/probes.js';
import {
  attributeDrop,
  attributedRule,
  attributeFromTrace,
  candidateChains,
  type DropContext,
  type PacketView,
} from './attribute.js';
import { attributeNat, natChains } from './nat.js';
import type { RuleTrace } from './ruletrace.js';
import type { Ruleset } from './model.js';
import { nfqueueFree, queueFacts, type QueueReading } from './nfqueue.js';
import { layoutChanges, layoutSignature } from './plan.js';
import { ruleCounterDeltas, ruleCounters, type RulesetReader, type TableRef } from './read.js';
import { protoName } from '../report/summary.js';

function needsDropAttribution(j: Journey): boolean {
  return j.drop?.layer === 'netfilter' && j.drop.hook !== null;
}

/** Rewrites a rule may have made: conntrack's are told without the ruleset. */
function pendingRewrites(j: Journey): NatRewrite[] {
  return j.nat?.filter((r) => r.by === undefined) ?? [];
}

/** A netfilter drop, or a NAT rewrite a rule may have made: its rule is named from a reading of the ruleset. */
export function needsAttribution(j: Journey): boolean {
  return needsDropAttribution(j) || pendingRewrites(j).length > 0;
}

export class RuleAttributor {
  private baseline: Map<string, number>;
  private layout: string;
  /** Whether the probes between chains were placed for a real reading yet. */
  private placed = false;
  /** The last reading of the whole ruleset: where a drop's chains can be. */
  private known: Ruleset;

  constructor(
    private readonly reader: RulesetReader,
    /** The probes between chains (netfilter links); null when trampolines trace the hooks. */
    private readonly probes: NetfilterProbes | null,
    private readonly devices: DeviceNames,
    /** How to run a command in the traced namespace, for the commands shown ("ip netns exec web "). */
    private readonly prefix: string,
    initial: Ruleset,
    /** --rule-trace: nftables' own verdicts, tried first. */
    readonly trace: RuleTrace | null = null,
    /** The trace's clock (ns, as event times): when each counter reading ended. */
    private readonly now: () => number = () => -Infinity,
    /** The namespace's NFQUEUE queues now (nfqueue-read.ts), read beside the counters where a rule queues. */
    private readonly queues: () => QueueReading = () => null,
  ) {
    this.baseline = ruleCounters(initial);
    this.layout = layoutSignature(initial);
    this.known = initial;
  }

  /** Reads the ruleset again; re-places the probes if chains came, went or moved. Returns what changed. */
  async refresh(dropsSinceLastReading: boolean): Promise<string | null> {
    return this.take(await this.reader.read(false), dropsSinceLastReading);
  }

  /** A reading of the ruleset: the counters' baseline (unless drops wait for their deltas) and the probes' places. */
  take(rs: Ruleset, dropsSinceLastReading: boolean): string | null {
    if (!dropsSinceLastReading) this.adoptBaseline(rs, false);
    this.known = rs;
    return this.relayout(rs);
  }

  /** The tables the drops' chains can be in, to read only those (a large ruleset costs ~0.5 s to read whole);
   *  null (read it all) before the first reading or when the layout names none. */
  tablesFor(journeys: Journey[]): TableRef[] | null {
    if (!this.placed) return null;
    const out = new Map<string, TableRef>();
    for (const j of journeys) {
      const chains = [
        ...(needsDropAttribution(j) ? candidateChains(this.known, this.context(j)) : []),
        ...pendingRewrites(j).flatMap((r) => natChains(this.known, { ...r, family: j.family })),
      ];
      for (const c of chains) out.set(`${c.source} ${c.family} ${c.table}`, c);
    }
    return out.size ? [...out.values()].map(({ source, family, table }) => ({ source, family, table })) : null;
  }

  /** Counters a drop's deltas are taken against; a drop before the reading ended may be in them already. */
  private baselineAt = -Infinity;
  /** The queues with the baseline: a queue's drop counters that grew since tell that it overflowed. */
  private queueBaseline: QueueReading = null;

  /** A partial reading (some tables) updates their counters only. queues: read with it. */
  private adoptBaseline(rs: Ruleset, partial: boolean, queues = this.readQueues(rs)): void {
    const counters = ruleCounters(rs);
    if (partial) for (const [k, v] of counters) this.baseline.set(k, v);
    else this.baseline = counters;
    this.baselineAt = this.now();
    if (queues) this.queueBaseline = queues;
  }

  /** The queues, where a rule of this reading queues (else nothing to read them for). */
  private readQueues(rs: Ruleset): QueueReading {
    return rs.chains.some((c) => c.rules.some((r) => r.verdict === 'queue')) ? this.queues() : null;
  }

  private relayout(rs: Ruleset): string | null {
    const sig = layoutSignature(rs);
    if (sig === this.layout && this.placed) return null;
    const changes = layoutChanges(this.layout, sig);
    const first = !this.placed;
    this.layout = sig;
    this.placed = true;
    if (!this.probes) return first ? null : `ruleset changed: ${changes.join(', ')}`;
    const gaps = this.probes.place(rs);
    return first ? null : `ruleset changed: ${changes.join(', ')}; ${gaps.length} probes between chains re-placed`;
  }

  /** Where the drop of j can be: its hook and the priorities bracketing it (the probes it passed, or the
   *  chain a trampoline saw return it), without the packet and counters. */
  private context(j: Journey): Omit<DropContext, 'packet' | 'counterDeltas' | 'prefix'> {
    const drop = j.drop!;
    const hook = drop.hook!;
    // A trampoline saw the chain return the drop: that chain's priority (and table) alone.
    const chain = j.steps.find((s) => s.hook === hook && s.at === 'chain');
    const steps = j.steps.filter((s) => s.hook === hook && s.priority !== undefined && s.at !== 'chain');
    const after = chain ? chain.priority! - 1 : Math.max(...steps.map((s) => s.priority!), -Infinity);
    const before = chain
      ? chain.priority! + 1
      : (this.probes?.priorities(j.family, hook).find((p) => p > after) ?? Infinity);
    return { family: j.family, hook, after, before, location: chain?.location ?? drop.location, table: chain?.table };
  }

  /** Attributes the drops of these journeys with a fresh reading of the ruleset (rule texts included);
   *  partial: of some tables only (tablesFor). */
  attribute(rs: Ruleset, journeys: Journey[], partial = false): void {
    const deltas = ruleCounterDeltas(this.baseline, ruleCounters(rs));
    const baselineAt = this.baselineAt;
    const queuesBefore = this.queueBaseline;
    const queuesAfter = this.readQueues(rs);
    this.adoptBaseline(rs, partial, queuesAfter);
    for (const j of journeys) {
      for (const r of pendingRewrites(j)) this.attributeRewrite(rs, j, r, deltas, baselineAt);
      if (!needsDropAttribution(j)) continue;
      const queued = nfqueueFree(j.drop!.location) ?? undefined;
      const traced = this.trace?.take(j, queued);
      if (traced) {
        j.drop!.attribution = attributeFromTrace(rs, traced, j.family, this.prefix, (j.translated ?? j).src);
        continue;
      }
      const nf = [...j.steps].reverse().find((s) => s.hook === j.drop!.hook);
      const t = j.translated ?? j;
      const packet: PacketView = {
        family: j.family,
        proto: protoName(j.proto, j.family),
        src: t.src,
        dst: t.dst,
        sport: t.sport,
        dport: t.dport,
        iif: nf?.in ? this.devices.name(nf.in) : undefined,
        oif: nf?.out ? this.devices.name(nf.out) : undefined,
      };
      const last = j.steps.at(-1);
      const a = attributeDrop(rs, {
        ...this.context(j),
        packet,
        counterDeltas: deltas,
        prefix: this.prefix,
        countersTrusted: last !== undefined && last.t > baselineAt,
        answered: j.drop!.answered,
        queued,
        ruleTrace: this.trace !== null,
      });
      if (a) j.drop!.attribution = a;
      else if (rs.unread) j.drop!.rulesUnread = rs.unread.join('; ');
    }
    // A queue rule's drops: its queue, and who listened there before and after.
    for (const j of journeys) {
      if (!j.drop) continue;
      const free = nfqueueFree(j.drop.location);
      const target = free && j.drop.attribution && attributedRule(rs, j.drop.attribution)?.queue;
      if (target) j.drop.nfqueue = queueFacts(free, target, queuesBefore, queuesAfter);
    }
    if (!partial) {
      this.known = rs;
      this.relayout(rs);
    }
  }

  /** The rule behind one rewrite, or conntrack; what the journey says of it. */
  private attributeRewrite(
    rs: Ruleset,
    j: Journey,
    r: NatRewrite,
    deltas: Map<string, number>,
    baselineAt: number,
  ): void {
    const found = attributeNat(rs, {
      family: j.family,
      hook: r.hook,
      after: r.after,
      before: r.before,
      packet: {
        family: j.family,
        proto: protoName(j.proto, j.family),
        ...r.from,
        iif: r.in ? this.devices.name(r.in) : undefined,
        oif: r.out ? this.devices.name(r.out) : undefined,
      },
      to: r.to,
      packetKind: r.packet === 'first' ? 'first' : 'unknown',
      counterDeltas: deltas,
      countersTrusted: r.t > baselineAt,
      prefix: this.prefix,
    });
    r.by = found.by;
    if (found.rule) r.rule = found.rule;
    if (found.why) r.why = found.why;
  }
}
