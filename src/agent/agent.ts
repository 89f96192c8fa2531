// The agent's engine: the counting programs loaded once, their hook programs in every namespace as namespaces come
// and go, and each interval the kernel's counts turned into metrics, netfilter drops named by the rules whose
// counters grew meanwhile.
import { readFileSync, statSync } from 'node:fs';
import { release } from 'node:os';
import type { Ruleset } from '../rules/model.js';
import { RulesetReader } from '../rules/read.js';
import { RulesetWatch } from '../rules/watch.js';
import { Symbolizer } from '../trace/kallsyms.js';
import { EnumNames, HOOK_NAMES, NFPROTO_IPV4, NFPROTO_IPV6 } from '../trace/kernel-names.js';
import { native, type NativeAgent } from '../trace/native.js';
import { HOOK_NONE } from '../trace/record.js';
import {
  eventOf,
  keyOf,
  labelsOf,
  labelsOwner,
  type DropCount,
  type DropEvent,
  type DropLabels,
  type Namer,
} from './labels.js';
import { AgentMetrics } from './metrics.js';
import { hostNamespaces, type HostNetns } from './namespaces.js';
import { ownerText, Owners, type Owner } from './owners.js';
import {
  apportion,
  counterValues,
  hooksWithChains,
  leftOver,
  rebased,
  ruleShares,
  withCredit,
  type Credited,
  type RuleShare,
} from './rule-shares.js';

/** netfilter's functions whose frees are a hook's drop: a verdict (nf_hook_slow; since 6.11 the table evaluators
 *  free what they drop), a queue with no listener (at most 8: bpf/drop_counts.h). */
const NF_FREERS = [
  'nf_hook_slow',
  'nf_hook_slow_list',
  'nft_do_chain',
  'ipt_do_table',
  'ip6t_do_table',
  'nf_queue',
  'nf_reinject',
];
/** The modules loaded: one that loads later (nf_tables, ip_tables) brings its freer, and kallsyms is read again. */
function loadedModules(): string {
  try {
    return readFileSync('/proc/modules', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[0])
      .join(' ');
  } catch {
    return '';
  }
}

export class AgentError extends Error {}

function inodeOf(file: string): number {
  try {
    return statSync(file).ino;
  } catch {
    return 0;
  }
}

const ALL_HOOKS: [number, number][] = [NFPROTO_IPV4, NFPROTO_IPV6].flatMap((pf) =>
  HOOK_NAMES.map((_, hook): [number, number] => [pf, hook]),
);

export interface AgentOptions {
  /** Count only drops of TCP and UDP to or from these ports; null: all drops. */
  ports: number[] | null;
  /** A tcpdump expression compiled (classic BPF): count only the drops it takes; null: all. */
  expression: Uint8Array | null;
  /** Drops counted by the port of `ports` they have (a port label). */
  labelPorts: boolean;
  maxSeries: number;
  /** How long a namespace that went keeps its series (Prometheus still sees its last values meanwhile). */
  forgetAfterMs: number;
  version: string;
  log: (line: string) => void;
  /** A new kind of drop, with its first packet. */
  onDrop?: (e: DropEvent) => void;
  /** Drops counted, by the labels they were counted by (the overflow series' past the cap): for other exports. */
  onCount?: (labels: DropLabels, packets: number, bytes: number) => void;
}

interface Watched extends HostNetns {
  /** Its hook programs' links, by "pf/hooknum". */
  links: Map<string, number>;
  /** Tells when its ruleset changed (null where the kernel does not let us listen: read at start only). */
  watch: RulesetWatch | null;
  devices: Record<number, string>;
  /** Its rules' packet counters at the last reading, for what grew since; null until read. */
  counters: Map<string, number> | null;
  /** What rules counted beyond the drops they were given, by rule, for the next interval. */
  credit: Map<string, RuleShare>;
  goneAt?: number;
}

/** A count's growth since the last collection, with its labels. */
interface Growth {
  count: DropCount;
  labels: DropLabels;
  packets: number;
  bytes: number;
  /** Its labels with the rule that dropped most of it, where one did. */
  named?: DropLabels;
}

