// Which table, chain and rule dropped a packet, read-only. The netfilter
// probes bracket the drop between two priorities; the chains in between are
// the candidates; rule counters that moved, and rules whose match plainly
// covers the packet, single out the rule. Pure.
import type { HookName } from '../trace/kernel-names.js';
import { PROTO_NAMES } from '../trace/record.js';
import type { NfqueueFree } from './nfqueue.js';
import {
  baseChains,
  chainKey,
  chainOwner,
  ownerHint,
  policyKey,
  ruleKey,
  type Chain,
  type HotdropMatch,
  type Match,
  type Rule,
  type Ruleset,
  type Source,
} from './model.js';

export interface PacketView {
  family: 4 | 6;
  proto: string; // tcp, udp, icmp, icmpv6
  src: string;
  dst: string;
  sport: number;
  dport: number;
  iif?: string;
  oif?: string;
}

export interface RuleAttribution {
  table: string;
  chain: string;
  family: string;
  source: Source;
  rule: {
    text: string;
    handle?: number;
    position: number;
    found: 'counters' | 'match' | 'counters+match' | 'policy' | 'trace' | 'hotdrop';
  } | null;
  /** When the evidence does not single out one rule (or chain): what it could be. */
  candidates?: string[];
  /** A match that drops by itself what it cannot evaluate (connlimit...), in a rule the packet reached: sure, it
   *  dropped the packet (nothing else can have; rule.found is 'hotdrop'), or it may have (one of the candidates). */
  hotdrop?: { match: HotdropMatch; rule: string; sure: boolean };
  guess?: boolean;
  owner?: string;
  /** What the owner's user does about it (ufw delete, DOCKER-USER...). */
  hint?: string;
  inspect?: string;
  remove?: string;
  /** Where the evidence does not single out the rule: what would (--rule-trace, when it is not on already). */
  exact?: string;
}

// ---- matching a rule against a packet -------------------------------------

export function ipToBytes(a: string): number[] | null {
  if (a.includes('.') && !a.includes(':')) {
    const p = a.split('.').map(Number);
    return p.length === 4 && p.every((x) => x >= 0 && x <= 255) ? p : null;
  }
  if (!a.includes(':')) return null;
  const [h, t] = a.split('::');
  const g = (s?: string) => (s ? s.split(':').map((x) => parseInt(x, 16)) : []);
  const head = g(h),
    tail = g(t);
  const groups = t === undefined ? head : [...head, ...Array(8 - head.length - tail.length).fill(0), ...tail];
  return groups.flatMap((x) => [x >> 8, x & 0xff]);
}

export function addrIn(addr: string, v: string): boolean | null {
  const [net = '', lenText] = v.split('/');
  const a = ipToBytes(addr),
    n = ipToBytes(net);
  if (!a || !n) return null;
  if (a.length !== n.length) return false;
  // A prefix longer than the address compares what the address has.
  const len = Math.min(a.length * 8, lenText === undefined ? Infinity : Number(lenText));
  for (let bit = 0; bit < len; bit++) {
    const m = 0x80 >> (bit % 8);
    if ((a[bit >> 3]! & m) !== (n[bit >> 3]! & m)) return false;
  }
  return true;
}

export function portIn(port: number, v: string | number): boolean {
  if (typeof v === 'number') return port === v;
  const [lo, hi] = v.split('-').map(Number);
  return hi === undefined ? port === lo : lo !== undefined && port >= lo && port <= hi;
}

