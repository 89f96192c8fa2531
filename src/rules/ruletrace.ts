// --rule-trace: exact attribution with nftables tracing, by the user's leave.
// Adds a table of pathtrace's own that sets `meta nftrace` on the traced
// packets only, ahead of every chain, reads `nft monitor trace`, and removes
// the table on every exit path (and, on start, what a killed run left).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Journey } from '../correlate/journey.js';
import type { TraceOptions } from '../trace/options.js';
import type { NfqueueFree } from './nfqueue.js';

export const TABLE_PREFIX = 'pathtrace_';

/** The last verdict nftables traced for one packet. */
export interface TraceVerdict {
  id: string;
  family: string;
  table: string;
  chain: string;
  verdict: string;
  rule: string | null; // null: the chain's policy
  handle?: number;
  packet: { src?: string; dst?: string; sport?: number; dport?: number; ipId?: number };
}

/** The nft rules that mark the traced packets: every combination of the port and host filters. */
export function traceRules(o: Pick<TraceOptions, 'ports' | 'hosts' | 'protos'>, hook: 'pre' | 'out'): string[] {
  const l4 = o.protos.flatMap((p) => (p === 'icmp' ? ['icmp', 'ipv6-icmp'] : [p]));
  const proto = `meta l4proto { ${l4.join(', ')} }`;
  const ports = o.ports ? ['th sport', 'th dport'].map((f) => `${f} { ${o.ports!.join(', ')} }`) : [''];
  const hosts = o.hosts.length
    ? ['saddr', 'daddr'].flatMap((f) => {
        const v4 = o.hosts.filter((h) => !h.includes(':')),
          v6 = o.hosts.filter((h) => h.includes(':'));
        return [
          ...(v4.length ? [`ip ${f} { ${v4.join(', ')} }`] : []),
          ...(v6.length ? [`ip6 ${f} { ${v6.join(', ')} }`] : []),
        ];
      })
    : [''];
  const rules: string[] = [];
  for (const p of ports)
    for (const h of hosts)
      rules.push(`add rule inet TABLE ${hook} ${[proto, p, h].filter(Boolean).join(' ')} meta nftrace set 1`);
  return rules;
}

/** Parses one line of `nft -a monitor trace`. */
export function parseTraceLine(
  line: string,
): { id: string; family: string; table: string; chain: string; kind: string; rest: string } | null {
  const [, id, family, table, chain, kind, rest] =
    /^trace id (\w+) (\w+) (\S+) (\S+) (packet:|rule|policy|verdict) ?(.*)$/.exec(line.trim()) ?? [];
  if (
    id === undefined ||
    family === undefined ||
    table === undefined ||
    chain === undefined ||
    kind === undefined ||
    rest === undefined
  )
    return null;
  return { id, family, table, chain, kind, rest };
}

export function parsePacketFields(rest: string): TraceVerdict['packet'] {
  const get = (re: RegExp) => re.exec(rest)?.[1];
  const num = (re: RegExp) => {
    const v = get(re);
    return v === undefined ? undefined : Number(v);
  };
  return {
    src: get(/\bip6? saddr (\S+)/),
    dst: get(/\bip6? daddr (\S+)/),
    sport: num(/\b(?:tcp|udp) sport (\d+)/),
    dport: num(/\b(?:tcp|udp) dport (\d+)/),
    ipId: num(/\bip id (\d+)/),
  };
}

export class RuleTrace {
  readonly table = `${TABLE_PREFIX}${process.pid}`;
  private monitor: ChildProcess | null = null;
  private readonly packets = new Map<string, TraceVerdict['packet']>();
  private readonly verdicts: TraceVerdict[] = [];

  constructor(private readonly nsPath: string) {}