export class DropAgent {
  readonly metrics: AgentMetrics;
  private readonly agent: NativeAgent;
  private readonly watched = new Map<number, Watched>();
  /** Each kernel key's counts at the last collection. */
  private readonly last = new Map<string, { netns: number; packets: number; bytes: number }>();
  private lastUnkeyed = 0;
  private lastSamplesLost = 0;
  private symbols = Symbolizer.fromProc();
  private freersFound = 0;
  /** The modules when kallsyms was last read for the freers. */
  private modules: string | null = null;
  private readonly reasons: EnumNames;
  private readonly namer: Namer;
  private readonly told = new Set<string>();
  private readonly owners = new Owners();
  /** Owners gone from a namespace that stays (a container stopped in a namespace pinned by name): their series
   *  go after --forget-after, like a namespace's. */
  private readonly ownersGone: { inode: number; netns: string; owner: Owner; at: number }[] = [];
  /** The host's namespace: a container on the host's network does not make it its own. */
  private readonly hostNetns = inodeOf('/proc/1/ns/net');

  constructor(private readonly o: AgentOptions) {
    const n = native();
    try {
      this.agent = new n.Agent(o.ports, o.expression ?? undefined, o.labelPorts);
    } catch (e) {
      throw new AgentError((e as Error).message);
    }
    this.placeFreers();
    this.reasons = new EnumNames(n.kernelEnum('skb_drop_reason'), 'SKB_DROP_REASON_');
    this.metrics = new AgentMetrics(
      { version: o.version, kernel: release(), libbpf: n.libbpfVersion() },
      o.maxSeries,
      o.labelPorts,
    );
    this.namer = {
      netns: (inode) => this.watched.get(inode)?.name ?? String(inode),
      owner: (inode) => this.owners.owner(inode),
      device: (inode, ifindex) => this.device(inode, ifindex),
      location: (a) => this.symbols.lookup(Number(a >> 32n), Number(a & 0xffffffffn)),
      reason: (v) => this.reasons.name(v),
    };
  }

  /** Tells the kernel side where netfilter's freeing functions are, those of modules loaded since included. */
  private placeFreers(): void {
    if (this.freersFound === NF_FREERS.length) return;
    const modules = loadedModules();
    if (modules === this.modules) return;
    if (this.modules !== null) this.symbols = Symbolizer.fromProc();
    this.modules = modules;
    const ranges = NF_FREERS.map((f) => this.symbols.extent(f)).filter((e): e is [bigint, bigint] => e !== null);
    if (ranges.length > this.freersFound) this.agent.setNfFreers(ranges);
    this.freersFound = ranges.length;
  }

  /** Attaches everything; throws AgentError with what the kernel refused. */
  async start(): Promise<void> {
    const why = this.agent.attachDrops();
    if (why) throw new AgentError(why);
    if (!this.agent.netfilterLinks())
      this.o.log('this kernel has no netfilter BPF programs (6.4+): drops are counted, but not by hook or rule');
    await this.scan();
  }

  /** Follows the namespaces: the new ones watched (their rules read for a baseline), those gone forgotten after a
   *  while. */
  async scan(): Promise<void> {
    this.placeFreers();
    const now = hostNamespaces();
    const present = new Set(now.map((n) => n.inode));
    const added: Watched[] = [];
    for (const ns of now) {
      const w = this.watched.get(ns.inode);
      if (w) {
        w.goneAt = undefined;
        w.path = ns.path; // a process's file goes with it: the one that names it now
        continue;
      }
      const watch = this.agent.netfilterLinks() ? RulesetWatch.open(ns.path) : null;
      const watched: Watched = { ...ns, links: new Map(), watch, devices: {}, counters: null, credit: new Map() };
      this.watched.set(ns.inode, watched);
      added.push(watched);
    }
    // A ruleset that changed: read again, its hooks placed again (a chain added, a table removed).
    const changed = [...this.watched.values()].filter(
      (w) => !added.includes(w) && w.goneAt === undefined && w.watch?.due(),
    );
    for (const w of this.watched.values()) {
      if (present.has(w.inode)) continue;
      if (w.goneAt === undefined) {
        w.goneAt = Date.now();
        this.agent.detach([...w.links.values()]);
        w.links.clear();
        w.watch?.close();
        w.watch = null;
      } else if (Date.now() - w.goneAt >= this.o.forgetAfterMs) {
        this.metrics.forget(w.name);
        this.owners.forget(w.inode);
        this.watched.delete(w.inode);
        // Its keys too, in the kernel and here: their room is for namespaces to come (an inode comes back).
        this.agent.forgetNetns(w.inode);
        for (const [key, last] of this.last) if (last.netns === w.inode) this.last.delete(key);
      }
    }
    this.metrics.watching([...this.watched.values()].filter((w) => w.goneAt === undefined).length);
    await Promise.all([
      ...now.map((ns) => this.followOwner(ns)),
      ...added.map((w) => this.readRules(w)),
      ...changed.map((w) => this.readRules(w, true)),
    ]);
    this.forgetOwnersGone();
  }