export function fieldMatches(m: Match, p: PacketView): boolean | null {
  const any = (f: (v: string | number) => boolean | null) => {
    let unknown = false;
    for (const v of m.values) {
      const r = f(v);
      if (r) return true;
      if (r === null) unknown = true;
    }
    return unknown ? null : false;
  };
  let r: boolean | null;
  switch (m.field) {
    case 'l4proto':
      r = any((v) => (PROTO_NAMES[Number(v)] ?? String(v)) === p.proto || (p.proto === 'icmpv6' && v === 'ipv6-icmp'));
      break;
    case 'nfproto':
      r = any((v) => v === (p.family === 4 ? 'ipv4' : 'ipv6'));
      break;
    case 'sport':
      r = any((v) => portIn(p.sport, v));
      break;
    case 'dport':
      r = any((v) => portIn(p.dport, v));
      break;
    case 'saddr':
      r = any((v) => addrIn(p.src, String(v)));
      break;
    case 'daddr':
      r = any((v) => addrIn(p.dst, String(v)));
      break;
    case 'iif':
      r = p.iif === undefined ? null : any((v) => ifname(p.iif!, String(v)));
      break;
    case 'oif':
      r = p.oif === undefined ? null : any((v) => ifname(p.oif!, String(v)));
      break;
  }
  return r === null ? null : m.negate ? !r : r;
}

function ifname(name: string, pattern: string): boolean {
  return pattern.endsWith('+') || pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern;
}

/** true: every condition holds; false: one fails; null: cannot tell. */
export function ruleCovers(r: Rule, p: PacketView): boolean | null {
  if (r.matches === null) return null;
  let unknown = false;
  for (const m of r.matches) {
    const ok = fieldMatches(m, p);
    if (ok === false) return false;
    if (ok === null) unknown = true;
  }
  return unknown ? null : true;
}

// ---- attribution ----------------------------------------------------------

const DROPS = new Set(['drop', 'reject']);
const QUEUES = new Set(['queue']);
// Freed after the queue: by the listener's verdict, or, before 6.11, by a chain after the queue on reinjection.
const QUEUES_AND_DROPS = new Set([...DROPS, ...QUEUES]);

/** The verdicts of the rules that can have ended a packet freed by the queue machinery (free), or elsewhere. */
function endingVerdicts(free: NfqueueFree | undefined): Set<string> {
  return free === 'unqueued' ? QUEUES : free === 'after-queue' ? QUEUES_AND_DROPS : DROPS;
}

/** Rules that can end a packet here: those with one of the verdicts `ends` in the chain, or in chains it jumps
 *  to by a rule that can match it. */
function droppingRules(rs: Ruleset, chain: Chain, p: PacketView, ends: Set<string>): { chain: Chain; rule: Rule }[] {
  return reachableRules(rs, chain, p, (r) => r.verdict !== null && ends.has(r.verdict));
}

/** Rules of a match that drops by itself (hotdrop) that the packet can reach, its conditions before that match met. */
function hotdropRules(rs: Ruleset, chain: Chain, p: PacketView): { chain: Chain; rule: Rule }[] {
  return reachableRules(
    rs,
    chain,
    p,
    (r) => !!r.hotdrop && ruleCovers({ ...r, matches: r.hotdrop.before }, p) !== false,
  );
}

/** The rules `wanted` picks in the chain and in the chains it jumps or goes to by a rule that can match the packet
 *  (or, given a test of rules instead of a packet, by a rule the test passes), in the order they run. */
export function reachableRules(
  rs: Ruleset,
  chain: Chain,
  p: PacketView | ((r: Rule) => boolean),
  wanted: (r: Rule) => boolean,
): { chain: Chain; rule: Rule }[] {
  const follows = typeof p === 'function' ? p : (r: Rule) => ruleCovers(r, p) !== false;
  const out: { chain: Chain; rule: Rule }[] = [];
  const seen = new Set<string>();
  const walk = (c: Chain, depth: number) => {
    if (seen.has(chainKey(c)) || depth > 8) return;
    seen.add(chainKey(c));
    for (const r of c.rules) {
      if (wanted(r)) out.push({ chain: c, rule: r });
      const targets = r.verdict === 'jump' || r.verdict === 'goto' ? [r.target] : (r.mapTargets ?? []);
      if (!targets.length || !follows(r)) continue;
      for (const name of targets) {
        const t = rs.chains.find(
          (x) => x.source === c.source && x.family === c.family && x.table === c.table && x.name === name,
        );
        if (t) walk(t, depth + 1);
      }
    }
  };
  walk(chain, 0);
  return out;
}

