// Where to put netfilter probes between chains: one just above each base
// chain's priority (never at it: EBUSY), so that a drop is bracketed to the
// chains between the last probe a packet passed and the next. Pure.
import { HOOK_NAMES, type HookName } from '../trace/kernel-names.js';
import { baseChains, chainKey, type Ruleset } from './model.js';

/** Probe slots 1 .. BETWEEN_SLOTS sit between chains (0 is the entry, the last the exit). */
export const BETWEEN_SLOTS = 6;

export interface Gap {
  family: 4 | 6;
  hook: HookName;
  priority: number;
  slot: number;
  below: number;
  above: number;
}

/** The chain priorities of one hook, ascending, without duplicates. */
export function hookPriorities(rs: Ruleset, family: 4 | 6, hook: HookName): number[] {
  return [...new Set(baseChains(rs, family, hook).map((c) => c.priority!))].sort((a, b) => a - b);
}

/** A probe in each gap between consecutive chain priorities, at most BETWEEN_SLOTS per hook. */
export function planGaps(rs: Ruleset): Gap[] {
  const gaps: Gap[] = [];
  for (const family of [4, 6] as const) {
    for (const hook of HOOK_NAMES) {
      const prios = hookPriorities(rs, family, hook);
      let slot = 1;
      for (const [i, below] of prios.entries()) {
        const above = prios[i + 1];
        if (above === undefined || slot > BETWEEN_SLOTS) break;
        if (above - below < 2) continue; // adjacent priorities leave no room
        gaps.push({ family, hook, priority: below + 1, slot: slot++, below, above });
      }
    }
  }
  return gaps;
}

/** A fingerprint of the chain layout: probes move when it changes. */
export function layoutSignature(rs: Ruleset): string {
  return rs.chains
    .filter((c) => c.hook)
    .map((c) => `${chainKey(c)}:${c.hook}:${c.priority}`)
    .sort()
    .join('|');
}

/** "+inet t c (LOCAL_IN, priority 10)" for each base chain that came (+) or went (-). */
export function layoutChanges(before: string, after: string): string[] {
  const a = new Set(before.split('|').filter(Boolean)),
    b = new Set(after.split('|').filter(Boolean));
  const show = (sign: string) => (x: string) => {
    const [, family, table, chain, hook, prio] = x.split(':');
    return `${sign}${family} ${table} ${chain} (${hook}, priority ${prio})`;
  };
  return [...[...b].filter((x) => !a.has(x)).map(show('+')), ...[...a].filter((x) => !b.has(x)).map(show('-'))];
}