  /** The container or pod a namespace is now (one that went is noted, its series to go after a while). */
  private async followOwner(ns: HostNetns): Promise<void> {
    if (ns.inode === this.hostNetns) return;
    const { name } = this.watched.get(ns.inode)!;
    await this.owners.update(ns.inode, ns.pids, (owner) =>
      this.ownersGone.push({ inode: ns.inode, netns: name, owner, at: Date.now() }),
    );
  }

  /** The series of owners gone --forget-after ago, unless the same came back (a container restarted). */
  private forgetOwnersGone(): void {
    while (this.ownersGone.length && Date.now() - this.ownersGone[0]!.at >= this.o.forgetAfterMs) {
      const { inode, netns, owner } = this.ownersGone.shift()!;
      const was = ownerText(owner);
      if (was === ownerText(this.owners.owner(inode))) continue;
      this.metrics.forget(netns, (l) => ownerText(labelsOwner(l)) === was);
    }
  }

  /** The hook program at the hooks where the namespace's ruleset has chains, and only there (every hook a packet
   *  meets with a program costs it); at every hook when the ruleset could not be read. */
  private placeHooks(w: Watched, rs: Ruleset | null): void {
    if (!this.agent.netfilterLinks() || w.goneAt !== undefined) return;
    const wanted = rs ? hooksWithChains(rs) : ALL_HOOKS;
    const keys = new Set(wanted.map(([pf, hook]) => `${pf}/${hook}`));
    const gone = [...w.links].filter(([k]) => !keys.has(k));
    this.agent.detach(gone.map(([, id]) => id));
    for (const [k] of gone) w.links.delete(k);
    const add = wanted.filter(([pf, hook]) => !w.links.has(`${pf}/${hook}`));
    if (!add.length) return;
    try {
      this.agent.attachHooks(w.path, add).forEach((id, i) => {
        if (id) w.links.set(`${add[i]![0]}/${add[i]![1]}`, id);
      });
    } catch (e) {
      this.tellOnce(`namespace ${w.name}: ${(e as Error).message}`);
    }
  }

  private device(inode: number, ifindex: number): string {
    const w = this.watched.get(inode);
    if (!w) return `if${ifindex}`;
    if (!(ifindex in w.devices)) {
      try {
        w.devices = native().interfaces(w.path);
      } catch {
        /* gone: the number it is */
      }
    }
    return w.devices[ifindex] ?? `if${ifindex}`;
  }

  /** Reads a namespace's rules and their counters, the new baseline (`keep`: the old one kept for the rules that
   *  stay, their drops since not yet named); null when its ruleset could not be read. */
  private async readRules(w: Watched, keep = false) {
    let unread = false;
    const rs = await new RulesetReader(w.path, () => (unread = true)).read(true).catch((e: Error) => {
      this.tellOnce(`namespace ${w.name}: ruleset not read: ${e.message}`);
      unread = true;
      return null;
    });
    if (unread) this.metrics.rulesetError(w.name);
    if (rs) w.counters = keep && w.counters ? rebased(w.counters, counterValues(rs)) : counterValues(rs);
    this.placeHooks(w, unread ? null : rs);
    return rs;
  }

