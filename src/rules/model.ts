// The traced namespace's firewall, as far as pathtrace needs it: base chains
// by hook and priority, rules with their counters, verdicts and what they
// match, and where each came from (native nft, iptables-nft, iptables-legacy).
import type { HookName } from '../trace/kernel-names.js';

export type TableFamily = 'ip' | 'ip6' | 'inet';
export type Source = 'nft' | 'iptables-nft' | 'iptables-legacy';

/** One condition of a rule, in terms pathtrace can check against a packet. */
export interface Match {
  field: 'l4proto' | 'sport' | 'dport' | 'saddr' | 'daddr' | 'iif' | 'oif' | 'nfproto';
  negate: boolean;
  /** Alternatives: numbers, names, addresses, 'a-b' ranges, 'addr/len' prefixes. */
  values: (string | number)[];
}

/** What a NAT rule rewrites a connection's first packet to: dnat and redirect change its destination, snat and
 *  masquerade its source. Addresses and ports as Match values ('a-b' ranges, 'addr/len' prefixes). */
export interface NatTarget {
  kind: 'dnat' | 'snat' | 'masquerade' | 'redirect';
  /** The addresses it gives; undefined where the kernel picks one of the device's (masquerade, redirect). */
  addrs?: string[];
  /** The ports it gives; undefined where it keeps the port (snat and masquerade may change it for a free one). */
  ports?: (string | number)[];
  /** nft's `dnat to KEY map { ... }`: the address (and port) by the packet's fields; entries null when the map
   *  could not be read. */
  map?: { key: NatMapKey[]; entries: NatMapEntry[] | null };
}

/** A field of a NAT map's key: an address, a port (of tcp or udp, or either: th) or the protocol. */
export interface NatMapKey {
  field: 'saddr' | 'daddr' | 'sport' | 'dport' | 'l4proto';
  proto?: 'tcp' | 'udp';
}

/** A NAT map's element: the key's values, one per key field, and the address (and port) it gives. */
export interface NatMapEntry {
  key: (string | number)[];
  addr: string;
  port?: number | string;
}

export interface Rule {
  /** nft handle (nft and iptables-nft), for `nft delete rule ... handle N`. */
  handle?: number;
  /** 1-based position in its chain, for `iptables -D CHAIN N`. */
  position: number;
  /** The rule as its user would type it. */
  text: string;
  verdict: 'drop' | 'reject' | 'accept' | 'jump' | 'goto' | 'return' | 'queue' | null;
  /** Chain a jump or goto leads to. */
  target?: string;
  /** Chains a verdict map may jump or go to (which one a packet takes is beyond the model). */
  mapTargets?: string[];
  counter: { packets: number; bytes: number } | null;
  /** What it matches; null when some condition is beyond what pathtrace understands. */
  matches: Match[] | null;
  /** A NAT rule's rewrite (its verdict is then accept: the rule ends the chain for that packet). */
  nat?: NatTarget;
  /** A queue rule's target (NFQUEUE, nft's queue): where it sends packets; absent when its queue is beyond the
   *  model (nft's `queue to jhash ...`). */
  queue?: QueueTarget;
  /** A match of it that drops by itself a packet it cannot evaluate ("hotdrop"), whatever the rule's verdict, and
   *  the conditions before it (null: one is beyond the model): a packet that meets those reaches the match. */
  hotdrop?: { match: HotdropMatch; before: Match[] | null };
}

/** Where a queue rule sends a packet: to one of the queues first..last (one, or --queue-balance's range), and
 *  whether the packet passes on (bypass) when no program listens there. */
export interface QueueTarget {
  first: number;
  last: number;
  /** --queue-bypass, nft's `bypass` flag: no listener, the packet goes on instead of being dropped. */
  bypass: boolean;
  /** --queue-cpu-fanout, nft's `fanout`: the CPU picks the queue in the range, not a hash of the flow. */
  fanout: boolean;
}

