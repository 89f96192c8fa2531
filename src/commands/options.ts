// Command-line parsing. Pure: argv in, options or a UsageError out.
import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { AgentCommandOptions } from './agent.js';
import { addressBytes, formatAddress } from '../trace/address.js';
import { parsePodRef } from '../trace/containers.js';
import { EXPR_WINDOW, MAX_HOSTS, POINT_GROUP_NAMES } from '../trace/record.js';
import {
  DEFAULT_RING_MIB,
  DEFAULT_SNAPLEN,
  MAX_SNAPLEN,
  POINT_GROUPS,
  type Place,
  type PointGroup,
  type Proto,
  type TraceOptions,
} from '../trace/options.js';

export class UsageError extends Error {}

export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'trace'; options: TraceOptions }
  | { kind: 'demo'; scenario: string; options: TraceOptions }
  | { kind: 'compare'; capture: string; trace: string }
  | { kind: 'merge'; traces: [string, string]; json: boolean }
  | { kind: 'report'; traces: string[]; output: string }
  | { kind: 'doctor'; json: boolean }
  | { kind: 'agent'; options: AgentCommandOptions };

export const AGENT_DEFAULTS: AgentCommandOptions = {
  listen: { host: '127.0.0.1', port: 9810 },
  otlp: null,
  ports: null,
  labelPorts: false,
  expression: null,
  intervalMs: 5000,
  maxSeries: 2000,
  // A namespace that went keeps its series this long: a scrape or two after it still sees their last values.
  forgetAfterMs: 10 * 60_000,
};

/** parseArgs, strict, with positionals and tokens; what it refuses as a one-line UsageError in our words. */
function strictArgs<const O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true, tokens: true });
  } catch (e) {
    const [line = ''] = (e as Error).message.split('\n');
    const msg = line.replace(/\. To specify a positional argument.*$/, '');
    throw new UsageError(msg.replace(/^Unknown option/, 'unknown option'));
  }
}

/** `pathtrace report TRACE [TRACE] -o FILE.html`. */
function parseReport(argv: string[]): Command {
  const { values, positionals } = strictArgs(argv, { output: { type: 'string', short: 'o' } });
  if (positionals.length < 1 || positionals.length > 2)
    throw new UsageError("report takes one or two traces: pathtrace's --json output or --write file (one per host)");
  if (!values.output) throw new UsageError('report needs -o FILE.html: where to write the page');
  return { kind: 'report', traces: positionals, output: values.output };
}

/** `pathtrace doctor [--json]`. */
function parseDoctor(argv: string[]): Command {
  const { values, positionals } = strictArgs(argv, { json: { type: 'boolean' } });
  if (positionals.length) throw new UsageError(`doctor takes no arguments (got '${positionals[0]}')`);
  return { kind: 'doctor', json: values.json ?? false };
}

/** `pathtrace agent ...`: its options alone (the trace's do not apply). */
function parseAgent(argv: string[]): Command {
  const { values, positionals } = strictArgs(argv, {
    listen: { type: 'string' },
    otlp: { type: 'string' },
    port: { type: 'string', short: 'p', multiple: true },
    'label-ports': { type: 'boolean' },
    interval: { type: 'string' },
    'max-series': { type: 'string' },
    'forget-after': { type: 'string' },
  });
  const o = { ...AGENT_DEFAULTS };
  if (values.listen !== undefined) o.listen = parseListen(values.listen);
  if (values.port !== undefined) o.ports = parsePorts(values.port);
  if (values['label-ports']) {
    // Every port a label would make a series per client port: only the ports asked for.
    if (!o.ports) throw new UsageError('--label-ports needs --port: the ports to count by');
    o.labelPorts = true;
  }
  if (positionals.length) {
    o.expression = positionals.join(' ').trim();
    if (!o.expression) throw new UsageError('empty filter expression');
  }
  if (values.otlp !== undefined) {
    let url: URL | null = null;
    try {
      url = new URL(values.otlp);
    } catch {
      /* said below */
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:'))
      throw new UsageError(`bad --otlp '${values.otlp}': an OTLP/HTTP endpoint, as http://collector:4318`);
    o.otlp = values.otlp;
  }
  if (values.interval !== undefined) {
    const s = Number(values.interval);
    if (!(s >= 1 && s <= 3600)) throw new UsageError(`bad --interval '${values.interval}': seconds, 1 to 3600`);
    o.intervalMs = s * 1000;
  }
  if (values['max-series'] !== undefined) {
    const n = Number(values['max-series']);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`bad --max-series '${values['max-series']}': a count`);
    o.maxSeries = n;
  }
  if (values['forget-after'] !== undefined) {
    const s = Number(values['forget-after']);
    if (!(s >= 0 && s <= 86400 * 7))
      throw new UsageError(`bad --forget-after '${values['forget-after']}': seconds, 0 to 604800`);
    o.forgetAfterMs = s * 1000;
  }
  return { kind: 'agent', options: o };
}

