// Which rules dropped what the kernel counted at a netfilter hook: the DROP and REJECT rules reachable from the
// hook's base chains whose counters grew between two readings of the namespace's ruleset, and the policies that
// drop. Such a rule's counter grows by exactly the packets it ended (iptables-nft rules always count; native nft
// rules count where they have `counter`). Pure.
import { createHash } from 'node:crypto';
import { fieldMatches, reachableRules, type PacketView } from '../rules/attribute.js';
import { baseChains, policyKey, ruleKey, type Rule, type Ruleset } from '../rules/model.js';
import { HOOK_NAMES, NFPROTO_IPV4, NFPROTO_IPV6, type HookName } from '../trace/kernel-names.js';

/** A rule (or a chain's policy) and the packets it dropped between two readings. */
export interface RuleShare {
  table: string;
  chain: string;
  rule: string;
  packets: number;
}

/** Every rule's and policy's packet counter, by ruleKey and policyKey. */
export function counterValues(rs: Ruleset): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of rs.chains) {
    for (const r of c.rules) if (r.counter) out.set(ruleKey(c, r), r.counter.packets);
    if (c.policyCounter) out.set(policyKey(c), c.policyCounter.packets);
  }
  return out;
}

/** The baseline after a ruleset changed between two collections: each rule's count at the last collection where it
 *  had one, so that what it dropped since is still named at the next; a new rule (or one whose counter went back,
 *  re-created) from zero. Taking the new reading as it is would lose what the rules dropped meanwhile. */
export function rebased(before: Map<string, number>, now: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, n] of now) {
    const b = before.get(key);
    if (b !== undefined && b <= n) out.set(key, b);
  }
  return out;
}

const DROPS = new Set(['drop', 'reject']);
/** Past this, a rule's text is cut and a hash of the whole keeps it apart from others cut alike. */
export const RULE_LABEL_MAX = 80;

/** A rule's text as a label: whole when short, else cut with a stable id of the whole. */
export function ruleLabel(text: string): string {
  if (text.length <= RULE_LABEL_MAX) return text;
  const id = createHash('sha256').update(text).digest('hex').slice(0, 8);
  return `${text.slice(0, RULE_LABEL_MAX - 12)}… [${id}]`;
}

/** Whether a rule can match a packet of this family and protocol (its other conditions are not known here). */
function mayMatch(r: Rule, family: 4 | 6, proto: string): boolean {
  const p: PacketView = { family, proto, src: '', dst: '', sport: 0, dport: 0 };
  return (r.matches ?? []).every((m) => (m.field === 'l4proto' || m.field === 'nfproto' ? fieldMatches(m, p) : true));
}

/** The drop rules and policies of the hook's chains whose counters grew since `before`, for packets of this family
 *  and protocol. A policy without a counter (nft's) is not among them. */
export function ruleShares(
  before: Map<string, number>,
  after: Ruleset,
  family: 4 | 6,
  hook: HookName,
  proto: string,
): RuleShare[] {
  const out: RuleShare[] = [];
  const grew = (key: string, now: number) => now - (before.get(key) ?? 0);
  for (const base of baseChains(after, family, hook)) {
    const rules = reachableRules(
      after,
      base,
      (r) => mayMatch(r, family, proto),
      (r) => r.verdict !== null && DROPS.has(r.verdict) && mayMatch(r, family, proto),
    );
    for (const { chain, rule } of rules) {
      const n = rule.counter ? grew(ruleKey(chain, rule), rule.counter.packets) : 0;
      if (n > 0) out.push({ table: chain.table, chain: chain.name, rule: ruleLabel(rule.text), packets: n });
    }
    if (base.policy === 'drop' && base.policyCounter) {
      const n = grew(policyKey(base), base.policyCounter.packets);
      if (n > 0) out.push({ table: base.table, chain: base.name, rule: 'policy drop', packets: n });
    }
  }
  return out;
}

/** Splits `count` drops among shares by their weights, out of `total` drops the shares came from (the shares
 *  may not explain them all: the rest stays unnamed). Whole numbers, largest remainders first; sums to count. */
export function apportion(count: number, shares: number[], total: number): { named: number[]; unnamed: number } {
  const sum = shares.reduce((a, b) => a + b, 0);
  const base = Math.max(sum, total, 1);
  const exact = shares.map((w) => (count * w) / base);
  const named = exact.map(Math.floor);
  let left = Math.round(Math.min(count, (count * sum) / base)) - named.reduce((a, b) => a + b, 0);
  const order = exact.map((e, i) => [e - Math.floor(e), i] as const).sort((a, b) => b[0] - a[0]);
  for (const [, i] of order) {
    if (left <= 0) break;
    named[i]!++;
    left--;
  }
  return { named, unnamed: count - named.reduce((a, b) => a + b, 0) };
}

/** A rule's share in this interval with what it was given of the drops, and its id across intervals. */
export interface Credited extends RuleShare {
  id: string;
  given: number;
  /** The hook of its chain. */
  hook?: string;
}

/** This interval's shares at `at` (a hook, family and protocol), with what each rule counted beyond what it was
 *  given last interval added: a drop can be in one reading of the counters and only in the kernel's next counts
 *  (read first). A credited rule whose counter did not move again keeps its credit alone. */
export function withCredit(at: string, found: RuleShare[], credit: Map<string, RuleShare>): Credited[] {
  const byId = new Map(found.map((s) => [`${at}/${s.table}/${s.chain}/${s.rule}`, { ...s, given: 0 }]));
  for (const [id, c] of credit) {
    if (!id.startsWith(`${at}/`)) continue;
    const s = byId.get(id);
    if (s) s.packets += c.packets;
    else byId.set(id, { ...c, given: 0 });
  }
  return [...byId].map(([id, s]) => ({ ...s, id }));
}

/** What the rules counted beyond what they were given: their credit for the next collection with drops there. */
export function leftOver(shares: Credited[]): Map<string, RuleShare> {
  const out = new Map<string, RuleShare>();
  for (const { id, given, table, chain, rule, packets } of shares)
    if (packets > given) out.set(id, { table, chain, rule, packets: packets - given });
  return out;
}

/** The hooks ([pf, hooknum]) where the ruleset has base chains: the only ones where a rule can drop a packet, and
 *  so the only ones the agent puts its hook program at (every hook a packet meets with a program on it costs). */
export function hooksWithChains(rs: Ruleset): [number, number][] {
  const out = new Map<string, [number, number]>();
  for (const c of rs.chains) {
    if (c.hook === undefined || c.priority === undefined) continue;
    const hook = HOOK_NAMES.indexOf(c.hook);
    const pfs = c.family === 'ip' ? [NFPROTO_IPV4] : c.family === 'ip6' ? [NFPROTO_IPV6] : [NFPROTO_IPV4, NFPROTO_IPV6];
    for (const pf of pfs) out.set(`${pf}/${hook}`, [pf, hook]);
  }
  return [...out.values()].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}
