// A trace session: loads and attaches the probes, drains the ring buffer on a
// timer, names and correlates events, and hands finished journeys to a sink.
// close() detaches everything; it is safe to call more than once.
import { appendFileSync, closeSync, existsSync, openSync, writeFileSync } from 'node:fs';
import { Correlator, type NamedEvent } from '../correlate/correlate.js';
import type { Journey } from '../correlate/journey.js';
import type { ReadyInfo, Sink } from '../output/sink.js';
import type { Summary } from '../report/summary.js';
import { Tally } from '../report/tally.js';
import { RuleAttributor } from '../rules/attribution.js';
import { readQueues } from '../rules/nfqueue-read.js';
import type { Ruleset } from '../rules/model.js';
import { notInstalled, RulesetReader } from '../rules/read.js';
import { RuleTrace } from '../rules/ruletrace.js';
import { RulesetWatch } from '../rules/watch.js';
import { addressBytes, localAddressesV4, localAddressesV6 } from './address.js';
import { COUNTER_FILES, counterDeltas, parseAllCounters, type Counters } from './counters.js';
import { Devices } from './devices.js';
import { DevicePrograms } from './device-programs.js';
import { DropDetails } from './drop-details.js';
import { Outbox } from './outbox.js';
import type { Expression } from './expression.js';
import { Symbolizer } from './kallsyms.js';
import { EnumNames } from './kernel-names.js';
import { native, type Native, type NativeTracer, type NetfilterMechanism } from './native.js';
import { attachTracer, netfilterTracing, unattached, type Unavailable } from './netfilter-mechanism.js';
import { findNetns, type NetnsTarget } from './netns.js';
import { POINT_GROUPS, type PointGroup, type TraceOptions } from './options.js';
import { NetfilterProbes } from './probes.js';
import {
  Point,
  PROTO_ICMP,
  PROTO_TCP,
  PROTO_UDP,
  RECORD_SIZE,
  NF_SLOT_ENTRY,
  NF_SLOT_EXIT,
  REASON_NONE,
  clockBase,
  decodeBytes,
  decodeRecords,
  snapshotEvent,
  type ClockBase,
  type PacketBytes,
} from './record.js';
import { missingToolNotes, onPath } from './tools.js';
import { VERDICTS_READ_MS, VerdictTracing } from './verdicts.js';

export class SessionError extends Error {}

const POLL_MS = 20;

/** PATHTRACE_IDLE_MS: how long a packet may rest mid-path before it is reported cut by timeout (unset: the
 *  correlator's 1 s). An emulated machine (the kernel matrix under TCG) can stall a CPU mid-path for longer. */
export function idleNsFromEnv(value: string | undefined): number | undefined {
  const ms = Number(value);
  return value && Number.isFinite(ms) && ms > 0 ? ms * 1e6 : undefined;
}
const POLL_IDLE_MS = 100;
/** Polls without an event before the trace counts as idle. */
const IDLE_AFTER_POLLS = 5;
const BATCH_RECORDS = 4096;
/** Batches read per poll at most: the event loop runs in between (keys, signals, timers). A poll that
 *  left records behind runs again as soon as the loop has turned (setImmediate), not after POLL_MS:
 *  with a 20 ms pause after each poll, the drain sat idle a third of the time under a request/response
 *  load while the ring overflowed. */
const MAX_BATCHES_PER_POLL = 8;

/** Test switches, read from the environment by the command layer (commands/trace.ts) and handed in. */
export interface SessionSwitches {
  /** PATHTRACE_PRETEND_KERNEL_LACKS=btf,netfilter,trampolines: this kernel looks like one without (tests of
   *  the messages and the degraded mode). */
  pretendLacks: string[];
  /** PATHTRACE_RECORD_EVENTS=FILE: named events as NDJSON, the fixtures of the correlator's tests. */
  recordEventsTo: string | null;
  /** PATHTRACE_PROBES_ONLY=1: every probe attached as asked, but the kernel filter wants no namespace, so each
   *  leaves at its first check and nothing is recorded: the benchmark's floor, what attaching alone costs. */
  probesOnly?: boolean;
}

const NO_SWITCHES: SessionSwitches = { pretendLacks: [], recordEventsTo: null };
/** A namespace inode no namespace has (the kernel numbers them from 0xEFFFFFF8 up): the filter of PATHTRACE_PROBES_ONLY. */
const NO_NAMESPACE = 1;