export interface DropContext {
  family: 4 | 6;
  hook: HookName;
  /** Priorities of the last probe the packet passed in the hook and the next one it did not reach. */
  after: number;
  before: number;
  /** Where the kernel freed it: nft_do_chain (nftables, iptables-nft) or nf_hook_slow (legacy, others). */
  location: string;
  packet: PacketView;
  /** Packets each rule's counter gained since the last reading, by ruleKey. */
  counterDeltas: Map<string, number>;
  /** How to run a command in the traced namespace: "" or "ip netns exec NAME ". */
  prefix: string;
  /** The table a trampoline saw return the drop (its name cut to 15 characters). */
  table?: string;
  /** The counters' baseline predates the drop: a counted rule whose counter did not move did not drop it. */
  countersTrusted?: boolean;
  /** Netfilter answered the packet (RST, ICMP error) as it dropped it: a reject; false: silently, a drop. */
  answered?: boolean;
  /** Freed by the queue machinery (nfqueue.ts): a queue rule sent it there. */
  queued?: NfqueueFree;
  /** --rule-trace is on: not a thing to advise. */
  ruleTrace?: boolean;
}

/** Base chains the drop is bracketed to, from the kind of code that freed the packet. */
export function candidateChains(
  rs: Ruleset,
  d: Pick<DropContext, 'family' | 'hook' | 'after' | 'before' | 'table' | 'location'>,
): Chain[] {
  const bracketed = baseChains(rs, d.family, d.hook).filter(
    (c) =>
      c.priority! > d.after && c.priority! < d.before && (d.table === undefined || c.table.slice(0, 15) === d.table),
  );
  const nft = d.location === 'nft_do_chain';
  const legacy = d.location === 'nf_hook_slow' || d.location === 'ipt_do_table' || d.location === 'ip6t_do_table';
  const bySource = bracketed.filter((c) =>
    nft ? c.source !== 'iptables-legacy' : legacy ? c.source === 'iptables-legacy' : true,
  );
  return bySource.length ? bySource : bracketed;
}

export function commands(
  c: Chain,
  r: Rule | null,
  family: 4 | 6,
  prefix: string,
): { inspect: string; remove?: string } {
  if (c.source === 'nft') {
    return {
      inspect: `${prefix}nft -a list chain ${c.family} ${c.table} ${c.name}`,
      remove:
        r?.handle !== undefined
          ? `${prefix}nft delete rule ${c.family} ${c.table} ${c.name} handle ${r.handle}`
          : undefined,
    };
  }
  const cmd = `${family === 4 ? 'iptables' : 'ip6tables'}${c.source === 'iptables-legacy' ? '-legacy' : ''}`;
  const t = c.table === 'filter' ? '' : ` -t ${c.table}`;
  return {
    inspect: `${prefix}${cmd}${t} -L ${c.name} -v -n --line-numbers`,
    remove: r ? `${prefix}${cmd}${t} -D ${c.name} ${r.position}` : undefined,
  };
}

/** Where a rule is: its chain, table, family, source and owner, as an attribution names them. */
export function chainFields(c: Chain): Pick<RuleAttribution, 'table' | 'chain' | 'family' | 'source' | 'owner'> {
  return { table: c.table, chain: c.name, family: c.family, source: c.source, owner: chainOwner(c.table, c.name) };
}

export function describe(c: Chain, r: Rule): string {
  return (
    r.text || `${c.family} ${c.table} ${c.name} rule ${r.handle !== undefined ? `handle ${r.handle}` : r.position}`
  );
}

export function attributeDrop(rs: Ruleset, d: DropContext): RuleAttribution | null {
  return withHint(attributeDropRaw(rs, d), d.prefix, d.packet.src);
}

export function withHint(a: RuleAttribution | null, prefix: string, src?: string): RuleAttribution | null {
  const text = a?.rule?.text ?? (a?.candidates?.length === 1 ? a.candidates[0]! : '');
  const hint = a && ownerHint(a.owner, a.chain, text, prefix, src);
  return hint ? { ...a, hint } : a;
}

/** Whether every rule that could have dropped the packet is in one chain and the first of them surely matches it:
 *  rules run in order, so that one ended it before the others were reached. A rule before it that may match
 *  (a condition pathtrace cannot check), or one in another chain, could equally explain the drop. */
