// nftables' JSON (`nft -j list ruleset`) and text (`nft -a list ruleset`) into the model.
import type {
  Chain,
  Match,
  NatMapEntry,
  NatMapKey,
  NatTarget,
  QueueTarget,
  Rule,
  Ruleset,
  TableFamily,
} from './model.js';
import { isHotdropMatch, NFT_HOOK } from './model.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const FAMILIES = new Set(['ip', 'ip6', 'inet']);
const VERDICTS = new Set(['drop', 'reject', 'accept', 'jump', 'goto', 'return', 'queue']);
// Statements that neither match nor decide.
const INERT = new Set(['counter', 'log', 'notrack', 'mangle', 'meta set']);

/** Named sets' elements, by "family table name" (JSON values as in an anonymous set). */
type Sets = Map<string, unknown[]>;

function values(right: unknown, sets: Sets, where: string): (string | number)[] | null {
  if (typeof right === 'string' && right.startsWith('@')) {
    // A named set: its elements, read with the ruleset (an empty set matches nothing).
    const elems = sets.get(`${where} ${right.slice(1)}`);
    return elems ? values({ set: elems }, sets, where) : null;
  }
  if (typeof right === 'number' || typeof right === 'string') return [right];
  if (right && typeof right === 'object') {
    const r = right as Json;
    if (Array.isArray(r.set)) {
      const out: (string | number)[] = [];
      for (const v of r.set) {
        const x = values(v, sets, where);
        if (!x) return null;
        out.push(...x);
      }
      return out;
    }
    if (r.elem && typeof r.elem === 'object' && 'val' in r.elem) return values(r.elem.val, sets, where); // with timeout, counter...
    if (Array.isArray(r.range)) return [`${r.range[0]}-${r.range[1]}`];
    if (r.prefix) return [`${r.prefix.addr}/${r.prefix.len}`];
  }
  return null;
}

/** One nft match expression as pathtrace matches, or null if it is beyond them. where: "family table". */
function parseMatch(m: Json, sets: Sets, where: string): Match[] | null {
  const negate = m.op === '!=';
  if (m.op !== '==' && m.op !== '!=' && m.op !== 'in') return null;
  const vals = values(m.right, sets, where);
  if (!vals) return null;
  const left = m.left ?? {};
  if (left.payload) {
    const { protocol, field } = left.payload;
    if ((protocol === 'tcp' || protocol === 'udp' || protocol === 'th') && (field === 'dport' || field === 'sport')) {
      const out: Match[] = [{ field, negate, values: vals }];
      if (protocol !== 'th') out.unshift({ field: 'l4proto', negate: false, values: [protocol] });
      return out;
    }
    if ((protocol === 'ip' || protocol === 'ip6') && (field === 'saddr' || field === 'daddr')) {
      return [
        { field: 'nfproto', negate: false, values: [protocol === 'ip' ? 'ipv4' : 'ipv6'] },
        { field, negate, values: vals },
      ];
    }
    if ((protocol === 'ip' && field === 'protocol') || (protocol === 'ip6' && field === 'nexthdr')) {
      return [{ field: 'l4proto', negate, values: vals }];
    }
    return null;
  }
  if (left.meta) {
    const key = left.meta.key;
    if (key === 'l4proto') return [{ field: 'l4proto', negate, values: vals }];
    if (key === 'iifname') return [{ field: 'iif', negate, values: vals }];
    if (key === 'oifname') return [{ field: 'oif', negate, values: vals }];
    if (key === 'nfproto') return [{ field: 'nfproto', negate, values: vals }];
  }
  return null;
}

/** xt targets (iptables-nft rules in nft's JSON) that end a packet's way. */
const XT_VERDICTS: Record<string, Rule['verdict']> = { REJECT: 'reject', DROP: 'drop' };

/** The verdicts a verdict map can give, {"vmap": {"key": ..., "data": {"set": [[value, {"drop": null}], ...]}}}
 *  or, for a named map (vmap @name), its elements as read with the ruleset. */
function vmapVerdicts(vmap: Json, sets: Sets, where: string): Json[] {
  const data = vmap?.data;
  const set = typeof data === 'string' && data.startsWith('@') ? sets.get(`${where} ${data.slice(1)}`) : data?.set;
  if (!Array.isArray(set)) return [];
  return set.flatMap((el: Json) => (Array.isArray(el) && el[1] && typeof el[1] === 'object' ? [el[1]] : []));
}

const NAT_KINDS = new Set(['dnat', 'snat', 'masquerade', 'redirect']);

