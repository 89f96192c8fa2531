// iptables-save -c output (legacy tables, and the rule texts of iptables-nft's).
import type { Chain, Match, NatTarget, QueueTarget, Rule, TableFamily } from './model.js';
import { IPTABLES_CHAIN_HOOK, isHotdropMatch, LEGACY_PRIORITIES } from './model.js';

const VERDICT: Record<string, Rule['verdict']> = {
  DROP: 'drop',
  REJECT: 'reject',
  ACCEPT: 'accept',
  RETURN: 'return',
  QUEUE: 'queue',
  NFQUEUE: 'queue',
};

const NAT_TARGETS: Record<string, NatTarget['kind']> = {
  DNAT: 'dnat',
  SNAT: 'snat',
  MASQUERADE: 'masquerade',
  REDIRECT: 'redirect',
};

/** "198.18.2.2:8080", "198.18.2.2-198.18.2.5:8000-8010", "[fd00::1]:8080", "fd00::1": addresses and ports
 *  (a port range's /BASE shift aside: the ports stay within the range). */
function natSpec(spec: string): { addrs?: string[]; ports?: string[] } {
  const bracketed = /^\[([^\]]*)\](?::(.+))?$/.exec(spec);
  const parts = spec.split(':');
  const [addr, port] = bracketed
    ? [bracketed[1], bracketed[2]]
    : parts.length === 2 // IPv4 with a port (or ":PORT"); an IPv6 address has more colons
      ? parts
      : [spec, undefined];
  const ports = port?.replace(/\/.*$/, '');
  return { addrs: addr ? [addr] : undefined, ports: ports ? [ports] : undefined };
}

/** A NAT target's options: --to-destination, --to-source (both repeatable), --to-ports. */
function natTarget(kind: NatTarget['kind'], options: string[]): NatTarget {
  const nat: NatTarget = { kind };
  for (let i = 0; i < options.length; i++) {
    const value = options[i + 1];
    if (value === undefined) break;
    const opt = options[i];
    const spec =
      opt === '--to-destination' || opt === '--to-source'
        ? natSpec(value)
        : opt === '--to-ports'
          ? { ports: [value] }
          : null;
    if (!spec) continue; // --random, --persistent...: how, not what
    i++;
    if (spec.addrs) nat.addrs = [...(nat.addrs ?? []), ...spec.addrs];
    if (spec.ports) nat.ports = [...(nat.ports ?? []), ...spec.ports];
  }
  return nat;
}

/** Where -j NFQUEUE (or the old -j QUEUE) sends a packet, from the target's options as iptables-save writes them
 *  (--queue-num N, --queue-balance A:B, --queue-bypass, --queue-cpu-fanout; queue 0 without them). */
export function parseQueueTarget(options: string[]): QueueTarget {
  const q: QueueTarget = { first: 0, last: 0, bypass: false, fanout: false };
  for (let i = 0; i < options.length; i++) {
    const value = options[i + 1] ?? '';
    switch (options[i]) {
      case '--queue-num':
        q.first = q.last = Number(value);
        i++;
        break;
      case '--queue-balance': {
        const [a, b = a] = value.split(':').map(Number);
        q.first = a ?? 0;
        q.last = b ?? q.first;
        i++;
        break;
      }
      case '--queue-bypass':
        q.bypass = true;
        break;
      case '--queue-cpu-fanout':
        q.fanout = true;
        break;
    }
  }
  return q;
}

