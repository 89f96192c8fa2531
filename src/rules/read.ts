// Reads the traced namespace's ruleset with the tools the user has: nft for
// nftables (and iptables-nft, which lives there), iptables-legacy-save for
// legacy tables when the namespace has any. Read-only.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { native } from '../trace/native.js';
import { parseIptablesSave } from './iptables.js';
import { policyKey, ruleKey, type Chain, type Ruleset, type Source, type TableFamily } from './model.js';
import { parseNftJson, parseNftText } from './nft.js';

const run = promisify(execFile);

/** One table to read: large rulesets (kube-proxy's) are read a table at a time, only those a drop went through. */
export interface TableRef {
  source: Source;
  family: TableFamily;
  table: string;
}

/** The iptables-legacy tables loaded in a namespace, IPv4 then IPv6 (/proc/net/ip{,6}_tables_names);
 *  null when the namespace cannot be entered. */
export function legacyTableNames(nsPath: string): [string, string] | null {
  try {
    const [v4, v6] = native().readInNetns(nsPath, [
      '/proc/thread-self/net/ip_tables_names',
      '/proc/thread-self/net/ip6_tables_names',
    ]);
    return v4 !== undefined && v6 !== undefined ? [v4, v6] : null;
  } catch {
    return null;
  }
}

export class RulesetReader {
  /** @param nsPath namespace file to enter ("" = pathtrace's own), e.g. /proc/PID/fd/N
   *  @param onUnread told what failed, after each reading a tool failed in */
  constructor(
    private readonly nsPath: string,
    private readonly onUnread: (unread: string[]) => void = () => {},
  ) {}

  private argv(cmd: string, args: string[]): [string, string[]] {
    return this.nsPath ? ['nsenter', [`--net=${this.nsPath}`, cmd, ...args]] : [cmd, args];
  }

  private async out(cmd: string, args: string[], unread: string[]): Promise<string> {
    const [c, a] = this.argv(cmd, args);
    try {
      return (await run(c, a, { maxBuffer: 256 << 20 })).stdout;
    } catch (e) {
      return failed(cmd, args, e as ToolError, unread);
    }
  }