/**
 * Matches whose kernel code drops a packet by itself, with no verdict of the rule, and why (par->hotdrop in
 * net/netfilter/xt_connlimit.c and xt_hashlimit.c, NF_DROP in nft_connlimit.c). connlimit and nft's ct count drop
 * a packet whose connection nf_conncount cannot count (its tuple unreadable, no memory, or a packet of a connection
 * conntrack has but no longer counts, as a reset after the close); hashlimit one it finds no room for in its table
 * (--hashlimit-htable-max) or whose ports it cannot read. Their counters do not count it: they come after the
 * match. (xt_recent drops so only when the kernel cannot allocate memory: left out.)
 */
export const HOTDROP_MATCHES = {
  connlimit: 'it could not count the connection',
  'ct count': 'it could not count the connection',
  hashlimit: 'its table was full, at --hashlimit-htable-max entries, or it could not read the ports',
} as const;
export type HotdropMatch = keyof typeof HOTDROP_MATCHES;

export const isHotdropMatch = (name: string): name is HotdropMatch => Object.hasOwn(HOTDROP_MATCHES, name);

export interface Chain {
  family: TableFamily;
  table: string;
  name: string;
  source: Source;
  /** Base chains: where they hook in and at which priority. */
  hook?: HookName;
  priority?: number;
  policy?: 'accept' | 'drop';
  /** Packets the policy decided (iptables-save -c gives them; nft does not). */
  policyCounter?: { packets: number; bytes: number };
  rules: Rule[];
}

export interface Ruleset {
  chains: Chain[];
  /** The tools that failed in this reading, each with what it said: the chains are then incomplete, and no rule
   *  missing from them was shown absent. */
  unread?: string[];
}

/** Names a chain the same whether or not its table is known to be iptables-nft's. */
export function chainKey(c: Pick<Chain, 'source' | 'family' | 'table' | 'name'>): string {
  return `${c.source === 'iptables-legacy' ? 'legacy' : 'nft'}:${c.family}:${c.table}:${c.name}`;
}

export function ruleKey(c: Chain, r: Rule): string {
  return `${chainKey(c)}#${r.handle ?? `p${r.position}`}`;
}

/** The counter key of a chain's policy, beside its rules'. */
export function policyKey(c: Chain): string {
  return `${chainKey(c)}#policy`;
}

/** Base chains of one hook that see packets of an IP family (inet chains see both). */
export function baseChains(rs: Ruleset, family: 4 | 6, hook: HookName): Chain[] {
  const fam = family === 4 ? 'ip' : 'ip6';
  return rs.chains.filter(
    (c) => c.hook === hook && c.priority !== undefined && (c.family === fam || c.family === 'inet'),
  );
}

/** Who manages a chain, when its name or table shows it; or the rule, when its text does (fail2ban's ipset
 *  action puts its rule in INPUT itself: `-m set --match-set f2b-JAIL src -j REJECT`). */
export function chainOwner(table: string, chain: string, ruleText = ''): string | undefined {
  const name = `${table} ${chain}`;
  const owners: [RegExp, string][] = [
    [/\bDOCKER\b|DOCKER-(USER|ISOLATION|FORWARD|CT|BRIDGE)/, 'docker'],
    [/\bKUBE-|\bkube-proxy\b/, 'kube-proxy'],
    [/^firewalld\b|\bfilter_(IN|OUT|FWD)_|\bnat_(PRE|POST)_/, 'firewalld'],
    [/\bufw6?-/, 'ufw'],
    [/\bCILIUM_|\bcilium/, 'cilium'],
    [/\bcali-/, 'calico'],
    [/\bf2b-/, 'fail2ban'],
    [/\bLIBVIRT_/, 'libvirt'],
    [/\bNETAVARK|\bnetavark/, 'netavark (podman)'],
    [/\bCNI-/, 'CNI'],
    [/\bcrowdsec/, 'crowdsec'],
    [/\bWEAVE\b|\bWEAVE-/, 'weave'],
  ];
  return owners.find(([re]) => re.test(name))?.[1] ?? (/--match-set f2b-/.test(ruleText) ? 'fail2ban' : undefined);
}

