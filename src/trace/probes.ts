// The netfilter probes of a session: one at the entry and one at the exit of
// each hook, and one in each gap between the hook's chains; in a family (IPv4,
// IPv6) without chains, the entry probes alone (each probe a packet meets costs,
// and nothing there drops or rewrites a packet). Re-placed when the ruleset
// changes; and what priority each probe slot sits at.
import { HOOK_NAMES, NFPROTO_IPV4, NFPROTO_IPV6, type HookName } from './kernel-names.js';
import type { NativeTracer, NetfilterRequest, NetfilterResult } from './native.js';
import { NF_SLOT_ENTRY, NF_SLOT_EXIT, NF_SLOTS } from './record.js';
import { hookPriorities, planGaps, type Gap } from '../rules/plan.js';
import type { Ruleset } from '../rules/model.js';

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;

export interface HookProbes {
  family: 'ipv4' | 'ipv6';
  hook: HookName;
  entry: number | null; // priority, null when it could not attach
  exit: number | null; // null also in a family without chains: the entry probe alone sees packets pass
  bracketed: boolean; // entry and exit: a drop there is placed between them
  between: number[]; // probes between chains
}

/** Entry probes just after INT_MIN (refused), exit probes just before INT_MAX;
 *  on EBUSY (priority taken by a chain or another tracer) the next one inward. */
export function bracketPlan(): NetfilterRequest[] {
  const plan: NetfilterRequest[] = [];
  for (const pf of [NFPROTO_IPV4, NFPROTO_IPV6]) {
    for (let hook = 0; hook < HOOK_NAMES.length; hook++) {
      plan.push({ pf, hook, slot: NF_SLOT_ENTRY, priority: INT_MIN + 1, step: 1, maxTries: 64 });
      plan.push({ pf, hook, slot: NF_SLOT_EXIT, priority: INT_MAX - 1, step: -1, maxTries: 64 });
    }
  }
  return plan;
}

function errnoName(errno: number): string {
  return errno === 16
    ? 'every priority tried is taken (EBUSY)'
    : errno === 95
      ? 'not supported (EOPNOTSUPP)'
      : `errno ${errno}`;
}

const key = (family: 4 | 6, hook: HookName) => `${family}:${hook}`;

function hookName(hook: number): HookName {
  const name = HOOK_NAMES[hook];
  if (name === undefined) throw new Error(`no netfilter hook ${hook}`);
  return name;
}

/** Each request with the addon's result for it: one per request, in their order. */
function withResults<Q>(requests: Q[], results: NetfilterResult[]): [Q, NetfilterResult][] {
  if (results.length !== requests.length)
    throw new Error(`${results.length} results for ${requests.length} netfilter requests`);
  return requests.map((q, i) => [q, results[i]!]);
}

export class NetfilterProbes {
  /** Priority of each attached slot, by family and hook. */
  private readonly slots = new Map<string, Map<number, number>>();
  private gapLinks: number[] = [];
  /** Exit probes by hook, while attached. */
  private readonly exitLinks = new Map<string, number>();
  readonly failures: { point: string; reason: string }[] = [];

  constructor(
    private readonly tracer: NativeTracer,
    private readonly nsPath: string,
  ) {}

  /** Attaches the entry and exit probes of every hook. */
  attachBrackets(): void {
    const plan = bracketPlan();
    const results = this.tracer.attachNetfilter(this.nsPath, plan);
    for (const [rq, r] of withResults(plan, results)) {
      const family = rq.pf === NFPROTO_IPV4 ? 4 : 6;
      const hook = hookName(rq.hook);
      if (r.errno) {
        this.failures.push({
          point: `netfilter ipv${family} ${hook} ${rq.slot === NF_SLOT_ENTRY ? 'entry' : 'exit'}`,
          reason: errnoName(r.errno),
        });
      } else {
        this.slotsOf(family, hook).set(rq.slot, r.priority);
        if (rq.slot === NF_SLOT_EXIT) this.exitLinks.set(key(family, hook), r.link);
      }
    }
    this.reindex();
  }

