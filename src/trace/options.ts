// What a trace is asked to do: the options the command line (commands/options.ts) or a demo gives it.
import { POINT_GROUP_NAMES, POINTS } from './record.js';

export { MAX_SNAPLEN } from './record.js';

export type Proto = 'tcp' | 'udp' | 'icmp';

/** A network namespace to trace in, as given: by `ip netns` name or path, by the container in it, or by the
 *  Kubernetes pod (NAMESPACE/NAME) whose sandbox holds it. */
export type Place = { netns: string } | { container: string } | { pod: string };

export interface TraceOptions {
  ports: number[] | null; // null: any port
  hosts: string[]; // IPv4/IPv6 literals, normalised
  /** A tcpdump filter expression (the words after the options, joined as tcpdump joins them), or null. */
  expression: string | null;
  protos: Proto[];
  /** --netns, --container or --pod once: trace in that namespace (trace/containers.ts finds a container's or
   *  pod's); null: pathtrace's own. */
  place: Place | null;
  /** Two places (--netns, --container, --pod) given: both traced at once, each by a pathtrace of its own, and merged
   *  (commands/across.ts). */
  across: [Place, Place] | null;
  json: boolean;
  /** Line output even on a terminal (no full-screen UI). */
  plain: boolean;
  /** No per-packet output: the summary (and, with --json, the connection records) only. */
  quiet: boolean;
  /** --debug: libbpf's messages on stderr. */
  debug?: boolean;
  duration: number | null; // seconds
  count: number | null; // packets
  ringMiB: number;
  /** Add an nftables trace table to name the exact rule (changes the ruleset while tracing). */
  ruleTrace: boolean;
  /** --write: a pcapng file of the traced packets, with their fates as comments. */
  write: string | null;
  /** --report: an HTML page of the trace, written at its end. */
  report: string | null;
  snaplen: number;
  /** --with-tcpdump: run tcpdump on this interface beside the trace and compare at the end. */
  withTcpdump: string | null;
  /** Groups of probe points to load (--points); all by default. */
  points: PointGroup[];
}

/** Probe points by group, for --points: fewer points, less cost per packet. Each group names its tracepoints, as
 *  bpf/record.h's point table groups them; netfilter's points are hook probes (netfilter links, not tracepoints). */
export const POINT_GROUPS = Object.fromEntries(
  POINT_GROUP_NAMES.map((g) => [g, g === 'netfilter' ? [] : POINTS.filter((p) => p.group === g).map((p) => p.name)]),
) as Record<PointGroup, string[]>;
export type PointGroup = (typeof POINT_GROUP_NAMES)[number];

/** The kernel's ring: emptied every millisecond by the addon's drain thread into a queue (up to 64 MiB)
 *  that JavaScript takes from, so it only has to hold what comes between two drains. Its pages are mapped
 *  twice into the process (RSS counts 2 × its size, from the start). */
export const DEFAULT_RING_MIB = 8;
export const DEFAULT_SNAPLEN = 128; // IPv6 (40) + TCP with options (60), with room

/** --port's ports (sorted, as parsed) as runs of consecutive ports: [first, last]. */
export function portRuns(ports: number[]): [number, number][] {
  const runs: [number, number][] = [];
  for (const p of ports) {
    const run = runs.at(-1);
    if (run && p === run[1] + 1) run[1] = p;
    else runs.push([p, p]);
  }
  return runs;
}