  private outSync(cmd: string, args: string[], unread: string[]): string {
    const [c, a] = this.argv(cmd, args);
    try {
      return execFileSync(c, a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
    } catch (e) {
      return failed(cmd, args, e as ToolError, unread);
    }
  }

  /** Legacy tables loaded in the namespace, per family. */
  private legacyTables(): { v4: boolean; v6: boolean } {
    const [v4, v6] = legacyTableNames(this.nsPath) ?? ['', ''];
    return { v4: v4.trim() !== '', v6: v6.trim() !== '' };
  }

  /** What to run for a reading, by the part of assemble() each output goes to. */
  private plan(texts: boolean, tables?: TableRef[]): Command[][] {
    if (!tables) {
      const legacy = this.legacyTables();
      const want = (on: boolean, cmd: Command) => (on ? [cmd] : []);
      return [
        [['nft', ['-j', 'list', 'ruleset']]],
        want(texts, ['nft', ['-a', 'list', 'ruleset']]),
        // Always: its policy counters are part of every baseline (nft's JSON has none).
        want(true, ['iptables-nft-save', ['-c']]),
        want(true, ['ip6tables-nft-save', ['-c']]),
        want(legacy.v4, ['iptables-legacy-save', ['-c']]),
        want(legacy.v6, ['ip6tables-legacy-save', ['-c']]),
      ];
    }
    const nft = tables.filter((t) => t.source !== 'iptables-legacy');
    // A reading without texts cannot tell iptables-nft's tables from nft's: any of iptables' table names may be.
    const save = (cmd: string, family: TableFamily, legacy: boolean, want: boolean): Command[] =>
      want
        ? tables
            .filter(
              (t) => t.family === family && (t.source === 'iptables-legacy') === legacy && IPTABLES_TABLES.has(t.table),
            )
            .map((t) => [cmd, ['-c', '-t', t.table]])
        : [];
    return [
      nft.map((t) => ['nft', ['-j', 'list', 'table', t.family, t.table]]),
      texts ? nft.map((t) => ['nft', ['-a', 'list', 'table', t.family, t.table]]) : [],
      save('iptables-nft-save', 'ip', false, true),
      save('ip6tables-nft-save', 'ip6', false, true),
      save('iptables-legacy-save', 'ip', true, true),
      save('ip6tables-legacy-save', 'ip6', true, true),
    ];
  }

  /** The layout and counters; with texts, also the rules as their users typed them. With tables, only those. */
  async read(texts = false, tables?: TableRef[]): Promise<Ruleset> {
    const unread: string[] = [];
    const outs = await Promise.all(
      this.plan(texts, tables).map((cmds) => Promise.all(cmds.map(([c, a]) => this.out(c, a, unread)))),
    );
    return this.withUnread(assembleParts(outs), unread);
  }

  /** The same, synchronously: for the first probes before tracing starts, and the last attributions at exit. */
  readSync(texts = false, tables?: TableRef[]): Ruleset {
    const unread: string[] = [];
    const outs = this.plan(texts, tables).map((cmds) => cmds.map(([c, a]) => this.outSync(c, a, unread)));
    return this.withUnread(assembleParts(outs), unread);
  }

  private withUnread(rs: Ruleset, unread: string[]): Ruleset {
    if (!unread.length) return rs;
    this.onUnread(unread);
    return { ...rs, unread };
  }
}

/** What execFile and execFileSync throw: the spawn's code, or the tool's exit status and stderr. */
type ToolError = Error & { code?: string | number; status?: number | null; stderr?: string | Buffer };

// iptables' save tools are missing on a host without iptables: nft's reading then holds all there is.
const OPTIONAL = new Set(['iptables-nft-save', 'ip6tables-nft-save']);

/** A tool that failed: said in unread (once per reading), unless it is an optional one that is not installed.
 *  Its output counts as empty, and the reading says it is incomplete. */
export function failed(cmd: string, args: string[], e: ToolError, unread: string[]): string {
  const stderr = String(e.stderr ?? '').trim();
  // execFile's ENOENT directly, or nsenter's: "failed to execute X: No such file or directory" (exit 127).
  const missing = e.code === 'ENOENT' || e.code === 127 || e.status === 127;
  if (missing && OPTIONAL.has(cmd)) return '';
  const said = stderr.split('\n')[0] || e.message.split('\n')[0] || 'failed';
  unread.push(missing ? `${cmd}${NOT_INSTALLED}` : `\`${[cmd, ...args].join(' ')}\` failed: ${said}`);
  return '';
}

const NOT_INSTALLED = ' is not installed';

/** Whether an unread entry is a tool not installed: the session said so at start (trace/tools.ts), the drop still
 *  says it. */
export const notInstalled = (unread: string): boolean => unread.endsWith(NOT_INSTALLED);

type Command = [string, string[]];
const IPTABLES_TABLES = new Set(['filter', 'nat', 'mangle', 'raw', 'security']);

/** Each part's outputs (one per table, or one for all) joined: nft's JSON documents merged into one.
 *  A part not there is an empty output. */
function assembleParts([jsons = [], ...texts]: string[][]): Ruleset {
  const json =
    jsons.length === 1
      ? jsons[0]!
      : (() => {
          const items = jsons.flatMap((j) => {
            if (!j.trim()) return []; // that table's reading failed: said in unread
            try {
              return JSON.parse(j).nftables ?? [];
            } catch (e) {
              throw new Error(`nft's JSON could not be parsed: ${(e as Error).message}`);
            }
          });
          return items.length ? JSON.stringify({ nftables: items }) : '';
        })();
  const [nftText = '', ipt4 = '', ipt6 = '', leg4 = '', leg6 = ''] = texts.map((t) => t.join('\n'));
  return assemble(json, nftText, ipt4, ipt6, leg4, leg6);
}

/** Combines the tools' outputs: iptables-nft's tables are marked as such and get iptables rule texts. */
export function assemble(
  json: string,
  nftText: string,
  ipt4: string,
  ipt6: string,
  leg4: string,
  leg6: string,
): Ruleset {
  const rs = json.trim() ? parseNftJson(json, parseNftText(nftText)) : { chains: [] };
  // --rule-trace's own tables are pathtrace's, not the user's.
  rs.chains = rs.chains.filter((c) => !(c.family === 'inet' && /^pathtrace_\d+$/.test(c.table)));
  for (const [text, family] of [
    [ipt4, 4],
    [ipt6, 6],
  ] as const) {
    for (const saved of parseIptablesSave(text, family, 'iptables-nft')) {
      const c = rs.chains.find((x) => x.family === saved.family && x.table === saved.table && x.name === saved.name);
      if (!c) continue;
      c.source = 'iptables-nft';
      c.policyCounter = saved.policyCounter;
      c.rules.forEach((r, i) => {
        const sr = saved.rules[i];
        if (!sr) return;
        r.text = sr.text;
        // An xt target (-j REJECT) or match is opaque in nft's JSON; iptables' own words say what it does.
        if (r.verdict === null) {
          r.verdict = sr.verdict;
          r.target = sr.target;
          if (sr.nat) r.nat = sr.nat; // -j DNAT --to-destination ...: an xt target in nft's JSON
          if (sr.queue) r.queue = sr.queue;
        }
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
  for (const c of rs.chains as Chain[]) {
    for (const r of c.rules) if (r.counter) out.set(ruleKey(c, r), r.counter.packets);
    if (c.policyCounter) out.set(policyKey(c), c.policyCounter.packets);
  }
  return out;
}

export function ruleCounterDeltas(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [k, v] of after) out.set(k, v - (before.get(k) ?? 0));
  return out;
}