/** ADDR:PORT, [IPv6]:PORT or :PORT (every address). */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:]*)):(\d+)$/.exec(text);
  const host = m ? (m[1] ?? m[2] ?? '') : '';
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 1 && port <= 65535) || (host !== '' && !isIP(host)))
    throw new UsageError(`bad --listen '${text}': ADDR:PORT, as 127.0.0.1:9810, [::1]:9810 or :9810`);
  return { host: host || '::', port };
}

/** The ring's pages are mapped twice (RSS counts 2 × its size); past 256 MiB the queue behind it is the better buffer. */
const MAX_RING_MIB = 256;

export const USAGE = `Usage: pathtrace [options] [EXPRESSION]  trace packets and report each one's path and fate
       pathtrace demo [local-in|local-out|app-response|forward|across] [--json]
                                             run a lab experiment in namespaces of its own
       pathtrace compare CAPTURE.pcap[ng] TRACE     a tcpdump capture beside pathtrace's --json output
                                             or --write file of the same time: what happened after
                                             each captured frame, and what the capture lacks
       pathtrace merge [NAME=]TRACE [NAME=]TRACE [--json]
                                             two hosts' --json outputs or --write files of the same
                                             time: where between them each packet was lost
       pathtrace report [NAME=]TRACE [[NAME=]TRACE] -o FILE.html
                                             one self-contained page of one or two traces: where
                                             packets died, each drop's path and rule, each connection
                                             as a ladder; of two hosts, what was lost between them
       pathtrace doctor [--json]             what this host offers pathtrace, and for what it lacks,
                                             what that costs and the command that fixes it
       pathtrace agent [--listen ADDR:PORT] [--otlp URL] [--port PORT[,PORT...] [--label-ports]]
                       [--interval SECONDS] [--max-series N] [--forget-after SECONDS] [EXPRESSION]
                                             count the drops of every network namespace, by hook, rule
                                             and reason, for Prometheus at http://ADDR:PORT/metrics,
                                             and to an OpenTelemetry collector at URL (OTLP/HTTP);
                                             --port, EXPRESSION: only the drops of those ports, or that
                                             a tcpdump expression takes; --label-ports: by port too
                                             (default ${AGENT_DEFAULTS.listen.host}:${AGENT_DEFAULTS.listen.port}, every ${AGENT_DEFAULTS.intervalMs / 1000} s, ${AGENT_DEFAULTS.maxSeries} series;
                                             a namespace gone keeps its series ${AGENT_DEFAULTS.forgetAfterMs / 1000} s)

Filter (applied in the kernel; all given filters must match):
  EXPRESSION                  a tcpdump filter expression, as tcpdump takes it: 'tcp port 3306 and host
                              10.1.2.3', 'udp and not port 53', 'tcp[tcpflags] & tcp-syn != 0'. Compiled by
                              libpcap (the library tcpdump uses; needed for expressions only) and run in the
                              kernel once per packet, at its first point: a packet that matched is followed
                              to its end, through NAT too. It reads the first ${EXPR_WINDOW} bytes from the IP header.
                              ICMP errors about a matching packet (unreachable, time exceeded, too big) are
                              kept. pathtrace follows TCP, UDP and ICMP over IPv4 and IPv6. Needs Linux 5.17+
  -p, --port PORT[,PORT...]   TCP/UDP source or destination port; ranges as 8000-8080; repeatable
  -H, --host ADDR             IPv4 or IPv6 source or destination address; repeatable
      --proto PROTO           tcp, udp, icmp or all (default: tcp and udp with --port, else all)
  -n, --netns NAME|PATH       trace inside this network namespace (a name from 'ip netns', or a
                              path such as /proc/PID/ns/net); default: pathtrace's own. Twice: both
                              at once, each packet tagged by its namespace, merged at the end as
                              'pathtrace merge' does
      --container NAME|ID     trace inside this container's network namespace, found through its
                              runtime (podman, docker, or crictl for containerd and CRI-O); its
                              packets named by the container. With --netns or twice: as --netns twice
      --pod [NAMESPACE/]NAME  trace inside this Kubernetes pod's network namespace, its sandbox found
                              through the node's CRI runtime (crictl); namespace default if not given.
                              With --netns or --container, or twice: as --netns twice

Output and end:
      --json                  NDJSON on stdout: ready, packet, connection and summary records
      --plain                 a text block per packet, even on a terminal (default there: the full-screen UI)
  -q, --quiet                 no per-packet output, the summary only (cheapest at high packet rates)
  -d, --duration SECONDS      stop after this long
  -c, --count N               stop after N packets
      --report FILE.html      at the end, also write the trace as an HTML page (as pathtrace report)
  -w, --write FILE.pcapng      also write the traced packets as pcapng (bytes from the IP header, one
                              interface per device, each packet's fate as a comment; packets tcpdump
                              could not see are included and say so)
  -s, --snaplen BYTES         bytes of each packet to write (default ${DEFAULT_SNAPLEN}, at most ${MAX_SNAPLEN})
      --with-tcpdump IFACE    also run tcpdump on IFACE (in the traced namespace, with the same filter) and
                              at the end compare its capture with the trace, as 'pathtrace compare' does
      --points GROUP,...      probe only these (default all): ${POINT_GROUP_NAMES.join(', ')};
                              fewer points cost less per packet and tell less (see docs/overhead.md)
      --ring-mib N            kernel ring buffer size in MiB (default ${DEFAULT_RING_MIB}, a power of two up
                              to ${MAX_RING_MIB})
      --rule-trace            name the exact rule that dropped a packet with nftables tracing: adds a table
                              of its own (inet pathtrace_PID) that marks the traced packets, removed on exit;
                              without it pathtrace changes nothing and names the rule from counters and matches
      --debug                 print libbpf's messages (the verifier's log when the kernel refuses a program)
  -h, --help                  this help
  -V, --version               version

Stops on Ctrl-C or SIGTERM with a summary; whatever it attached is detached on every exit.`;