/** What the kernel offers, less what the switches pretend it lacks. */
function kernelFeatures(n: Native, lacks: string[]) {
  const f = n.kernelFeatures();
  if (lacks.includes('btf'))
    Object.assign(f, {
      btf: false,
      btfError: "cannot load the kernel's BTF (CONFIG_DEBUG_INFO_BTF, /sys/kernel/btf/vmlinux)",
    });
  if (lacks.includes('netfilter')) f.netfilterLinks = false;
  return { ...f, trampolines: !lacks.includes('trampolines') };
}

/** How the netfilter hooks are to be traced: by links where the kernel has them, else trampolines, else kprobes. */
function netfilterMechanism(points: PointGroup[], f: ReturnType<typeof kernelFeatures>): NetfilterMechanism {
  if (!points.includes('netfilter')) return 'none';
  return f.netfilterLinks ? 'links' : f.trampolines ? 'trampolines' : 'kprobes';
}

/** The addon's tracer for these options: the filter it applies in the kernel and the points it leaves out. */
function tracerConfig(
  options: TraceOptions,
  netns: NetnsTarget,
  expression: Expression | null,
  netfilter: NetfilterMechanism,
) {
  const protos = options.protos.reduce(
    (m, p) => m | (p === 'tcp' ? PROTO_TCP : p === 'udp' ? PROTO_UDP : PROTO_ICMP),
    0,
  );
  return {
    netns: netns.inode,
    protos,
    ports: options.ports,
    hosts: options.hosts.map(addressBytes),
    ringBytes: options.ringMiB * 1024 * 1024,
    netfilter,
    snaplen: options.write ? options.snaplen : 0,
    expression: expression?.program ?? null,
    skip: (Object.keys(POINT_GROUPS) as PointGroup[])
      .filter((g) => !options.points.includes(g))
      .flatMap((g) => POINT_GROUPS[g]),
  };
}

/** A namespace's addresses, loopback aside; none when they cannot be read. */
function namespaceAddresses(n: Native, nsPath: string): string[] {
  try {
    const [v4, v6] = n.readInNetns(nsPath, ['/proc/thread-self/net/fib_trie', '/proc/thread-self/net/if_inet6']);
    return [...localAddressesV4(v4 ?? ''), ...localAddressesV6(v6 ?? '')].filter(
      (a) => !a.startsWith('127.') && a !== '::1',
    );
  } catch {
    return [];
  }
}

export class Session {
  private tracer: NativeTracer | null;
  private readonly base: ClockBase;
  private readonly baseNs: bigint;
  readonly devices: Devices;
  /** What is attached to its devices: the XDP and tc drops' programs and filters. */
  private readonly devicePrograms: DevicePrograms;
  /** The verdicts of those programs (BPF trampolines); null without the device points. */
  private readonly verdicts: VerdictTracing | null = null;
  private verdictsTimer: NodeJS.Timeout | null = null;
  readonly correlator: Correlator;
  readonly ready: ReadyInfo;
  /** /proc/kallsyms, read when the first freed packet needs a name (not before ready). */
  private symbolizer: Symbolizer | null = null;
  private get symbols(): Symbolizer {
    return (this.symbolizer ??= Symbolizer.fromProc());
  }
  private readonly reasons: EnumNames;
  private readonly buf = new Uint8Array(BATCH_RECORDS * RECORD_SIZE);
  /** --write: packet bytes by event time, until their event comes (kept one poll longer). */
  private readonly bytesBuf: Uint8Array | null;
  private bytes = new Map<number, PacketBytes>();
  private olderBytes = new Map<number, PacketBytes>();
  private readonly tally = new Tally();
  private events = 0;
  private lostSeen = 0;
  private cancelPoll: (() => void) | null = null; // cancels the next poll
  private stopping: ((why: string) => void) | null = null;
  /** Named events are written here as NDJSON (SessionSwitches.recordEventsTo). */
  private readonly recordTo: string | null;
  private recorded: string[] = [];