function firstInOneChain(possible: { chain: Chain; rule: Rule }[], covering: { chain: Chain; rule: Rule }[]): boolean {
  // Rules of one chain come in their order (droppingRules walks it).
  const [first] = covering;
  return first !== undefined && possible[0] === first && possible.every((x) => x.chain === first.chain);
}

function attributeDropRaw(rs: Ruleset, d: DropContext): RuleAttribution | null {
  const chains = candidateChains(rs, d);
  const [firstChain] = chains;
  if (!firstChain) return null;
  const delta = ({ chain, rule }: { chain: Chain; rule: Rule }) => d.counterDeltas.get(ruleKey(chain, rule)) ?? 0;
  // With a baseline from before the drop, a rule that counts and did not count this packet did not drop it.
  // A silent drop was no reject, and a reject answers (a verdict map may do either).
  const rules = chains
    .flatMap((c) => droppingRules(rs, c, d.packet, endingVerdicts(d.queued)))
    .filter((x) => !(d.countersTrusted && x.rule.counter && delta(x) === 0))
    .filter((x) => d.answered === undefined || x.rule.verdict === null || (x.rule.verdict === 'reject') === d.answered);
  const moved = rules.filter((x) => delta(x) > 0);
  const covering = rules.filter(({ rule }) => ruleCovers(rule, d.packet) === true);
  const possible = rules.filter(({ rule }) => ruleCovers(rule, d.packet) !== false);

  let pick: { chain: Chain; rule: Rule } | undefined;
  let found: NonNullable<RuleAttribution['rule']>['found'] | undefined;
  let candidates: { chain: Chain; rule: Rule }[] = [];
  if (moved.length === 1) {
    pick = moved[0]!;
    found = ruleCovers(pick.rule, d.packet) === true ? 'counters+match' : 'counters';
  } else if (moved.length > 1) {
    const both = moved.filter((m) => ruleCovers(m.rule, d.packet) !== false);
    if (both.length === 1) {
      pick = both[0];
      found = 'counters+match';
    } else candidates = both.length ? both : moved;
  } else if (firstInOneChain(possible, covering)) {
    pick = covering[0];
    found = 'match';
  } else {
    // In the order they run: the rules that may match, up to the first that surely does (the rest cannot be reached).
    const sure = possible.findIndex((x) => covering.includes(x));
    const first = possible[0];
    candidates = sure >= 0 && possible.every((x) => x.chain === first?.chain) ? possible.slice(0, sure + 1) : possible;
  }

  const chain =
    pick?.chain ?? (candidates.length === 1 ? candidates[0]!.chain : chains.length === 1 ? firstChain : undefined);
  // No rule explains it and one chain's policy can have dropped it (a drop policy whose counter moved, where
  // it has one): that policy did. A policy never answers.
  const policies = chains.filter(
    (c) =>
      c.policy === 'drop' && !(d.countersTrusted && c.policyCounter && (d.counterDeltas.get(policyKey(c)) ?? 0) === 0),
  );
  // A match that drops by itself (connlimit, hashlimit, ct count) where the packet reached it; it never answers
  // nor queues. Its rule's counter does not count what it drops: only a policy's that moved rules it out.
  const hot =
    pick || d.answered === true || d.queued === 'unqueued' ? [] : chains.flatMap((c) => hotdropRules(rs, c, d.packet));
  const counted = (c: Chain) => c.policyCounter !== undefined && (d.counterDeltas.get(policyKey(c)) ?? 0) > 0;
  if (
    !pick &&
    !candidates.length &&
    policies.length === 1 &&
    d.answered !== true &&
    d.queued !== 'unqueued' && // nor does it queue
    (!hot.length || counted(policies[0]!))
  ) {
    const c = policies[0]!;
    return {
      ...chainFields(c),
      rule: { text: policyText(c), position: 0, found: 'policy' },
      inspect: commands(c, null, d.family, d.prefix).inspect,
    };
  }
  // Nothing else can have dropped it: that match did.
  if (!pick && !candidates.length && !policies.length && hot.length === 1) return hotdropped(hot[0]!, d);
  const base = pick?.chain ?? chain ?? firstChain;
  const out: RuleAttribution = {
    table: base.table,
    chain: base.name,
    family: base.family,
    source: base.source,
    // A rule's text may tell its owner (fail2ban's ipset rule in INPUT): the rule's, or the one candidate's.
    owner: chainOwner(
      base.table,
      base.name,
      (pick ?? (candidates.length === 1 ? candidates[0] : undefined))?.rule.text,
    ),
    rule: pick
      ? { text: describe(pick.chain, pick.rule), handle: pick.rule.handle, position: pick.rule.position, found: found! }
      : null,
    ...commands(pick?.chain ?? base, pick?.rule ?? null, d.family, d.prefix),
  };
  if (!pick) {
    out.guess = true;
    const list = candidates.length
      ? candidates.map((x) => describe(x.chain, x.rule))
      : hot.length
        ? policies.map(policyText)
        : chains.map((c) => `${c.family} ${c.table} ${c.name}`);
    out.candidates = [...new Set([...list, ...hot.map((x) => describe(x.chain, x.rule))])];
    const [h] = hot;
    if (h) out.hotdrop = { match: h.rule.hotdrop!.match, rule: describe(h.chain, h.rule), sure: false };
    if (!d.ruleTrace && out.source !== 'iptables-legacy')
      out.exact = "pathtrace --rule-trace (same filter) names the rule exactly, with nftables' own trace";
    if (!chain) {
      out.table = chains.map((c) => c.table).join('|');
      out.chain = chains.map((c) => c.name).join('|');
    }
  }
  return out;
}