/** One element of a set or map as a Match value: an address, a port, a prefix or a range. */
function elemValue(v: unknown): string | number | null {
  if (typeof v === 'string' || typeof v === 'number') return v;
  const [x = null] = values(v, new Map(), '') ?? [];
  return x;
}

/** The fields of a NAT map's key (`ip daddr . tcp dport`), or null for one beyond them. */
function natMapKey(key: Json): NatMapKey[] | null {
  const parts: Json[] = Array.isArray(key?.concat) ? key.concat : [key];
  const out: NatMapKey[] = [];
  for (const p of parts) {
    const { protocol, field } = p?.payload ?? {};
    if ((protocol === 'ip' || protocol === 'ip6') && (field === 'saddr' || field === 'daddr')) out.push({ field });
    else if ((protocol === 'tcp' || protocol === 'udp') && (field === 'sport' || field === 'dport'))
      out.push({ field, proto: protocol });
    else if (protocol === 'th' && (field === 'sport' || field === 'dport')) out.push({ field });
    else if (p?.meta?.key === 'l4proto') out.push({ field: 'l4proto' });
    else return null;
  }
  return out;
}

/** A NAT map's elements: [key, data] pairs, each side a value or a concatenation. */
function natMapEntries(data: unknown, sets: Sets, where: string): NatMapEntry[] | null {
  const elems =
    typeof data === 'string' && data.startsWith('@') ? sets.get(`${where} ${data.slice(1)}`) : (data as Json)?.set;
  if (!Array.isArray(elems)) return null;
  const out: NatMapEntry[] = [];
  const parts = (v: Json) => (Array.isArray(v?.concat) ? v.concat : [v]).map(elemValue);
  for (const el of elems) {
    if (!Array.isArray(el)) return null;
    const key = parts(el[0]);
    const [addr, port] = parts(el[1]);
    if (key.includes(null) || typeof addr !== 'string') return null;
    out.push({ key: key as (string | number)[], addr, ...(port !== undefined && port !== null && { port }) });
  }
  return out;
}

/** nft's dnat, snat, masquerade and redirect statements: {"dnat": {"addr": ..., "port": ...}}, the address
 *  possibly a map by the packet's fields. */
function natStatement(kind: string, st: Json | null, sets: Sets, where: string): NatTarget {
  const nat: NatTarget = { kind: kind as NatTarget['kind'] };
  const addr = st?.addr;
  if (addr?.map) {
    const key = natMapKey(addr.map.key);
    nat.map = { key: key ?? [], entries: key ? natMapEntries(addr.map.data, sets, where) : null };
  } else if (addr !== undefined) {
    const v = elemValue(addr);
    if (v !== null) nat.addrs = [String(v)];
  }
  if (st?.port !== undefined) {
    const v = elemValue(st.port);
    if (v !== null) nat.ports = [v];
  }
  return nat;
}

/** nft's queue statement, {"queue": {"num": 0 | {"range": [2, 3]}, "flags": "bypass" | ["bypass", "fanout"]}}
 *  (no num: queue 0); a number nft computes (`queue to jhash ...`, a map) is beyond the model. */
function queueTarget(q: Json | null): QueueTarget | undefined {
  const num = q?.num ?? 0;
  const flags: unknown[] = [q?.flags ?? []].flat();
  const [first, last] = typeof num === 'number' ? [num, num] : Array.isArray(num?.range) ? num.range : [];
  if (typeof first !== 'number' || typeof last !== 'number') return undefined;
  return { first, last, bypass: flags.includes('bypass'), fanout: flags.includes('fanout') };
}

