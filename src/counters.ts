// The `netstat -s` method of the source articles: the traced namespace's SNMP
// counters (/proc/net/snmp, netstat, snmp6) read at start and end, and the
// ones that moved. Names follow nstat: IpInReceives, TcpExtTCPAbortOnTimeout, Ip6InReceives.

export const COUNTER_FILES = ['/proc/thread-self/net/snmp', '/proc/thread-self/net/netstat', '/proc/thread-self/net/snmp6'];

export type Counters = Map<string, number>;

/** Parses snmp/netstat ("Tcp: A B\nTcp: 1 2" pairs) and snmp6 ("Ip6InReceives 7") text. */
export function parseCounters(...texts: string[]): Counters {
  const out: Counters = new Map();
  for (const text of texts) {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const m = /^(\w+):\s+(.*)$/.exec(lines[i]);
      if (m) {
        const values = /^(\w+):\s+(.*)$/.exec(lines[i + 1] ?? '');
        if (!values || values[1] !== m[1]) continue;
        const names = m[2].trim().split(/\s+/);
        const nums = values[2].trim().split(/\s+/);
        names.forEach((n, k) => out.set(`${m[1]}${n}`, Number(nums[k])));
        i++;
      } else {
        const kv = /^(\w+)\s+(-?\d+)$/.exec(lines[i].trim());
        if (kv) out.set(kv[1], Number(kv[2]));
      }
    }
  }
  return out;
}

// Gauges and constants, not events: a delta of these means nothing.
const NOT_EVENTS = /^(TcpRtoAlgorithm|TcpRtoMin|TcpRtoMax|TcpMaxConn|TcpCurrEstab|IpForwarding|IpDefaultTTL)$/;

/** Counters that moved between two readings, in the order of the second. */
export function counterDeltas(before: Counters, after: Counters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, v] of after) {
    if (NOT_EVENTS.test(name)) continue;
    const d = v - (before.get(name) ?? 0);
    if (d !== 0) out[name] = d;
  }
  return out;
}
