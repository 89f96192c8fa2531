// The kernel's own counters as the ground truth of which rule or policy dropped packets: read with
// the tools (iptables-save -c, nft -a list ruleset) before and after, independently of pathtrace's
// parsers, and compared.
import type { Lab } from '../../src/lab/lab.js';

/** Packets by what counted them: "iptables -A CHAIN ..." (as pathtrace writes a rule), "policy CHAIN",
 *  or "nft handle N". */
export type Counts = Map<string, number>;

export function readCounters(lab: Lab, netns: string): Counts {
  const out: Counts = new Map();
  let table = '';
  for (const line of lab.exec(netns, 'iptables-save', ['-c']).split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    const policy = /^:(\S+) (ACCEPT|DROP) \[(\d+):\d+\]/.exec(line);
    if (policy) out.set(`policy ${table} ${policy[1]}`, Number(policy[3]));
    const rule = /^\[(\d+):\d+\] (-A .*)$/.exec(line);
    if (rule) out.set(`iptables ${table === 'filter' ? '' : `-t ${table} `}${rule[2]}`, Number(rule[1]));
  }
  // Native nft rules with a counter statement (iptables-nft's tables were read above).
  for (const line of lab.exec(netns, 'nft', ['-a', 'list', 'ruleset']).split('\n')) {
    const m = /counter packets (\d+) bytes \d+.*# handle (\d+)$/.exec(line);
    if (m) out.set(`nft handle ${m[2]}`, Number(m[1]));
  }
  return out;
}

/** What counted packets between two readings. */
export function moved(before: Counts, after: Counts): string[] {
  return [...after].filter(([k, v]) => v > (before.get(k) ?? 0)).map(([k]) => k);
}