/** The rule an attribution names, as the ruleset holds it (its target's options with it). */
export function attributedRule(rs: Ruleset, a: RuleAttribution): Rule | undefined {
  if (!a.rule || a.rule.found === 'policy') return undefined;
  const { handle, position } = a.rule;
  return rs.chains
    .find((c) => c.source === a.source && c.family === a.family && c.table === a.table && c.name === a.chain)
    ?.rules.find((r) => (handle !== undefined ? r.handle === handle : r.position === position));
}

const policyText = (c: Chain) => `policy drop of ${c.family} ${c.table} ${c.name}`;

/** The drop a rule's match made by itself (hotdrop), not the rule's verdict. */
function hotdropped({ chain: c, rule: r }: { chain: Chain; rule: Rule }, d: DropContext): RuleAttribution {
  const text = describe(c, r);
  return {
    ...chainFields(c),
    owner: chainOwner(c.table, c.name, r.text),
    rule: { text, handle: r.handle, position: r.position, found: 'hotdrop' },
    hotdrop: { match: r.hotdrop!.match, rule: text, sure: true },
    ...commands(c, r, d.family, d.prefix),
  };
}

/** The exact rule, from nftables' own trace of the packet (--rule-trace). */
export function attributeFromTrace(
  rs: Ruleset,
  v: { family: string; table: string; chain: string; rule: string | null; handle?: number },
  family: 4 | 6,
  prefix: string,
  src?: string,
): RuleAttribution {
  const c = rs.chains.find(
    (x) => x.source !== 'iptables-legacy' && x.family === v.family && x.table === v.table && x.name === v.chain,
  );
  const r = c?.rules.find((x) => x.handle === v.handle);
  const chain: Chain = c ?? {
    family: v.family as Chain['family'],
    table: v.table,
    name: v.chain,
    source: 'nft',
    rules: [],
  };
  return withHint(
    {
      table: v.table,
      chain: v.chain,
      family: v.family,
      source: chain.source,
      owner: chainOwner(v.table, v.chain, r?.text || v.rule || ''),
      rule:
        v.rule === null
          ? { text: policyText(chain), position: 0, found: 'trace' }
          : { text: r?.text || v.rule, handle: v.handle, position: r?.position ?? 0, found: 'trace' },
      ...commands(
        chain,
        r ?? (v.handle !== undefined ? ({ handle: v.handle, position: 0 } as Rule) : null),
        family,
        prefix,
      ),
    },
    prefix,
    src,
  )!;
}