  /** Adds what the kernel counted since the last collection to the metrics. */
  async collect(): Promise<void> {
    // Samples first: each one's key is then in the counts read next.
    const samples = this.agent.samples();
    const { keys, unkeyed, samplesLost } = this.agent.counts();
    const inHooks = new Map<number, Growth[]>();
    const grown = new Map<string, Growth>();
    for (const c of keys) {
      const key = keyOf(c);
      const before = this.last.get(key) ?? { packets: 0, bytes: 0 };
      this.last.set(key, { netns: c.netns, packets: c.packets, bytes: c.bytes });
      const packets = c.packets - before.packets;
      if (packets <= 0) continue;
      const labels = labelsOf(c, this.namer);
      if (!labels) continue;
      const g: Growth = { count: c, labels, packets, bytes: c.bytes - before.bytes };
      grown.set(key, g);
      // Netfilter's drops, at a hook or not known where (no hook program there yet, or a kernel before 6.4).
      if (labels.stage === 'netfilter' && this.watched.has(c.netns))
        inHooks.set(c.netns, [...(inHooks.get(c.netns) ?? []), g]);
      else this.count(labels, g.packets, g.bytes);
    }
    await Promise.all([...inHooks].map(([inode, grown]) => this.nameRules(this.watched.get(inode)!, grown)));
    this.metrics.addUnkeyed(unkeyed.packets - this.lastUnkeyed);
    this.lastUnkeyed = unkeyed.packets;
    this.metrics.addSamplesLost(samplesLost - this.lastSamplesLost);
    this.lastSamplesLost = samplesLost;
    for (const s of samples) {
      const g = grown.get(keyOf(s.key));
      if (g) this.o.onDrop?.(eventOf(s, g.named ?? g.labels));
    }
  }

  /** Netfilter drops of one namespace, named by the drop rules whose counters grew by them. */
  private async nameRules(w: Watched, grown: Growth[]): Promise<void> {
    const before = w.counters;
    const rs = await this.readRules(w);
    const credit = w.credit;
    const shareSets = new Map<string, Credited[]>();
    const sharesAt = (hook: number, family: 4 | 6, protocol: string) => {
      const at = `${hook}/${family}/${protocol}`;
      let set = shareSets.get(at);
      if (!set) {
        const found = rs && before ? ruleShares(before, rs, family, HOOK_NAMES[hook]!, protocol) : [];
        set = withCredit(at, found, credit).map((s) => Object.assign(s, { hook: HOOK_NAMES[hook]! }));
        shareSets.set(at, set);
      }
      return set;
    };
    // A drop whose hook is not known may be any hook's: the rules of all of them share it.
    const sharesOf = (hook: number, family: 4 | 6, protocol: string) =>
      hook === HOOK_NONE
        ? HOOK_NAMES.flatMap((_, h) => sharesAt(h, family, protocol))
        : sharesAt(hook, family, protocol);
    // The drops not yet given of each group of counts that the same shares may explain (a hook, family and
    // protocol): each count takes its part of what the rules counted and the earlier counts left.
    const group = (c: DropCount) => `${c.hook}/${c.family}/${c.proto}`;
    const left = new Map<string, number>();
    for (const g of grown) left.set(group(g.count), (left.get(group(g.count)) ?? 0) + g.packets);
    for (const g of grown) {
      const { family, hook } = g.count;
      const shares = family === 4 || family === 6 ? sharesOf(hook, family, g.labels.protocol) : [];
      const total = left.get(group(g.count))!;
      left.set(group(g.count), total - g.packets);
      const { named, unnamed } = apportion(
        g.packets,
        shares.map((s) => Math.max(0, s.packets - s.given)),
        total,
      );
      let most = 0;
      shares.forEach((s, i) => {
        const n = named[i]!;
        if (n <= 0) return;
        s.given += n;
        const labels = { ...g.labels, hook: s.hook ?? g.labels.hook, table: s.table, chain: s.chain, rule: s.rule };
        this.count(labels, n, Math.round((g.bytes * n) / g.packets));
        if (n > most) [most, g.named] = [n, labels];
      });
      if (unnamed > 0) this.count(g.labels, unnamed, Math.round((g.bytes * unnamed) / g.packets));
    }
    w.credit = leftOver([...shareSets.values()].flat());
  }

  private count(labels: DropLabels, packets: number, bytes: number): void {
    const counted = this.metrics.add(labels, packets, bytes); // not in the call below: ?.() skips its arguments
    this.o.onCount?.(counted, packets, bytes);
  }

  private tellOnce(line: string): void {
    if (this.told.has(line)) return;
    this.told.add(line);
    this.o.log(line);
  }

  close(): void {
    this.agent.close();
  }
}
