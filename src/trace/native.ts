// Types for the native addon (native/addon.cc) and its loading.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export interface FilterConfig {
  netns: number; // namespace inode; 0 = any
  protos: number; // PROTO_* mask
  ports: number[] | null; // null = any port
  hosts: { family: 4 | 6; addr: Uint8Array }[];
  ringBytes: number;
  netfilter: NetfilterMechanism; // how to trace the netfilter hooks
  snaplen?: number; // --write: packet bytes to capture (0/absent: none)
  skip?: string[]; // tracepoints not to load (--points)
  expression?: Uint8Array | null; // classic BPF of the user's tcpdump expression (expression.ts)
}

/** links: BPF netfilter links (6.4+); trampolines: fentry/fexit on nf_hook_slow and the table evaluators;
 *  kprobes: kprobes and kretprobes on the same, where trampolines are refused. */
export type NetfilterMechanism = 'links' | 'trampolines' | 'kprobes' | 'none';

export interface PointStatus {
  point: string;
  attached: boolean;
  error?: string;
}
export interface NetfilterRequest {
  pf: number;
  hook: number;
  slot: number;
  priority: number;
  step: number;
  maxTries: number;
}
export interface NetfilterResult {
  priority: number;
  errno: number;
  link: number;
}

export interface NativeDeviceProgram {
  attach: 'xdp-generic' | 'xdp-native' | 'xdp-offload' | 'tcx-ingress' | 'tcx-egress';
  id: number;
  name: string; // '' when it could not be read
  tag: string;
}

/** A program on a device whose verdicts are traced (an fexit program on it). */
export interface VerdictTarget {
  id: number;
  hook: 'xdp' | 'tc';
}
export interface VerdictStatus {
  id: number;
  attached: boolean;
  error?: string;
  /** The kernel refused the tracing program itself (no BPF trampolines, or not allowed): so it will any other. */
  refused?: boolean;
}

export interface NativeTracer {
  attachTracepoints(): PointStatus[];
  /** Traces the verdicts of exactly these programs: those not traced yet are, those no longer listed let go. */
  traceVerdicts(targets: VerdictTarget[]): VerdictStatus[];
  attachNetfilter(netnsPath: string, requests: NetfilterRequest[]): NetfilterResult[];
  detachLink(link: number): boolean;
  consume(into: Uint8Array): number;
  consumeBytes(into: Uint8Array): number;
  lostEvents(): number;
  /** Whether kfree_skb reports drop reasons on this kernel (5.17+). */
  dropReasons(): boolean;
  /** The mechanism loaded for netfilter: the one asked for, or the next one down when the kernel refused it. */
  netfilterMode(): NetfilterMechanism;
  close(): void;
}

/** A key of the agent's drop counts (bpf/drop_counts.h). */
export interface NativeDropKey {
  location: bigint;
  netns: number;
  ifindex: number;
  reason: number;
  /** The port of --port's list the packet had, with --label-ports; else 0. */
  port: number;
  hook: number;
  family: number;
  proto: number;
}

/** A key and its counts summed over CPUs. */
export interface NativeDropCount extends NativeDropKey {
  packets: number;
  bytes: number;
}

/** The first drop of a key: its packet's addresses (IPv4 in the first 4 bytes), ports and length. */
export interface NativeDropSample {
  key: NativeDropKey;
  saddr: Uint8Array;
  daddr: Uint8Array;
  sport: number;
  dport: number;
  len: number;
}

/** The agent's counting programs (native/agent.h). */
export interface NativeAgent {
  /** [start, end) of netfilter's freeing functions, whose frees are a hook's drops (at most 8). */
  setNfFreers(ranges: [bigint, bigint][]): void;
  /** "" once kfree_skb's program is attached, else why not. */
  attachDrops(): string;
  /** The hook entry program in a namespace at each of these hooks ([pf, hooknum]): a link id per hook, 0 where it
   *  could not be (or the kernel has no netfilter programs); throws when the namespace cannot be entered. */
  attachHooks(netnsPath: string, hooks: [number, number][]): number[];
  detach(links: number[]): void;
  /** samplesLost: first drops of keys not told, the sample ring full. */
  counts(): { keys: NativeDropCount[]; unkeyed: { packets: number; bytes: number }; samplesLost: number };
  /** The first drops of new keys since the last call. */
  samples(): NativeDropSample[];
  /** Deletes the counts of a namespace that went; how many. */
  forgetNetns(inode: number): number;
  /** Whether this kernel has netfilter BPF programs (6.4+): drops are counted by hook only there. */
  netfilterLinks(): boolean;
  close(): void;
}