const DEMO_SCENARIOS = ['local-in', 'local-out', 'app-response', 'forward', 'across'];

export function parsePorts(values: string[]): number[] {
  const ports = new Set<number>();
  for (const value of values) {
    for (const part of value.split(',')) {
      const m = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
      if (!m) throw new UsageError(`bad port '${part}': expected a number from 1 to 65535, or a range like 8000-8080`);
      const lo = Number(m[1]);
      const hi = m[2] === undefined ? lo : Number(m[2]);
      for (const p of [lo, hi]) {
        if (!(p >= 1 && p <= 65535)) throw new UsageError(`bad port '${part}': ports go from 1 to 65535`);
      }
      if (hi < lo) throw new UsageError(`bad port range '${part}': the first port is above the last`);
      for (let p = lo; p <= hi; p++) ports.add(p);
    }
  }
  return [...ports].sort((a, b) => a - b);
}

export function parseHost(value: string): string {
  const v = value.trim();
  const zone = v.indexOf('%');
  if (zone >= 0 && isIP(v)) {
    throw new UsageError(
      `bad host '${value}': packets carry no zone; give '${v.slice(0, zone)}' (matched on every interface), and --netns for another namespace`,
    );
  }
  if (!isIP(v)) throw new UsageError(`bad host '${value}': expected an IPv4 or IPv6 address`);
  // In the form events carry (compressed, lower case), so that text and JSON filters compare equal.
  const { family, addr } = addressBytes(v);
  return formatAddress(addr, 0, family);
}

function parseProtos(value: string | undefined, hasPorts: boolean): Proto[] {
  if (value === undefined) return hasPorts ? ['tcp', 'udp'] : ['tcp', 'udp', 'icmp'];
  const protos = new Set<Proto>();
  for (const p of value.split(',')) {
    const v = p.trim().toLowerCase();
    if (v === 'all') ['tcp', 'udp', 'icmp'].forEach((x) => protos.add(x as Proto));
    else if (v === 'tcp' || v === 'udp' || v === 'icmp') protos.add(v);
    else throw new UsageError(`bad protocol '${p}': expected tcp, udp, icmp or all`);
  }
  if (hasPorts && protos.size === 1 && protos.has('icmp')) {
    throw new UsageError('--port does not apply to --proto icmp: ICMP has no ports');
  }
  return [...protos];
}