/**
 * The fail2ban jail behind a rule, as fail2ban's actions name what they make (action.d/iptables*.conf,
 * nftables.conf): the ipset `f2b-JAIL` (`f2b-JAIL6` for IPv6), the nft set `addr-set-JAIL` (`addr6-set-JAIL`)
 * in table f2b-table's chain f2b-chain, or the chain `f2b-JAIL` the iptables actions jump to.
 */
export function fail2banJail(chain: string, ruleText: string, v6: boolean): string | undefined {
  const ipset = /--match-set f2b-(\S+)/.exec(ruleText)?.[1];
  if (ipset) return v6 ? ipset.replace(/6$/, '') : ipset;
  const nftSet = /@addr6?-set-(\S+)/.exec(ruleText)?.[1];
  if (nftSet) return nftSet;
  return chain === 'f2b-chain' ? undefined : /^f2b-(.+)$/.exec(chain)?.[1];
}

/** Standard priorities of the iptables-legacy tables, by hook (they register like the nft defaults). */
export const LEGACY_PRIORITIES: Record<string, Partial<Record<HookName, number>>> = {
  raw: { PRE_ROUTING: -300, LOCAL_OUT: -300 },
  mangle: { PRE_ROUTING: -150, LOCAL_IN: -150, FORWARD: -150, LOCAL_OUT: -150, POST_ROUTING: -150 },
  nat: { PRE_ROUTING: -100, LOCAL_IN: 100, LOCAL_OUT: -100, POST_ROUTING: 100 },
  filter: { LOCAL_IN: 0, FORWARD: 0, LOCAL_OUT: 0 },
  security: { LOCAL_IN: 50, FORWARD: 50, LOCAL_OUT: 50 },
};

/** iptables' builtin chain names, by hook. */
export const IPTABLES_CHAIN_HOOK: Record<string, HookName> = {
  PREROUTING: 'PRE_ROUTING',
  INPUT: 'LOCAL_IN',
  FORWARD: 'FORWARD',
  OUTPUT: 'LOCAL_OUT',
  POSTROUTING: 'POST_ROUTING',
};

export const NFT_HOOK: Record<string, HookName> = {
  prerouting: 'PRE_ROUTING',
  input: 'LOCAL_IN',
  forward: 'FORWARD',
  output: 'LOCAL_OUT',
  postrouting: 'POST_ROUTING',
};

/**
 * What the user of the tool that owns a chain would do about its rule: ufw's and
 * firewalld's users change the rule through their tool, Docker's add theirs to
 * DOCKER-USER, kube-proxy's rules follow Services. Undefined for chains nobody owns.
 */
export function ownerHint(
  owner: string | undefined,
  chain: string,
  ruleText: string,
  prefix: string,
  /** The packet's source: the address a ban is on. */
  src?: string,
): string | undefined {
  switch (owner) {
    case 'ufw':
      return `a ufw rule or policy: ${prefix}ufw status numbered, then ${prefix}ufw delete NUM (or ufw default allow incoming for the policy)`;
    case 'firewalld':
      return `a firewalld zone's rule: ${prefix}firewall-cmd --list-all (--zone ZONE), and change it with firewall-cmd --permanent`;
    case 'docker':
      return chain === 'DOCKER-USER'
        ? 'DOCKER-USER holds your own rules for containers: Docker leaves them as they are'
        : `Docker rewrites this chain: put rules of your own in DOCKER-USER (${prefix}iptables -I DOCKER-USER ...)`;
    case 'kube-proxy':
      return /has no endpoints/.test(ruleText)
        ? 'kube-proxy rejects traffic to a Service without endpoints: kubectl get endpoints for that Service'
        : 'kube-proxy rewrites this chain from Services and endpoints: change those, not the rule';
    case 'fail2ban': {
      const jail = fail2banJail(chain, ruleText, src?.includes(':') ?? false);
      return (
        `a fail2ban ban${jail ? ` (jail ${jail})` : ''}: ${prefix}fail2ban-client status ${jail ?? '(lists the jails)'}, ` +
        `and ${prefix}fail2ban-client set ${jail ?? 'JAIL'} unbanip ${src ?? 'ADDRESS'}`
      );
    }
    default:
      return undefined;
  }
}
