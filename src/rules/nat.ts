// Which rule rewrote a packet's addresses or ports (DNAT, SNAT, MASQUERADE, REDIRECT), read-only. The netfilter
// steps where the tuple changed bracket the NAT chains (a hook, and the probes' priorities around the change); the
// rule is the one whose match covers the tuple before and whose target gives the tuple after, singled out by its
// counter where counters tell. NAT rules see a connection's first packet only: a packet no rule counted was
// rewritten by conntrack, as the first one was. Pure.
import type { HookName } from '../trace/kernel-names.js';
import { PROTO_NAMES } from '../trace/record.js';
import {
  addrIn,
  chainFields,
  commands,
  describe,
  ipToBytes,
  portIn,
  reachableRules,
  ruleCovers,
  type PacketView,
  type RuleAttribution,
} from './attribute.js';
import { baseChains, ruleKey, type Chain, type NatMapEntry, type NatTarget, type Rule, type Ruleset } from './model.js';

export interface NatTuple {
  src: string;
  dst: string;
  sport: number;
  dport: number;
}

export interface NatContext {
  family: 4 | 6;
  hook: HookName;
  /** The probes' priorities the rewrite happened between. */
  after: number;
  before: number;
  /** The packet as the NAT chains saw it: the tuple before the rewrite, and the hook's devices. */
  packet: PacketView;
  to: NatTuple;
  /** first: surely a connection's first packet (a rule rewrote it); unknown: a rule, or conntrack. */
  packetKind: 'first' | 'unknown';
  /** Packets each rule's counter gained since the last reading, by ruleKey. */
  counterDeltas: Map<string, number>;
  /** The counters' baseline predates the rewrite: a counting rule that did not move did not rewrite it. */
  countersTrusted: boolean;
  /** How to run a command in the traced namespace: "" or "ip netns exec NAME ". */
  prefix: string;
}

export interface NatFinding {
  by: 'rule' | 'conntrack' | 'unknown';
  /** The rule (found), or its candidates (guess). */
  rule?: RuleAttribution;
  why?: string;
}

/** The NAT chains the rewrite is bracketed to. */
export function natChains(rs: Ruleset, c: Pick<NatContext, 'family' | 'hook' | 'after' | 'before'>): Chain[] {
  return baseChains(rs, c.family, c.hook)
    .filter((x) => x.priority! > c.after && x.priority! < c.before)
    .sort((a, b) => a.priority! - b.priority!);
}

/** Whether an address is in a value: an address, a prefix, or an 'a-b' range. */
function addrInValue(addr: string, v: string): boolean | null {
  const dash = v.indexOf('-');
  if (dash < 0) return addrIn(addr, v);
  const [a, lo, hi] = [ipToBytes(addr), ipToBytes(v.slice(0, dash)), ipToBytes(v.slice(dash + 1))];
  if (!a || !lo || !hi) return null;
  if (a.length !== lo.length) return false;
  const order = (x: number[], y: number[]) => {
    const i = x.findIndex((b, k) => b !== y[k]);
    return i < 0 ? 0 : x[i]! - y[i]!;
  };
  return order(a, lo) >= 0 && order(a, hi) <= 0;
}

/** true / false / null (cannot tell), over alternatives. */
function anyOf<T>(values: T[], f: (v: T) => boolean | null): boolean | null {
  let unknown = false;
  for (const v of values) {
    const r = f(v);
    if (r) return true;
    if (r === null) unknown = true;
  }
  return unknown ? null : false;
}

/** The map's element for the packet; null when none is (the rule then does nothing), undefined when it cannot
 *  be told. */
function mapLookup(map: NonNullable<NatTarget['map']>, p: PacketView): NatMapEntry | null | undefined {
  if (!map.entries || !map.key.length) return undefined;
  const ports = p.proto === 'tcp' || p.proto === 'udp';
  for (const entry of map.entries) {
    let hit: boolean | null = true;
    map.key.forEach((k, i) => {
      const v = entry.key[i];
      if (v === undefined || hit === false) return;
      let r: boolean | null;
      if ((k.field === 'sport' || k.field === 'dport') && (!ports || (k.proto && k.proto !== p.proto))) r = false;
      else if (k.field === 'sport' || k.field === 'dport') r = portIn(k.field === 'sport' ? p.sport : p.dport, v);
      else if (k.field === 'l4proto') r = (PROTO_NAMES[Number(v)] ?? String(v)) === p.proto;
      else r = addrInValue(k.field === 'saddr' ? p.src : p.dst, String(v));
      hit = r === false ? false : r === null ? null : hit;
    });
    if (hit === true) return entry;
    if (hit === null) return undefined;
  }
  return null;
}

/** Whether the rule's target gives the new tuple from the old: the address in its addresses (or the map's for
 *  the packet), the port in its ports, or kept where it names none (snat and masquerade may change it to a
 *  free one; redirect and masquerade take a device's address). Pure. */
export function natGives(n: NatTarget, p: PacketView, to: NatTuple): boolean | null {
  const dstSide = n.kind === 'dnat' || n.kind === 'redirect';
  const [addr, port, oldPort] = dstSide ? [to.dst, to.dport, p.dport] : [to.src, to.sport, p.sport];
  let addrs = n.addrs,
    ports = n.ports;
  if (n.map) {
    const hit = mapLookup(n.map, p);
    if (hit === undefined) return null;
    if (hit === null) return false;
    addrs = [hit.addr];
    if (hit.port !== undefined) ports = [hit.port];
  }
  const addrOk = addrs ? anyOf(addrs, (v) => addrInValue(addr, v)) : true;
  if (addrOk === false) return false;
  // Ports belong to TCP and UDP; ICMP's id is the kernel's to change.
  const hasPorts = p.proto === 'tcp' || p.proto === 'udp';
  const portOk = !hasPorts || (ports ? ports.some((v) => portIn(port, v)) : !dstSide || port === oldPort);
  return portOk ? addrOk : false;
}