function parsePoints(value: string | undefined): PointGroup[] {
  const all = Object.keys(POINT_GROUPS) as PointGroup[];
  if (value === undefined) return all;
  const out = new Set<PointGroup>();
  for (const p of value.split(',')) {
    const g = p.trim() as PointGroup;
    if (!all.includes(g)) throw new UsageError(`bad point group '${p}': expected some of ${all.join(', ')}`);
    out.add(g);
  }
  return [...out];
}

/** Interface names as the kernel takes them (IFNAMSIZ), or tcpdump's "any". */
function validInterface(name: string): boolean {
  return /^[^\s/:]{1,15}$/.test(name) && name !== '.' && name !== '..';
}

/** A positive decimal number (Number() would also take 0x10, 1e3 and ' 5'), at most max. */
function positiveNumber(
  name: string,
  value: string | undefined,
  integer: boolean,
  max: number,
  unit = '',
): number | null {
  if (value === undefined) return null;
  const n = Number(value);
  if (!(integer ? /^\d+$/ : /^\d+(\.\d+)?$/).test(value) || n <= 0) {
    throw new UsageError(
      `bad ${name} '${value}': expected a positive ${integer ? 'integer' : 'number'}${integer ? '' : ' like 30 or 2.5'}`,
    );
  }
  if (n > max) throw new UsageError(`bad ${name} '${value}': at most ${max}${unit}`);
  return n;
}

/** Options that take a value. */
const VALUE_OPTIONS = new Set([
  '--port',
  '-p',
  '--host',
  '-H',
  '--proto',
  '--netns',
  '-n',
  '--container',
  '--pod',
  '--duration',
  '-d',
  '--count',
  '-c',
  '--ring-mib',
  '--write',
  '-w',
  '--points',
  '--snaplen',
  '-s',
  '--with-tcpdump',
]);

const isPair = <T>(xs: T[]): xs is [T, T] => xs.length === 2;

/** A place as its option: "--netns web", "--container db". */
export const placeText = (p: Place): string =>
  'netns' in p ? `--netns '${p.netns}'` : 'container' in p ? `--container '${p.container}'` : `--pod '${p.pod}'`;

/** `--port -1` as `--port=-1`: parseArgs takes a value that starts with '-' for an option and calls the
 *  pair ambiguous; a negative number is a bad value, to be named as such. */