  /** Exit probes only in a family with chains: detached where the ruleset has none, attached again where
   *  chains came. Not per hook: one chain brings conntrack and NAT to every hook of its family, and they
   *  rewrite (and may drop) packets where no chain is. A chain that comes before this runs still sits
   *  after the entry probe, so a drop there is still placed in its hook (the packet entered it, and
   *  never went further). */
  private placeExits(rs: Ruleset): void {
    const wanted: { family: 4 | 6; hook: HookName; rq: NetfilterRequest }[] = [];
    for (const family of [4, 6] as const) {
      const chains = HOOK_NAMES.some((hook) => hookPriorities(rs, family, hook).length > 0);
      HOOK_NAMES.forEach((hook, h) => {
        const k = key(family, hook);
        const link = this.exitLinks.get(k);
        if (!chains && link !== undefined) {
          this.tracer.detachLink(link);
          this.exitLinks.delete(k);
          this.slotsOf(family, hook).delete(NF_SLOT_EXIT);
        } else if (chains && link === undefined && this.slotsOf(family, hook).has(NF_SLOT_ENTRY)) {
          wanted.push({
            family,
            hook,
            rq: {
              pf: family === 4 ? NFPROTO_IPV4 : NFPROTO_IPV6,
              hook: h,
              slot: NF_SLOT_EXIT,
              priority: INT_MAX - 1,
              step: -1,
              maxTries: 64,
            },
          });
        }
      });
    }
    const results = wanted.length
      ? this.tracer.attachNetfilter(
          this.nsPath,
          wanted.map((w) => w.rq),
        )
      : [];
    for (const [{ family, hook }, r] of withResults(wanted, results)) {
      if (r.errno) continue; // the hook's entry probe still sees its packets pass
      this.exitLinks.set(key(family, hook), r.link);
      this.slotsOf(family, hook).set(NF_SLOT_EXIT, r.priority);
    }
  }

  /** Whether the hook's entry probe is its only one: a packet it sees passes the hook (no chains in its family). */
  passOnly(family: number, hook: number): boolean {
    return (
      this.priority(family, hook, NF_SLOT_ENTRY) !== undefined &&
      this.priority(family, hook, NF_SLOT_EXIT) === undefined
    );
  }

  private slotsOf(family: 4 | 6, hook: HookName): Map<number, number> {
    let m = this.slots.get(key(family, hook));
    if (!m) this.slots.set(key(family, hook), (m = new Map()));
    return m;
  }

  /** Puts an exit probe at each hook with chains and a probe in each gap between its chains; the previous
   *  gap probes go. Returns the gaps. */
  place(rs: Ruleset): Gap[] {
    this.placeExits(rs);
    for (const id of this.gapLinks) this.tracer.detachLink(id);
    this.gapLinks = [];
    for (const m of this.slots.values())
      for (const slot of [...m.keys()]) if (slot !== NF_SLOT_ENTRY && slot !== NF_SLOT_EXIT) m.delete(slot);
    const gaps = planGaps(rs);
    const requests = gaps.map((g) => ({
      pf: g.family === 4 ? NFPROTO_IPV4 : NFPROTO_IPV6,
      hook: HOOK_NAMES.indexOf(g.hook),
      slot: g.slot,
      priority: g.priority,
      step: 1,
      maxTries: Math.max(1, g.above - g.priority),
    }));
    const results = requests.length ? this.tracer.attachNetfilter(this.nsPath, requests) : [];
    const placed: Gap[] = [];
    for (const [g, r] of withResults(gaps, results)) {
      if (r.errno) continue; // a gap we could not fill only makes the bracket wider
      this.gapLinks.push(r.link);
      this.slotsOf(g.family, g.hook).set(g.slot, r.priority);
      placed.push({ ...g, priority: r.priority });
    }
    this.reindex();
    return placed;
  }

  /** Priorities by (family, hook, slot) in a flat array: this is asked for every netfilter event. */
  private flat: (number | undefined)[] = [];

  private static flatIndex(family: number, hook: number, slot: number): number {
    return ((family === 4 ? 0 : 1) * 5 + hook) * NF_SLOTS + slot;
  }

  priority(family: number, hook: number, slot: number): number | undefined {
    return this.flat[NetfilterProbes.flatIndex(family, hook, slot)];
  }

  private reindex(): void {
    this.flat = [];
    for (const family of [4, 6] as const) {
      HOOK_NAMES.forEach((hook, h) => {
        for (const [slot, prio] of this.slots.get(key(family, hook)) ?? [])
          this.flat[NetfilterProbes.flatIndex(family, h, slot)] = prio;
      });
    }
  }

  /** The probe priorities of a hook, ascending. */
  priorities(family: 4 | 6, hook: HookName): number[] {
    return [...(this.slots.get(key(family, hook))?.values() ?? [])].sort((a, b) => a - b);
  }

  describe(): HookProbes[] {
    const out: HookProbes[] = [];
    for (const family of [4, 6] as const) {
      for (const hook of HOOK_NAMES) {
        const m = this.slots.get(key(family, hook));
        out.push({
          family: family === 4 ? 'ipv4' : 'ipv6',
          hook,
          entry: m?.get(NF_SLOT_ENTRY) ?? null,
          exit: m?.get(NF_SLOT_EXIT) ?? null,
          bracketed: m?.has(NF_SLOT_ENTRY) === true && m.has(NF_SLOT_EXIT),
          between: [...(m?.entries() ?? [])]
            .filter(([s]) => s !== NF_SLOT_ENTRY && s !== NF_SLOT_EXIT)
            .map(([, p]) => p)
            .sort((a, b) => a - b),
        });
      }
    }
    return out;
  }
}