function parseRule(expr: Json[], position: number, handle: number, text: string, sets: Sets, where: string): Rule {
  const rule: Rule = { handle, position, text, verdict: null, counter: null, matches: [] };
  for (const e of expr) {
    const [key = ''] = Object.keys(e); // '' for an empty statement: not one we model
    const xtVerdict = key === 'xt' && e.xt?.type === 'target' ? XT_VERDICTS[e.xt.name] : undefined;
    // connlimit, hashlimit (iptables-nft's xt matches) and nft's own ct count drop by themselves what they cannot count.
    const hot = key === 'ct count' ? key : key === 'xt' && e.xt?.type === 'match' ? String(e.xt.name) : '';
    if (isHotdropMatch(hot) && !rule.hotdrop) rule.hotdrop = { match: hot, before: rule.matches && [...rule.matches] };
    if (key === 'match') {
      const m = parseMatch(e.match, sets, where);
      if (m && rule.matches) rule.matches.push(...m);
      else rule.matches = null;
    } else if (key === 'counter') {
      rule.counter = { packets: e.counter.packets ?? 0, bytes: e.counter.bytes ?? 0 };
    } else if (VERDICTS.has(key)) {
      rule.verdict = key as Rule['verdict'];
      if (key === 'jump' || key === 'goto') rule.target = e[key].target;
      const queue = key === 'queue' ? queueTarget(e.queue) : undefined;
      if (queue) rule.queue = queue;
    } else if (NAT_KINDS.has(key)) {
      rule.nat = natStatement(key, e[key], sets, where);
      rule.verdict = 'accept'; // a NAT statement ends the chain for the packet it rewrites
      // `dnat ip to` in an inet table rewrites IPv4 packets only.
      const family = e[key]?.family;
      if ((family === 'ip' || family === 'ip6') && rule.matches)
        rule.matches.push({ field: 'nfproto', negate: false, values: [family === 'ip' ? 'ipv4' : 'ipv6'] });
    } else if (xtVerdict) {
      rule.verdict = xtVerdict; // iptables-nft's -j REJECT and the like
    } else if (key === 'vmap') {
      // A verdict map: it drops what maps to drop or reject; which packets do is beyond the model.
      const verdicts = vmapVerdicts(e.vmap, sets, where);
      const kinds = verdicts.flatMap((v) => Object.keys(v));
      rule.verdict = kinds.includes('drop') ? 'drop' : kinds.includes('reject') ? 'reject' : rule.verdict;
      const targets = verdicts
        .flatMap((v) => [v.jump?.target, v.goto?.target])
        .filter((x): x is string => typeof x === 'string');
      if (targets.length) rule.mapTargets = [...new Set(targets)];
      rule.matches = null;
    } else if (!INERT.has(key)) {
      rule.matches = null; // a statement we do not model (limit, ct, set lookups, xt...)
    }
  }
  return rule;
}

/** Rule texts by "family table chain handle", from `nft -a list ruleset`; counters shown as `counter`. */
export function parseNftText(text: string): Map<string, string> {
  const out = new Map<string, string>();
  let table = '',
    chain = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const [, family, name] = /^table (\w+) (\S+) \{/.exec(line) ?? [];
    if (name !== undefined) {
      table = `${family} ${name}`;
      continue;
    }
    const [, chainName] = /^chain (\S+) \{/.exec(line) ?? [];
    if (chainName !== undefined) {
      chain = chainName;
      continue;
    }
    const [, rule, handle] = /^(.*\S)\s+# handle (\d+)$/.exec(line) ?? [];
    if (rule !== undefined && chain && !line.startsWith('type ')) {
      out.set(`${table} ${chain} ${handle}`, rule.replace(/counter packets \d+ bytes \d+/, 'counter'));
    }
  }
  return out;
}

/** The ruleset from `nft -j list ruleset`; texts from parseNftText when available. */
export function parseNftJson(json: string, texts = new Map<string, string>()): Ruleset {
  const items: Json[] = (JSON.parse(json).nftables ?? []) as Json[];
  const chains = new Map<string, Chain>();
  const sets: Sets = new Map();
  for (const item of items) {
    const set = item.set ?? item.map; // named verdict maps (vmap @name) are maps
    if (set && FAMILIES.has(set.family)) sets.set(`${set.family} ${set.table} ${set.name}`, set.elem ?? []);
    const c = item.chain;
    if (!c || !FAMILIES.has(c.family)) continue;
    chains.set(`${c.family} ${c.table} ${c.name}`, {
      family: c.family as TableFamily,
      table: c.table,
      name: c.name,
      source: 'nft',
      hook: c.hook ? NFT_HOOK[c.hook] : undefined,
      priority: c.hook ? c.prio : undefined,
      policy: c.policy === 'drop' ? 'drop' : c.hook ? 'accept' : undefined,
      rules: [],
    });
  }
  for (const item of items) {
    const r = item.rule;
    if (!r || !FAMILIES.has(r.family)) continue;
    const chain = chains.get(`${r.family} ${r.table} ${r.chain}`);
    if (!chain) continue;
    const text = texts.get(`${r.family} ${r.table} ${r.chain} ${r.handle}`) ?? '';
    chain.rules.push(parseRule(r.expr ?? [], chain.rules.length + 1, r.handle, text, sets, `${r.family} ${r.table}`));
  }
  return { chains: [...chains.values()] };
}