function joinNegativeValues(argv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    if (VALUE_OPTIONS.has(a) && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(a.startsWith('--') ? `${a}=${next}` : `${a}${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

/** Node's timers hold at most 2^31 - 1 ms: a longer --duration would fire at once. */
const MAX_DURATION_S = 2147483;
const MAX_COUNT = 2 ** 32;

export function parseCommandLine(argv: string[]): Command {
  if (argv[0] === 'agent') return parseAgent(argv.slice(1));
  if (argv[0] === 'report') return parseReport(argv.slice(1));
  if (argv[0] === 'doctor') return parseDoctor(argv.slice(1));
  const parsed = strictArgs(joinNegativeValues(argv), {
    port: { type: 'string', short: 'p', multiple: true },
    host: { type: 'string', short: 'H', multiple: true },
    proto: { type: 'string' },
    netns: { type: 'string', short: 'n', multiple: true },
    container: { type: 'string', multiple: true },
    pod: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    plain: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
    debug: { type: 'boolean' },
    duration: { type: 'string', short: 'd' },
    count: { type: 'string', short: 'c' },
    'ring-mib': { type: 'string' },
    'rule-trace': { type: 'boolean' },
    write: { type: 'string', short: 'w' },
    report: { type: 'string' },
    points: { type: 'string' },
    snaplen: { type: 'string', short: 's' },
    'with-tcpdump': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'V' },
  });
  const v = parsed.values;
  if (v.help) return { kind: 'help' };
  // --netns, --container and --pod in the order given: the first is the first host of a merge.
  const places = parsed.tokens.flatMap((t): Place[] => {
    if (t.kind !== 'option' || t.value === undefined) return [];
    if (t.name === 'netns') return [{ netns: t.value }];
    if (t.name === 'container') return [{ container: t.value }];
    if (t.name === 'pod') return [{ pod: t.value }];
    return [];
  });
  if (v.version) return { kind: 'version' };

  const ports = v.port ? parsePorts(v.port) : null;
  const ringMiB =
    positiveNumber('--ring-mib', v['ring-mib'], true, MAX_RING_MIB, ' (its pages are mapped twice)') ??
    DEFAULT_RING_MIB;
  if ((ringMiB & (ringMiB - 1)) !== 0) {
    throw new UsageError(`bad --ring-mib '${ringMiB}': expected a power of two up to ${MAX_RING_MIB}`);
  }
  if (v.write !== undefined && v.write.trim() === '') throw new UsageError("bad --write '': expected a file name");
  const options: TraceOptions = {
    ports,
    hosts: (v.host ?? []).map(parseHost),
    expression: null,
    protos: parseProtos(v.proto, ports !== null),
    place: places.length === 1 ? places[0]! : null,
    across: isPair(places) ? places : null,
    json: v.json ?? false,
    plain: v.plain ?? false,
    quiet: v.quiet ?? false,
    debug: v.debug ?? false,
    duration: positiveNumber('--duration', v.duration, false, MAX_DURATION_S, ' seconds (24 days)'),
    count: positiveNumber('--count', v.count, true, MAX_COUNT),
    ringMiB,
    ruleTrace: v['rule-trace'] ?? false,
    write: v.write ?? null,
    report: v.report ?? null,
    snaplen: positiveNumber('--snaplen', v.snaplen, true, MAX_SNAPLEN, ' bytes') ?? DEFAULT_SNAPLEN,
    points: parsePoints(v.points),
    withTcpdump: v['with-tcpdump'] ?? null,
  };
  if (v.snaplen !== undefined && !options.write) throw new UsageError('--snaplen applies to --write');
  if (options.withTcpdump !== null && !validInterface(options.withTcpdump)) {
    throw new UsageError(
      `bad interface '${options.withTcpdump}' for --with-tcpdump: a name of at most 15 characters, or any`,
    );
  }
  if (options.withTcpdump !== null && options.json) {
    throw new UsageError(
      '--with-tcpdump prints a text comparison, not with --json (capture with tcpdump -w, then run pathtrace compare)',
    );
  }
  if (options.hosts.length > MAX_HOSTS) throw new UsageError(`too many --host filters (at most ${MAX_HOSTS})`);
  if (places.length > 2)
    throw new UsageError(
      '--netns, --container and --pod at most twice in all: two namespaces traced at once and merged',
    );
  for (const c of v.container ?? [])
    if (!c.trim() || c.startsWith('-')) throw new UsageError(`bad --container '${c}': a container's name or id`);
  for (const p of v.pod ?? [])
    if (!parsePodRef(p)) throw new UsageError(`bad --pod '${p}': NAMESPACE/NAME, or NAME in namespace default`);
  if (options.across) {
    const [a, b] = options.across.map(placeText);
    if (a === b) throw new UsageError(`${a} twice: give two different namespaces`);
    if (options.report)
      throw new UsageError(
        '--report with two namespaces: trace each with --json of its own, then pathtrace report the two files',
      );
    if (options.write)
      throw new UsageError(
        '--write with two namespaces: trace each with a --write of its own, then pathtrace merge the two files',
      );
    if (options.withTcpdump !== null)
      throw new UsageError('--with-tcpdump with two namespaces: trace one at a time beside tcpdump');
  }

  const [first, ...rest] = parsed.positionals;
  if (first === undefined) return { kind: 'trace', options };
  const subcommand = ['compare', 'merge', 'demo'].includes(first);
  if (!subcommand) {
    const expression = parsed.positionals.join(' ').trim();
    if (!expression) throw new UsageError('empty filter expression');
    return { kind: 'trace', options: { ...options, expression } };
  }
  if (first === 'compare') {
    if (!isPair(rest))
      throw new UsageError("compare takes two files: a tcpdump capture and pathtrace's --json output or --write file");
    return { kind: 'compare', capture: rest[0], trace: rest[1] };
  }
  if (first === 'merge') {
    if (!isPair(rest))
      throw new UsageError(
        "merge takes two traces, one per host: pathtrace's --json output or --write file (client=c.ndjson names the host)",
      );
    return { kind: 'merge', traces: [rest[0], rest[1]], json: options.json };
  }
  // demo
  if (rest.length > 1) throw new UsageError(`unexpected argument '${rest[1]}'`);
  const scenario = rest[0] ?? 'local-in';
  if (!DEMO_SCENARIOS.includes(scenario)) {
    throw new UsageError(`unknown demo scenario '${scenario}': expected ${DEMO_SCENARIOS.join(' or ')}`);
  }
  return { kind: 'demo', scenario, options };
}
