// The `netstat -s` method of the source articles: the traced namespace's SNMP
// counters (/proc/net/snmp, netstat, snmp6) read at start and end, and the
// ones that moved. Names follow nstat: IpInReceives, TcpExtTCPAbortOnTimeout, Ip6InReceives.
// Beside them, what `ip -s link` and /proc/net/softnet_stat count of loss: the namespace's devices'
// drops and errors (eth0.rx_dropped), and the host's softnet drops (all namespaces: one backlog per CPU).

export const COUNTER_FILES = [
  '/proc/thread-self/net/snmp',
  '/proc/thread-self/net/netstat',
  '/proc/thread-self/net/snmp6',
  '/proc/thread-self/net/dev',
  '/proc/net/softnet_stat',
];

export type Counters = Map<string, number>;

/** Parses snmp/netstat ("Tcp: A B\nTcp: 1 2" pairs) and snmp6 ("Ip6InReceives 7") text. */
export function parseCounters(...texts: string[]): Counters {
  const out: Counters = new Map();
  for (const text of texts) {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const [, table, head] = /^(\w+):\s+(.*)$/.exec(line) ?? [];
      if (table !== undefined && head !== undefined) {
        const [, again, row] = /^(\w+):\s+(.*)$/.exec(lines[i + 1] ?? '') ?? [];
        if (again !== table || row === undefined) continue;
        const names = head.trim().split(/\s+/);
        const nums = row.trim().split(/\s+/);
        names.forEach((n, k) => out.set(`${table}${n}`, Number(nums[k])));
        i++;
      } else {
        const [, name, value] = /^(\w+)\s+(-?\d+)$/.exec(line.trim()) ?? [];
        if (name !== undefined) out.set(name, Number(value));
      }
    }
  }
  return out;
}

/** /proc/net/dev: each device's counters of loss, as "eth0.rx_dropped" (bytes and packets left out). */
export function parseDeviceCounters(text: string): Counters {
  const out: Counters = new Map();
  const FIELDS: [number, string][] = [
    [2, 'rx_errors'],
    [3, 'rx_dropped'],
    [4, 'rx_fifo_errors'],
    [5, 'rx_frame_errors'],
    [10, 'tx_errors'],
    [11, 'tx_dropped'],
    [12, 'tx_fifo_errors'],
    [14, 'tx_carrier_errors'],
  ];
  for (const line of text.split('\n')) {
    const [, dev, rest] = /^\s*([^:\s]+):\s*(.*)$/.exec(line) ?? [];
    if (dev === undefined || rest === undefined) continue;
    const v = rest.trim().split(/\s+/).map(Number);
    if (v.length < 16) continue;
    for (const [i, name] of FIELDS) out.set(`${dev}.${name}`, v[i]!);
  }
  return out;
}

/** /proc/net/softnet_stat: packets dropped because a CPU's backlog was full, summed over CPUs (its
 *  time_squeeze moves on any busy host without a loss: left out). */
export function parseSoftnet(text: string): Counters {
  let dropped = 0;
  for (const line of text.split('\n')) {
    const [, cpuDropped] = line.trim().split(/\s+/);
    if (cpuDropped !== undefined) dropped += parseInt(cpuDropped, 16);
  }
  return new Map([['SoftnetDropped', dropped]]);
}

/** The texts of COUNTER_FILES, in order, as one set of counters. */
export function parseAllCounters(texts: string[]): Counters {
  const [snmp, netstat, snmp6, dev, softnet] = texts;
  return new Map([
    ...parseCounters(snmp ?? '', netstat ?? '', snmp6 ?? ''),
    ...parseDeviceCounters(dev ?? ''),
    ...parseSoftnet(softnet ?? ''),
  ]);
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