/** A named NAT rule as the drop attributions name theirs. */
function named(c: Chain, r: Rule, found: 'counters' | 'match' | 'counters+match', ctx: NatContext): RuleAttribution {
  return {
    ...chainFields(c),
    rule: { text: describe(c, r), handle: r.handle, position: r.position, found },
    ...commands(c, r, ctx.family, ctx.prefix),
  };
}

/** The candidates, in the order they run; the chain named when they share one. */
function guessed(list: { chain: Chain; rule: Rule }[], chains: Chain[]): RuleAttribution {
  const owners = list.length ? list.map((x) => x.chain) : chains;
  const one = owners.every((c) => c === owners[0]) ? owners[0] : undefined;
  const base = one ?? owners[0]!;
  return {
    ...chainFields(base),
    // In several chains: all of them, as a drop's candidates in several chains are named.
    ...(!one && {
      table: [...new Set(owners.map((c) => c.table))].join('|'),
      chain: [...new Set(owners.map((c) => c.name))].join('|'),
    }),
    rule: null,
    guess: true,
    candidates: [...new Set(list.map((x) => describe(x.chain, x.rule)))],
  };
}

const DST_KINDS = new Set(['dnat', 'redirect']);
const SRC_KINDS = new Set(['snat', 'masquerade']);

/** Who rewrote the packet: the NAT rule, its candidates, or conntrack. */
export function attributeNat(rs: Ruleset, ctx: NatContext): NatFinding {
  const p = ctx.packet,
    to = ctx.to;
  const ports = p.proto === 'tcp' || p.proto === 'udp';
  const dst = p.dst !== to.dst || (ports && p.dport !== to.dport);
  const src = p.src !== to.src || (ports && p.sport !== to.sport);
  const kinds = new Set([...(dst ? DST_KINDS : []), ...(src ? SRC_KINDS : [])]);
  const chains = natChains(rs, ctx);
  const where = `${ctx.hook}${chains.length ? ` (${chains.map((c) => `${c.family} ${c.table} ${c.name}`).join(', ')})` : ''}`;
  const fits = chains
    .flatMap((c) => reachableRules(rs, c, p, (r) => r.nat !== undefined && kinds.has(r.nat.kind)))
    .map((x) => ({ ...x, covers: ruleCovers(x.rule, p), gives: natGives(x.rule.nat!, p, to) }))
    .filter((x) => x.covers !== false && x.gives !== false);
  const sure = (x: (typeof fits)[number]) => x.covers === true && x.gives === true;
  const delta = (x: { chain: Chain; rule: Rule }) => ctx.counterDeltas.get(ruleKey(x.chain, x.rule)) ?? 0;
  // With a baseline from before the rewrite, a rule that counts and did not count this packet did not rewrite it.
  const counted = fits.filter((x) => !(ctx.countersTrusted && x.rule.counter && delta(x) === 0));
  const moved = counted.filter((x) => delta(x) > 0);
  // A rule without a counter that could have done it leaves a moved counter (another packet's, maybe) unsure.
  const uncounted = counted.filter((x) => !x.rule.counter);
  const orConntrack = ctx.packetKind === 'unknown' ? '; or conntrack did, for a connection set up before' : '';
  const maybe = ctx.packetKind === 'first' ? 'rule' : 'unknown';

  if (moved.length && !uncounted.length) {
    const both = moved.filter(sure);
    const pick = moved.length === 1 ? moved[0]! : both.length === 1 ? both[0]! : undefined;
    if (pick)
      return { by: 'rule', rule: named(pick.chain, pick.rule, sure(pick) ? 'counters+match' : 'counters', ctx) };
    return {
      by: maybe,
      rule: guessed(both.length ? both : moved, chains),
      why: `several NAT rules that give it counted packets${orConntrack}`,
    };
  }
  if (!counted.length) {
    if (fits.length && ctx.packetKind === 'unknown')
      return {
        by: 'conntrack',
        why: 'no NAT rule that gives it counted a packet: an earlier packet set up the connection and its mapping',
      };
    if (fits.length) return { by: 'rule', rule: guessed(fits, chains), why: 'no NAT rule that gives it counted it' };
    return {
      by: 'unknown',
      why: chains.length
        ? `no NAT rule at ${where} gives this rewrite: a rule since removed, or a rewrite outside the ruleset`
        : `no NAT chain at ${ctx.hook} in the ruleset now: a rule since removed, or a rewrite outside the ruleset`,
    };
  }
  // No counter tells. One rule alone matches the packet and gives its new tuple: a first packet's is that one.
  // (Of several, which ran first is not enough: a rule between them may return or accept the packet.)
  const [only] = counted;
  if (counted.length === 1 && ctx.packetKind === 'first' && sure(only!))
    return { by: 'rule', rule: named(only!.chain, only!.rule, 'match', ctx) };
  return {
    by: maybe,
    rule: guessed(counted, chains),
    why: `${counted.length === 1 ? 'its match or target cannot be checked in full' : 'several NAT rules could give it, and no counter tells which'}${orConntrack}`,
  };
}