  /** The traced namespace, held open: /proc/PID/fd/N reaches it even after `ip netns del`. */
  private nsFd: number | null;
  private readonly nsPath: string;
  private readonly countersBefore: Counters | null;
  private readonly probes: NetfilterProbes | null = null;
  private readonly attributor: RuleAttributor | null = null;
  /** Journeys in the order they are reported; netfilter drops wait for their rule, too-big drops for their route. */
  private readonly outbox: Outbox;
  /** What a drop gets when it is reported: listeners, the device's program, the route, the advice. */
  private readonly details: DropDetails;
  private stopBeforeRunning: string | null = null;
  private readonly firstReading: Promise<Ruleset | null> | null;
  /** Hears of ruleset changes: the ruleset is read again only then (a large one costs ~0.5 s to read). */
  private rulesetWatch: RulesetWatch | null = null;
  private ruleTrace: RuleTrace | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private sink: Sink | null = null;
  /** Said once the trace runs: what --rule-trace added, leftovers removed. */
  private readonly notes: string[] = [];

  /** expression: the user's tcpdump expression, compiled (expression.ts). Loads, attaches, wires. */
  constructor(
    private readonly options: TraceOptions,
    readonly netns: NetnsTarget,
    readonly expression: Expression | null = null,
    switches: SessionSwitches = NO_SWITCHES,
  ) {
    const n = native();
    this.recordTo = switches.recordEventsTo;
    this.nsFd = netns.path ? openSync(netns.path, 'r') : null;
    this.bytesBuf = options.write ? new Uint8Array(4 << 20) : null;
    // By our pid, not "self": child processes (nsenter) open it too.
    this.nsPath = this.nsFd === null ? '' : `/proc/${process.pid}/fd/${this.nsFd}`;
    const features = kernelFeatures(n, switches.pretendLacks);
    if (!features.btf) {
      throw new SessionError(`${features.btfError}: pathtrace's probes need it; nothing can be traced on this kernel`);
    }
    const mechanism = netfilterMechanism(options.points, features);
    n.setLibbpfDebug(options.debug ?? false);
    this.reasons = new EnumNames(n.kernelEnum('skb_drop_reason'), 'SKB_DROP_REASON_');

    // The first reading of the ruleset starts before the probes load, beside it: its counters are the
    // baseline for naming rules by counter, and must predate every drop traced.
    const reader = mechanism !== 'none' ? this.rulesetReader() : null;
    // Listening before the first reading: no change can fall between the two.
    if (reader) this.rulesetWatch = RulesetWatch.open(this.nsPath);
    this.firstReading =
      reader?.read(false).catch((e) => {
        this.tellOnce(`ruleset not read: ${(e as Error).message}`);
        return null;
      }) ?? null;

    // Load.
    const wanted = switches.probesOnly ? { ...netns, inode: NO_NAMESPACE } : netns;
    try {
      this.tracer = new n.Tracer(tracerConfig(options, wanted, expression, mechanism));
    } catch (e) {
      this.closeNetns();
      throw new SessionError((e as Error).message);
    }
    this.baseNs = process.hrtime.bigint();
    if (this.recordTo) writeFileSync(this.recordTo, '');
    this.base = clockBase(this.baseNs);
    // Wall-clock time of the base, to the µs (Date.now() has ms): times line up with tcpdump's.
    const [realtime, monotonic] = n.clocks();
    const startedAt = Number(realtime - (monotonic - this.baseNs)) / 1e6;

    try {
      // Attach.
      const kprobes = () => new n.Tracer(tracerConfig(options, wanted, expression, 'kprobes'));
      const { points, traced, unavailable, probes } = this.attach(mechanism, kprobes);
      this.probes = probes;
      this.devices = new Devices(this.nsPath);
      this.devicePrograms = new DevicePrograms(this.nsPath, commandPrefix(netns));
      this.details = new DropDetails(this.nsPath, commandPrefix(netns), this.devices, this.devicePrograms);
      if (options.points.includes('device')) {
        this.verdicts = new VerdictTracing(
          this.tracer,
          this.devicePrograms,
          () => this.devices.all(),
          features.trampolines,
        );
        const read = this.verdicts.read();
        points.push(...read.points);
        unavailable.push(...read.unavailable);
      }
      // Wire: rules, counters, the correlator.
      if (traced !== 'none') {
        this.notes.push(...missingToolNotes(onPath));
        const trace = options.ruleTrace ? this.startRuleTrace() : null;
        // The probes between chains are placed in run(), from the first reading of the ruleset.
        this.attributor = new RuleAttributor(
          reader!,
          this.probes,
          this.devices,
          commandPrefix(netns),
          { chains: [] },
          trace,
          () => this.now(),
          () => readQueues(this.nsPath),
        );
      }
      this.outbox = new Outbox({
        attributor: this.attributor,
        details: this.details,
        reader: () => this.rulesetReader(),
        settleMs: this.ruleTrace ? 100 : 0,
        note: (m) => this.sink?.note(m),
        tellOnce: (m) => this.tellOnce(m),
        report: (j) => this.report(j),
      });
      this.countersBefore = this.readCounters();
      this.correlator = new Correlator({
        netns: netns.inode,
        idleNs: idleNsFromEnv(process.env.PATHTRACE_IDLE_MS),
        isExitProbe: (slot, family, hook) =>
          slot === NF_SLOT_EXIT || (slot === NF_SLOT_ENTRY && this.probes?.passOnly(family, hook) === true),
        reads: POINT_GROUPS.socket.some((p) => points.includes(p)),
      });
      this.correlator.flows.onEvict((keys) => this.tally.forget(keys));
      this.ready = {
        netns,
        points,
        netfilterMechanism: traced,
        netfilter: this.probes?.describe() ?? [],
        unavailable,
        startedAt,
        rulesetChanges: reader ? (this.rulesetWatch ? 'notified' : 'polled') : null,
        addresses: namespaceAddresses(n, this.nsPath),
      };
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Attaches the tracepoints and the netfilter probes; says which points could not be. */
  private attach(
    mechanism: NetfilterMechanism,
    withKprobes: () => NativeTracer,
  ): { points: string[]; traced: NetfilterMechanism; unavailable: Unavailable[]; probes: NetfilterProbes | null } {
    const points: string[] = [];
    const unattachedPoints: Unavailable[] = [];
    const attached = attachTracer(this.tracer!, withKprobes);
    const tracer = (this.tracer = attached.tracer);
    for (const s of attached.statuses) {
      if (s.attached) points.push(s.point);
      else unattachedPoints.push(unattached(s.point, s.error));
    }
    const { traced, unavailable } = netfilterTracing(mechanism, tracer.netfilterMode(), points, unattachedPoints);
    if (!tracer.dropReasons()) {
      unavailable.push({
        point: 'drop reasons',
        reason: "this kernel's kfree_skb has none (Linux < 5.17): drops are named by the freeing function, reason null",
      });
    }
    const probes = traced === 'links' ? new NetfilterProbes(tracer, this.nsPath) : null;
    if (probes) {
      try {
        probes.attachBrackets();
      } catch (e) {
        throw new SessionError((e as Error).message);
      }
      unavailable.push(...probes.failures);
    }
    return { points, traced, unavailable, probes };
  }

  /** --rule-trace: the nftables trace table, after removing what a killed pathtrace left. */
  private startRuleTrace(): RuleTrace {
    const trace = new RuleTrace(this.nsPath);
    this.ruleTrace = trace;
    const leftovers = trace.removeLeftovers();
    if (leftovers.length)
      this.notes.push(`removed what a killed pathtrace left: table inet ${leftovers.join(', table inet ')}`);
    try {
      this.notes.push(trace.start(this.options));
    } catch (e) {
      throw new SessionError(`--rule-trace: cannot add the trace table: ${(e as Error).message.split('\n')[0]}`);
    }
    return trace;
  }

  /** Runs until stop() (or --duration / --count / the namespace going away). */
  /** onReady: called once ready is out (the demo starts its client then). */
  async run(sink: Sink, onReady?: () => void): Promise<Summary> {
    this.sink = sink;
    // The probes between chains go in before ready, from the reading that ran beside the load.
    const rs = await this.firstReading;
    if (rs && this.attributor) this.attributor.take(rs, false);
    if (this.probes) this.ready.netfilter = this.probes.describe();
    sink.ready(this.ready);
    for (const n of this.notes) sink.note(n);
    onReady?.();
    return new Promise((resolve) => {
      let stopped = false;
      const stop = (why: string) => {
        if (stopped) return;
        stopped = true;
        this.cancelPoll?.();
        if (durationTimer) clearTimeout(durationTimer);
        if (netnsWatch) clearInterval(netnsWatch);
        this.outbox.stop();
        if (this.statsTimer) clearInterval(this.statsTimer);
        if (this.verdictsTimer) clearInterval(this.verdictsTimer);
        this.poll(true);
        this.outbox.finish();
        const after = this.readCounters();
        const summary = this.tally.summary(this.correlator, {
          counters: this.countersBefore && after ? counterDeltas(this.countersBefore, after) : null,
          lostEvents: this.tracer?.lostEvents() ?? 0,
          events: this.events,
          durationNs: this.now(),
          stoppedBy: why,
          unavailable: this.ready.unavailable,
        });
        this.close();
        sink.summary(summary);
        resolve(summary);
      };
      this.stopping = stop;
      const durationTimer =
        this.options.duration !== null ? setTimeout(() => stop('duration'), this.options.duration * 1000) : null;
      // Gone when nothing names the namespace any more (its file held open here keeps it alive, unused).
      let named = this.netns.path;
      const netnsWatch = named
        ? setInterval(() => {
            if (existsSync(named)) return;
            const again = findNetns(this.netns.inode);
            if (again) named = again;
            else stop('netns-gone');
          }, 500)
        : null;
      this.outbox.keepFresh(rs, this.rulesetWatch);
      if (this.verdicts?.live) {
        this.verdictsTimer = setInterval(() => {
          if (!this.verdicts!.live) return;
          try {
            for (const u of this.verdicts!.read().unavailable) sink.note(`not traced: ${u.point}: ${u.reason}`);
          } catch (e) {
            // Those traced so far stay; no program attached from now on is.
            clearInterval(this.verdictsTimer!);
            sink.note(`not traced any more: the devices' programs could not be read: ${(e as Error).message}`);
          }
        }, VERDICTS_READ_MS);
      }
      if (sink.stats) {
        this.statsTimer = setInterval(() => {
          const now = this.readCounters();
          sink.stats!({
            events: this.events,
            lostEvents: this.tracer?.lostEvents() ?? 0,
            counters: this.countersBefore && now ? counterDeltas(this.countersBefore, now) : null,
          });
        }, 1000);
      }
      // Every POLL_MS while events come; idle, every POLL_IDLE_MS (an idle trace costs half as much CPU).
      let idlePolls = 0;
      const pollAgain = () => {
        const before = this.events;
        const more = this.poll(false);
        if (this.options.count !== null && this.tally.packets >= this.options.count) stop('count');
        if (stopped) return;
        idlePolls = this.events === before ? idlePolls + 1 : 0;
        if (more) {
          const next = setImmediate(pollAgain);
          this.cancelPoll = () => clearImmediate(next);
        } else {
          schedule(idlePolls >= IDLE_AFTER_POLLS ? POLL_IDLE_MS : POLL_MS);
        }
      };
      const schedule = (ms: number) => {
        const next = setTimeout(pollAgain, ms);
        this.cancelPoll = () => clearTimeout(next);
      };
      schedule(POLL_MS);
      if (this.stopBeforeRunning) stop(this.stopBeforeRunning); // a signal came while the ruleset was read
    });
  }

  stop(why = 'signal'): void {
    if (this.stopping) this.stopping(why);
    else this.stopBeforeRunning = why;
  }

  /** Reads the traced namespace's ruleset; a tool that fails is told once (what it said), not at every reading. */
  private rulesetReader(): RulesetReader {
    return new RulesetReader(this.nsPath, (unread) => {
      for (const u of unread.filter((u) => !notInstalled(u)))
        this.tellOnce(`ruleset not read: ${u}; rules are not named while it fails`);
    });
  }

  private closed = false;
  private readonly told = new Set<string>();
  private tellOnce(message: string): void {
    // A ruleset read still under way at close ends after the summary, and fails: its namespace's fd is closed
    // (nsenter then opens whatever took that number: seen on Debian 11). Nothing is said after the summary.
    if (this.closed || this.told.has(message)) return;
    this.told.add(message);
    if (this.sink) this.sink.note(message);
    else this.notes.push(message);
  }

  /** Tells the user something through the sink (the demo's commentary in the UI). */
  note(message: string): void {
    this.sink?.note(message);
  }

  /** The namespace's netstat -s counters and its devices' and the host's counters of loss; null when they cannot be read. */
  private readCounters(): Counters | null {
    try {
      const texts = native().readInNetns(this.nsPath, COUNTER_FILES);
      return texts.some((t) => t.length) ? parseAllCounters(texts) : null;
    } catch {
      return null;
    }
  }

  private closeNetns(): void {
    if (this.nsFd !== null) closeSync(this.nsFd);
    this.nsFd = null;
  }

  private now(): number {
    return Number(process.hrtime.bigint() - this.baseNs);
  }

  /** Takes the addon's records into the correlator and reports what ended; true when records were left. */
  private poll(final: boolean): boolean {
    const tracer = this.tracer;
    if (!tracer) return false;
    let more = false;
    const push = (e: NamedEvent) => {
      if (e.point === Point.KFREE_SKB || e.point === Point.CONSUME_SKB) {
        e.location = this.symbols.lookup(e.locHi, e.locLo);
        if (e.point === Point.KFREE_SKB) e.reasonName = e.reason === REASON_NONE ? null : this.reasons.name(e.reason);
      } else if (e.point === Point.NETFILTER) {
        e.priority = this.probes?.priority(e.family, e.hook, e.probe);
      } else if (e.point === Point.NF_CHAIN) {
        e.priority = e.aux | 0; // an int in the kernel
      }
      if (this.bytesBuf) this.attachBytes(e);
      if (this.recordTo) this.recorded.push(JSON.stringify({ ...snapshotEvent(e), bytes: undefined }));
      this.correlator.push(e);
    };
    if (this.bytesBuf) [this.olderBytes, this.bytes] = [this.bytes, new Map()];
    for (let i = 0; i < MAX_BATCHES_PER_POLL || final; i++) {
      const n = tracer.consume(this.buf);
      this.events += n;
      // BPF writes a packet's bytes before its event: read after the events, every event read has its bytes here
      // (bytes of events still to come wait one poll in olderBytes).
      if (this.bytesBuf) this.readBytes(tracer);
      decodeRecords(this.buf, n, this.base, push);
      more = n === BATCH_RECORDS;
      if (!more) break;
    }
    const lost = tracer.lostEvents();
    if (lost > this.lostSeen) {
      this.lostSeen = lost;
      this.correlator.markIncomplete();
    }
    if (this.recordTo && this.recorded.length) {
      appendFileSync(this.recordTo, this.recorded.join('\n') + '\n');
      this.recorded = [];
    }
    if (final) this.correlator.finish();
    else this.correlator.tick(this.now());
    for (const j of this.correlator.drain()) this.outbox.add(j);
    // At the end, outbox.finish() reads what the drops still wait for, synchronously.
    if (!final) this.outbox.settle();
    return more;
  }

  private readBytes(tracer: NativeTracer): void {
    for (let i = 0; i < MAX_BATCHES_PER_POLL; i++) {
      const n = tracer.consumeBytes(this.bytesBuf!);
      decodeBytes(this.bytesBuf!, n, this.base, this.bytes);
      if (n < this.bytesBuf!.length / 2) break;
    }
  }

  /** The bytes its BPF program captured along with this event (same timestamp). */
  private attachBytes(e: NamedEvent): void {
    // Keyed by time; the skb tells apart two CPUs' events of the same nanosecond.
    const b = this.bytes.get(e.t) ?? this.olderBytes.get(e.t);
    if (b && b.skb === e.skb) e.bytes = b;
  }

  /** A journey with its facts complete, to the sink (up to --count). */
  private report(j: Journey): void {
    if (this.options.count !== null && this.tally.packets >= this.options.count) return;
    this.details.complete(j);
    this.tally.add(j);
    this.sink!.packet(j);
  }

  close(): void {
    this.closed = true;
    this.cancelPoll?.();
    this.cancelPoll = null;
    this.outbox?.stop();
    if (this.statsTimer) clearInterval(this.statsTimer);
    if (this.verdictsTimer) clearInterval(this.verdictsTimer);
    this.verdictsTimer = null;
    this.tracer?.close();
    this.tracer = null;
    this.ruleTrace?.stop();
    this.ruleTrace = null;
    this.rulesetWatch?.close();
    this.rulesetWatch = null;
    this.closeNetns();
  }
}

/** How the user runs a command in the traced namespace, for the commands pathtrace shows. */
export function commandPrefix(netns: NetnsTarget): string {
  if (!netns.path) return '';
  return netns.path.startsWith('/run/netns/') ? `ip netns exec ${netns.label} ` : `nsenter --net=${netns.path} `;
}