export interface Native {
  Tracer: new (config: FilterConfig) => NativeTracer;
  /** ports: count only drops of TCP and UDP to or from these; null: all drops. expression: only drops it takes.
   *  labelPorts: each drop counted by the port of the list it has. */
  Agent: new (ports: number[] | null, expression?: Uint8Array, labelPorts?: boolean) => NativeAgent;
  kernelFeatures(): { btf: boolean; netfilterLinks: boolean; btfError?: string };
  kernelEnum(name: string): Record<string, number>;
  /** "v1.4": the libbpf the addon runs with. */
  libbpfVersion(): string;
  /** libbpf's messages to stderr (--debug). */
  setLibbpfDebug(on: boolean): void;
  interfaces(netnsPath: string): Record<number, string>;
  readInNetns(netnsPath: string, files: string[]): string[];
  /** The XDP programs (by mode) and tcx programs (by direction) on a device of the namespace. */
  devicePrograms(netnsPath: string, ifindex: number): NativeDeviceProgram[];
  /** A netlink socket hearing of every nftables change in the namespace (fd); throws when it cannot. */
  nftablesWatch(netnsPath: string): number;
  /** Change messages read from it since the last call. */
  nftablesChanges(fd: number): number;
  closeFd(fd: number): void;
  /** [CLOCK_REALTIME, CLOCK_MONOTONIC] in ns, read back to back. */
  clocks(): [bigint, bigint];
  /** A tcpdump expression compiled by libpcap (the first of libraries that loads) for raw IP; throws
   *  libpcap's message. */
  compileExpression(text: string, libraries: string[]): Uint8Array;
  /** The kernel interpreter's answers (1, 0; -1: could not run) for IP packets, by BPF_PROG_TEST_RUN. */
  testExpression(program: Uint8Array, packets: Uint8Array[]): number[];
  /** bpf/record.h as compiled (fields by name, points by PT_POINT_ suffix, constants by name), for its test. */
  recordLayout(): {
    size: number;
    fields: Record<string, { offset: number; size: number }>;
    bytesHeader: number;
    bytesFields: Record<string, number>;
    points: Record<string, { id: number; name: string; group: string }>;
    constants: Record<string, number>;
  };
}

// The repository's (or the package's) root, from dist/src/trace/.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Where the addon is loaded from, as node-gyp-build looks: this tree's own build (build/Release: a development
 *  tree), else the one prebuilt for this machine (prebuilds/linux-<arch>/: the package's, built by
 *  scripts/prebuild.sh for glibc 2.28). Pure but for exists. */
export function addonPath(dir: string, arch: string, exists: (p: string) => boolean): string {
  const built = path.join(dir, 'build', 'Release', 'pathtrace.node');
  const prebuilt = path.join(dir, 'prebuilds', `linux-${arch}`, 'pathtrace.node');
  return exists(built) || !exists(prebuilt) ? built : prebuilt;
}
export const ADDON_PATH = addonPath(root, process.arch, existsSync);

let cached: Native | undefined;

/** Why the addon did not load, in one line: not built (a development tree), or the system lacks what the
 *  prebuilt one needs (the loader's complaint, e.g. an older glibc). Pure. */
export function addonFailure(e: Error, exists: boolean): string {
  if (!exists) return `the native addon is not built (${ADDON_PATH}); run scripts/setup.sh`;
  const [why = ''] = e.message.split('\n');
  const glibc = /GLIBC_([\d.]+)/.exec(why);
  const need = glibc
    ? `: it was built for glibc ${glibc[1]}, newer than this system's; the package's prebuilt addon needs 2.28, ` +
      'as Node 20 does, or build it here (scripts/setup.sh)'
    : '';
  return `cannot load the native addon (${why})${need}`;
}

/** The addon, loaded on first use; throws a one-line error when it was not built. */
export function native(): Native {
  if (!cached) {
    try {
      cached = createRequire(import.meta.url)(ADDON_PATH) as Native;
    } catch (e) {
      throw new Error(addonFailure(e as Error, existsSync(ADDON_PATH)));
    }
  }
  return cached;
}
