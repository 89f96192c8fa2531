// Reads the traced namespace's ruleset with the tools the user has: nft for
// nftables (and iptables-nft, which lives there), iptables-legacy-save for
// legacy tables when the namespace has any. Read-only.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { native } from '../native.js';
import { parseIptablesSave } from './iptables.js';
import { ruleKey, type Chain, type Ruleset } from './model.js';
import { parseNftJson, parseNftText } from './nft.js';

const run = promisify(execFile);

export class RulesetReader {
  /** @param nsPath namespace file to enter ("" = pathtrace's own), e.g. /proc/PID/fd/N */
  constructor(private readonly nsPath: string) {}

  private argv(cmd: string, args: string[]): [string, string[]] {
    return this.nsPath ? ['nsenter', [`--net=${this.nsPath}`, cmd, ...args]] : [cmd, args];
  }

  private async out(cmd: string, args: string[]): Promise<string> {
    const [c, a] = this.argv(cmd, args);
    try {
      return (await run(c, a, { maxBuffer: 256 << 20 })).stdout;
    } catch {
      return ''; // the tool is missing, or has nothing to say: no such tables
    }
  }

  private outSync(cmd: string, args: string[]): string {
    const [c, a] = this.argv(cmd, args);
    try {
      return execFileSync(c, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 256 << 20 });
    } catch {
      return '';
    }
  }

  /** Legacy tables loaded in the namespace, per family (/proc/net/ip_tables_names). */
  private legacyTables(): { v4: boolean; v6: boolean } {
    try {
      const [v4, v6] = native().readInNetns(this.nsPath, ['/proc/thread-self/net/ip_tables_names', '/proc/thread-self/net/ip6_tables_names']);
      return { v4: v4.trim() !== '', v6: v6.trim() !== '' };
    } catch {
      return { v4: false, v6: false };
    }
  }

  /** The layout and counters; with texts, also the rules as their users typed them. */
  async read(texts = false): Promise<Ruleset> {
    const legacy = this.legacyTables();
    const [json, nftText, ipt4, ipt6, leg4, leg6] = await Promise.all([
      this.out('nft', ['-j', 'list', 'ruleset']),
      texts ? this.out('nft', ['-a', 'list', 'ruleset']) : '',
      texts ? this.out('iptables-nft-save', ['-c']) : '',
      texts ? this.out('ip6tables-nft-save', ['-c']) : '',
      legacy.v4 ? this.out('iptables-legacy-save', ['-c']) : '',
      legacy.v6 ? this.out('ip6tables-legacy-save', ['-c']) : '',
    ]);
    return assemble(json, nftText, ipt4, ipt6, leg4, leg6);
  }

  /** The same, synchronously: for the first probes before tracing starts, and the last attributions at exit. */
  readSync(texts = false): Ruleset {
    const legacy = this.legacyTables();
    const out = (cmd: string, args: string[], want = true) => (want ? this.outSync(cmd, args) : '');
    return assemble(
      out('nft', ['-j', 'list', 'ruleset']),
      out('nft', ['-a', 'list', 'ruleset'], texts),
      out('iptables-nft-save', ['-c'], texts),
      out('ip6tables-nft-save', ['-c'], texts),
      out('iptables-legacy-save', ['-c'], legacy.v4),
      out('ip6tables-legacy-save', ['-c'], legacy.v6),
    );
  }
}

/** Combines the tools' outputs: iptables-nft's tables are marked as such and get iptables rule texts. */
export function assemble(json: string, nftText: string, ipt4: string, ipt6: string, leg4: string, leg6: string): Ruleset {
  const rs = json.trim() ? parseNftJson(json, parseNftText(nftText)) : { chains: [] };
  // --rule-trace's own tables are pathtrace's, not the user's.
  rs.chains = rs.chains.filter((c) => !(c.family === 'inet' && /^pathtrace_\d+$/.test(c.table)));
  for (const [text, family] of [[ipt4, 4], [ipt6, 6]] as const) {
    for (const saved of parseIptablesSave(text, family, 'iptables-nft')) {
      const c = rs.chains.find((x) => x.family === saved.family && x.table === saved.table && x.name === saved.name);
      if (!c) continue;
      c.source = 'iptables-nft';
      c.rules.forEach((r, i) => {
        const sr = saved.rules[i];
        if (!sr) return;
        r.text = sr.text;
        // An xt target (-j REJECT) or match is opaque in nft's JSON; iptables' own words say what it does.
        if (r.verdict === null) { r.verdict = sr.verdict; r.target = sr.target; }
        if (r.matches === null) r.matches = sr.matches;
      });
    }
  }
  rs.chains.push(...parseIptablesSave(leg4, 4, 'iptables-legacy'), ...parseIptablesSave(leg6, 6, 'iptables-legacy'));
  return rs;
}

/** Packet counters by rule, to tell which rules moved between two readings. */
export function ruleCounters(rs: Ruleset): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of rs.chains as Chain[]) for (const r of c.rules) if (r.counter) out.set(ruleKey(c, r), r.counter.packets);
  return out;
}

export function ruleCounterDeltas(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) out.set(k, v - (before.get(k) ?? 0));
  return out;
}