/** What an iptables rule matches, or null when it uses options pathtrace does not model. */
export function parseIptablesMatches(args: string[]): {
  matches: Match[] | null;
  verdict: Rule['verdict'];
  target?: string;
  nat?: NatTarget;
  queue?: QueueTarget;
  hotdrop?: Rule['hotdrop'];
} {
  const matches: Match[] = [];
  let understood = true;
  let verdict: Rule['verdict'] = null;
  let target: string | undefined;
  let nat: NatTarget | undefined;
  let queue: QueueTarget | undefined;
  let hotdrop: Rule['hotdrop'];
  for (let i = 0; i < args.length; i++) {
    let negate = false;
    if (args[i] === '!') {
      negate = true;
      i++;
    }
    const opt = args[i],
      val = args[i + 1];
    if (opt === undefined || val === undefined) {
      understood = false;
      break;
    } // each option here has a value
    const add = (field: Match['field'], values: (string | number)[]) => {
      matches.push({ field, negate, values });
      i++;
    };
    switch (opt) {
      case '-A':
        i++;
        break;
      case '-p':
        add('l4proto', [val]);
        break;
      case '-s':
        add('saddr', val.split(','));
        break;
      case '-d':
        add('daddr', val.split(','));
        break;
      case '-i':
        add('iif', [val]);
        break;
      case '-o':
        add('oif', [val]);
        break;
      case '--dport':
      case '--destination-port':
        add('dport', [val.replace(':', '-')]);
        break;
      case '--sport':
      case '--source-port':
        add('sport', [val.replace(':', '-')]);
        break;
      case '--dports':
        add(
          'dport',
          val.split(',').map((v) => v.replace(':', '-')),
        );
        break;
      case '--sports':
        add(
          'sport',
          val.split(',').map((v) => v.replace(':', '-')),
        );
        break;
      case '-m':
        if (isHotdropMatch(val) && !hotdrop) hotdrop = { match: val, before: understood ? [...matches] : null };
        if (!['tcp', 'udp', 'multiport', 'comment'].includes(val)) understood = false;
        i++;
        break;
      case '--comment':
        i++;
        break;
      case '-j': {
        const natKind = NAT_TARGETS[val];
        // A NAT target ends the chain for the packet it rewrites.
        if (natKind) nat = natTarget(natKind, args.slice(i + 2));
        verdict = natKind ? 'accept' : (VERDICT[val] ?? 'jump');
        if (verdict === 'jump') target = val;
        if (verdict === 'queue') queue = parseQueueTarget(args.slice(i + 2));
        i++;
        // Options of the target (--reject-with...) say nothing about the packet.
        i = args.length;
        break;
      }
      case '-g':
        verdict = 'goto';
        target = val;
        i++;
        break;
      default:
        understood = false;
    }
  }
  return {
    matches: understood ? matches : null,
    verdict,
    target,
    ...(nat && { nat }),
    ...(queue && { queue }),
    ...(hotdrop && { hotdrop }),
  };
}

/** Splits a rule line as the shell would (iptables-save quotes comments). */
function words(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const [, quoted, bare] of line.matchAll(re)) {
    const word = quoted ?? bare;
    if (word !== undefined) out.push(word);
  }
  return out;
}

/**
 * Chains from `iptables-save -c` (or ip6tables-save). Builtin chains get the
 * hook and the standard priority their table registers at.
 */
export function parseIptablesSave(text: string, family: 4 | 6, source: 'iptables-legacy' | 'iptables-nft'): Chain[] {
  const fam: TableFamily = family === 4 ? 'ip' : 'ip6';
  const cmd = `${family === 4 ? 'iptables' : 'ip6tables'}${source === 'iptables-legacy' ? '-legacy' : ''}`;
  const chains = new Map<string, Chain>();
  let table = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) {
      table = line.slice(1).trim();
      continue;
    }
    const [, name, policyWord, packets, bytes] = /^:(\S+) (\S+)(?: \[(\d+):(\d+)\])?/.exec(line) ?? [];
    if (name !== undefined) {
      const hook = IPTABLES_CHAIN_HOOK[name];
      const priority = hook ? LEGACY_PRIORITIES[table]?.[hook] : undefined;
      const policy = policyWord === 'DROP' ? 'drop' : policyWord === 'ACCEPT' ? 'accept' : undefined;
      chains.set(`${table} ${name}`, {
        family: fam,
        table,
        name,
        source,
        hook: priority !== undefined ? hook : undefined,
        priority,
        policy,
        policyCounter: policy && packets !== undefined ? { packets: Number(packets), bytes: Number(bytes) } : undefined,
        rules: [],
      });
      continue;
    }
    // With its counters ("[packets:bytes] -A ..."), or without.
    const [, rulePackets, ruleBytes, rule, chainName] =
      /^\[(\d+):(\d+)\] (-A (\S+) .*)$/.exec(line) ?? /^()()(-A (\S+) .*)$/.exec(line) ?? [];
    if (rule !== undefined) {
      const chain = chains.get(`${table} ${chainName}`);
      if (!chain) continue;
      const parsed = parseIptablesMatches(words(rule));
      chain.rules.push({
        position: chain.rules.length + 1,
        text: `${cmd}${table === 'filter' ? '' : ` -t ${table}`} ${rule}`,
        counter: rulePackets ? { packets: Number(rulePackets), bytes: Number(ruleBytes) } : null,
        ...parsed,
      });
    }
  }
  return [...chains.values()];
}