  private nft(args: string[], input?: string): string {
    const [cmd, argv] = this.nsPath ? ['nsenter', [`--net=${this.nsPath}`, 'nft', ...args]] : ['nft', args];
    return execFileSync(cmd, argv, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
  }

  /** Tables a killed pathtrace left behind (its pid is gone). Returns their names, removed. */
  removeLeftovers(): string[] {
    let tables: string;
    try {
      tables = this.nft(['list', 'tables', 'inet']);
    } catch {
      return [];
    }
    const removed: string[] = [];
    for (const [, table, pidText] of tables.matchAll(new RegExp(`^table inet (${TABLE_PREFIX}(\\d+))$`, 'gm'))) {
      if (table === undefined) continue;
      const pid = Number(pidText);
      let alive = true;
      try {
        process.kill(pid, 0);
      } catch {
        alive = false;
      }
      if (alive && pid !== process.pid) continue;
      this.nft(['delete', 'table', 'inet', table]);
      removed.push(table);
    }
    return removed;
  }

  /** Adds the marking table and starts reading traces. Returns what it added, for the user. */
  start(o: Pick<TraceOptions, 'ports' | 'hosts' | 'protos'>): string {
    const script = [
      `add table inet ${this.table}`,
      `add chain inet ${this.table} pre { type filter hook prerouting priority -2147483648; }`,
      `add chain inet ${this.table} out { type filter hook output priority -2147483648; }`,
      ...traceRules(o, 'pre'),
      ...traceRules(o, 'out'),
    ]
      .map((l) => l.replace('TABLE', this.table))
      .join('\n');
    this.nft(['-f', '-'], script + '\n');
    // Killed with pathtrace, even by SIGKILL (the parent-death signal survives nsenter's exec).
    const argv = [
      '--pdeathsig',
      'KILL',
      '--',
      ...(this.nsPath ? ['nsenter', `--net=${this.nsPath}`, '--'] : []),
      'nft',
      '-a',
      'monitor',
      'trace',
    ];
    this.monitor = spawn('setpriv', argv, { stdio: ['ignore', 'pipe', 'ignore'] });
    createInterface({ input: this.monitor.stdout! }).on('line', (l) => this.onLine(l));
    return (
      `added table inet ${this.table} (chains at priority -2147483648 on prerouting and output that set meta nftrace ` +
      `on the traced packets); it is removed when pathtrace exits`
    );
  }

  private onLine(line: string): void {
    const t = parseTraceLine(line);
    if (!t || t.table === this.table) return;
    if (t.kind === 'packet:') {
      // As it entered each chain: NAT may have changed it since the first.
      this.packets.set(t.id, parsePacketFields(t.rest));
      return;
    }
    const verdict = /\(verdict (\w+)/.exec(t.rest)?.[1] ?? (t.kind === 'policy' ? t.rest.trim() : '');
    // queue: an NFQUEUE rule's, for a packet the queue could not take or its listener dropped.
    if (verdict !== 'drop' && verdict !== 'reject' && verdict !== 'queue') return;
    const handle = /# handle (\d+)/.exec(t.rest)?.[1];
    const rule =
      t.kind === 'rule'
        ? t.rest
            .replace(/\s*# handle \d+.*$/, '')
            .replace(/\s*\(verdict.*$/, '')
            .replace(/counter packets \d+ bytes \d+/, 'counter')
        : null;
    this.verdicts.push({
      id: t.id,
      family: t.family,
      table: t.table,
      chain: t.chain,
      verdict,
      rule,
      handle: handle ? Number(handle) : undefined,
      packet: this.packets.get(t.id) ?? {},
    });
    if (this.verdicts.length > 10000) this.verdicts.splice(0, 5000);
  }

  /** The traced verdict for a dropped journey: the oldest unused one for the same packet, of a kind that can
   *  have ended it: a queue rule's where the queue machinery freed it (queued), a drop's or reject's elsewhere;
   *  after the queue (before 6.11 a chain after it drops on reinjection there too) a drop's first. */
  take(j: Journey, queued?: NfqueueFree): TraceVerdict | undefined {
    const ended = (v: string) => v !== 'queue';
    const queuedIt = (v: string) => v === 'queue';
    const order = queued === 'unqueued' ? [queuedIt] : queued === 'after-queue' ? [ended, queuedIt] : [ended];
    for (const kind of order) {
      const v = this.takeOf(j, kind);
      if (v) return v;
    }
    return undefined;
  }

  private takeOf(j: Journey, kind: (verdict: string) => boolean): TraceVerdict | undefined {
    const same = (v: TraceVerdict, t: { src: string; dst: string; sport: number; dport: number }) =>
      v.packet.src === t.src &&
      v.packet.dst === t.dst &&
      (v.packet.sport === undefined || v.packet.sport === t.sport) &&
      (v.packet.dport === undefined || v.packet.dport === t.dport);
    const i = this.verdicts.findIndex(
      (v) =>
        kind(v.verdict) &&
        (same(v, j) || (j.translated !== undefined && same(v, j.translated))) &&
        (v.packet.ipId === undefined || j.family === 6 || v.packet.ipId === j.ipId),
    );
    return i >= 0 ? this.verdicts.splice(i, 1)[0] : undefined;
  }

  /** Removes the table and stops reading; safe to call more than once. */
  stop(): void {
    this.monitor?.kill();
    this.monitor = null;
    try {
      this.nft(['delete', 'table', 'inet', this.table]);
    } catch {
      /* already gone (or the namespace is) */
    }
  }
}
