// A trace session: loads and attaches the probes, drains the ring buffer on a
// timer, names and correlates events, and hands finished journeys to a sink.
// close() detaches everything; it is safe to call more than once.
import { appendFileSync, closeSync, existsSync, openSync, writeFileSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { Correlator, type NamedEvent } from './correlate.js';
import { COUNTER_FILES, counterDeltas, parseCounters, type Counters } from './counters.js';
import { Symbolizer } from './kallsyms.js';
import { EnumNames, HOOK_NAMES, NFPROTO_IPV4, NFPROTO_IPV6 } from './kernel-names.js';
import { addressBytes } from './address.js';
import type { Journey } from './journey.js';
import { native, type NativeTracer, type NetfilterRequest } from './native.js';
import type { NetnsTarget } from './netns.js';
import type { TraceOptions } from './options.js';
import {
  Point, PROTO_ICMP, PROTO_TCP, PROTO_UDP, RECORD_SIZE, NF_SLOT_ENTRY, NF_SLOT_EXIT,
  clockBase, decodeRecords, type ClockBase,
} from './record.js';
import { Tally, type Summary } from './summary.js';

export class SessionError extends Error {}

export interface NetfilterProbe {
  family: 'ipv4' | 'ipv6';
  hook: string;
  entry: number | null;  // priority, null when it could not attach
  exit: number | null;
}

export interface ReadyInfo {
  netns: NetnsTarget;
  points: string[];
  netfilter: NetfilterProbe[];
  unavailable: { point: string; reason: string }[];
  startedAt: number; // Date.now() at the clock base
}

export interface Sink {
  ready(info: ReadyInfo): void;
  packet(j: Journey): void;
  summary(s: Summary): void;
}

/** Names for what the kernel reports as numbers: devices of the traced namespace. */
export class Devices {
  private names: Record<number, string> = {};
  private refreshedAt = 0;

  constructor(private readonly netnsPath: string) {
    this.refresh();
  }

  private refresh(): void {
    try {
      this.names = native().interfaces(this.netnsPath);
    } catch {
      /* the namespace went away: keep the names we had */
    }
    this.refreshedAt = Date.now();
  }

  name(ifindex: number): string {
    if (!ifindex) return '';
    if (!(ifindex in this.names) && Date.now() - this.refreshedAt > 1000) this.refresh();
    return this.names[ifindex] ?? `if${ifindex}`;
  }
}

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;
const POLL_MS = 20;
const BATCH_RECORDS = 4096;
const MAX_BATCHES_PER_POLL = 64;

/** Entry probes just after INT_MIN (refused), exit probes just before INT_MAX;
 *  on EBUSY (priority taken by a chain or another tracer) the next one inward. */
export function netfilterPlan(): NetfilterRequest[] {
  const plan: NetfilterRequest[] = [];
  for (const pf of [NFPROTO_IPV4, NFPROTO_IPV6]) {
    for (let hook = 0; hook < HOOK_NAMES.length; hook++) {
      plan.push({ pf, hook, slot: NF_SLOT_ENTRY, priority: INT_MIN + 1, step: 1, maxTries: 64 });
      plan.push({ pf, hook, slot: NF_SLOT_EXIT, priority: INT_MAX - 1, step: -1, maxTries: 64 });
    }
  }
  return plan;
}

/**
 * What the kernel offers. PATHTRACE_PRETEND_KERNEL_LACKS=btf|netfilter makes
 * this kernel look like one without (tests of the messages and the degraded mode).
 */
function kernelFeatures(n: ReturnType<typeof native>) {
  const f = n.kernelFeatures();
  const lacks = (process.env.PATHTRACE_PRETEND_KERNEL_LACKS ?? '').split(',');
  if (lacks.includes('btf')) Object.assign(f, { btf: false, btfError: "cannot load the kernel's BTF (CONFIG_DEBUG_INFO_BTF, /sys/kernel/btf/vmlinux)" });
  if (lacks.includes('netfilter')) f.netfilterLinks = false;
  return f;
}

function errnoName(errno: number): string {
  const why: Record<string, string> = { EBUSY: 'every priority tried is taken (EBUSY)', EOPNOTSUPP: 'not supported (EOPNOTSUPP)' };
  const name = getSystemErrorName(-errno);
  return why[name] ?? name;
}

export class Session {
  private tracer: NativeTracer | null;
  private readonly base: ClockBase;
  private readonly baseNs: bigint;
  readonly devices: Devices;
  readonly correlator: Correlator;
  readonly ready: ReadyInfo;
  private readonly symbols = Symbolizer.fromProc();
  private readonly reasons: EnumNames;
  private readonly buf = new Uint8Array(BATCH_RECORDS * RECORD_SIZE);
  private readonly tally = new Tally();
  private events = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopping: ((why: string) => void) | null = null;
  /** PATHTRACE_RECORD_EVENTS=FILE: named events as NDJSON, the fixtures of the correlator's tests. */
  private readonly recordTo = process.env.PATHTRACE_RECORD_EVENTS || null;
  private recorded: string[] = [];

  /** The traced namespace, held open: /proc/self/fd/N reaches it even after `ip netns del`. */
  private nsFd: number | null;
  private readonly nsPath: string;
  private readonly countersBefore: Counters | null;

  constructor(private readonly options: TraceOptions, readonly netns: NetnsTarget) {
    const n = native();
    this.nsFd = netns.path ? openSync(netns.path, 'r') : null;
    this.nsPath = this.nsFd === null ? '' : `/proc/self/fd/${this.nsFd}`;
    const features = kernelFeatures(n);
    if (!features.btf) {
      throw new SessionError(`${features.btfError}: pathtrace's probes need it; nothing can be traced on this kernel`);
    }
    const unavailable: { point: string; reason: string }[] = [];
    if (!features.netfilterLinks) {
      unavailable.push({
        point: 'netfilter',
        reason: 'this kernel has no BPF netfilter links (Linux >= 6.4): hooks cannot be named; device, drop and TCP points still work',
      });
    }
    this.reasons = new EnumNames(n.kernelEnum('skb_drop_reason'), 'SKB_DROP_REASON_');

    const protos = options.protos.reduce((m, p) => m | (p === 'tcp' ? PROTO_TCP : p === 'udp' ? PROTO_UDP : PROTO_ICMP), 0);
    try {
      this.tracer = new n.Tracer({
        netns: netns.inode,
        protos,
        ports: options.ports,
        hosts: options.hosts.map(addressBytes),
        ringBytes: options.ringMiB * 1024 * 1024,
        netfilter: features.netfilterLinks,
      });
    } catch (e) {
      this.closeNetns();
      throw new SessionError((e as Error).message);
    }
    this.baseNs = process.hrtime.bigint();
    if (this.recordTo) writeFileSync(this.recordTo, '');
    this.base = clockBase(this.baseNs);
    const startedAt = Date.now();

    try {
      const points: string[] = [];
      for (const s of this.tracer.attachTracepoints()) {
        if (s.attached) points.push(s.point);
        else unavailable.push({ point: s.point, reason: s.error ?? 'not attached' });
      }
      const netfilter: NetfilterProbe[] = [];
      if (features.netfilterLinks) {
        const plan = netfilterPlan();
        let results;
        try {
          results = this.tracer.attachNetfilter(this.nsPath, plan);
        } catch (e) {
          throw new SessionError((e as Error).message);
        }
        for (let i = 0; i < plan.length; i += 2) {
          const family = plan[i].pf === NFPROTO_IPV4 ? 'ipv4' : 'ipv6';
          const hook = HOOK_NAMES[plan[i].hook];
          const [entry, exit] = [results[i], results[i + 1]];
          netfilter.push({
            family, hook,
            entry: entry.errno ? null : entry.priority,
            exit: exit.errno ? null : exit.priority,
          });
          for (const [r, at] of [[entry, 'entry'], [exit, 'exit']] as const) {
            if (r.errno) unavailable.push({ point: `netfilter ${family} ${hook} ${at}`, reason: errnoName(r.errno) });
          }
        }
      }
      this.devices = new Devices(this.nsPath);
      this.countersBefore = this.readCounters();
      this.correlator = new Correlator({ netns: netns.inode, isExitProbe: (slot) => slot === NF_SLOT_EXIT });
      this.ready = { netns, points, netfilter, unavailable, startedAt };
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Runs until stop() (or --duration / --count / the namespace going away). */
  run(sink: Sink): Promise<Summary> {
    sink.ready(this.ready);
    return new Promise((resolve) => {
      let stopped = false;
      const stop = (why: string) => {
        if (stopped) return;
        stopped = true;
        if (this.timer) clearInterval(this.timer);
        if (durationTimer) clearTimeout(durationTimer);
        if (netnsWatch) clearInterval(netnsWatch);
        this.poll(sink, true);
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
      const durationTimer = this.options.duration !== null
        ? setTimeout(() => stop('duration'), this.options.duration * 1000) : null;
      const netnsWatch = this.netns.path
        ? setInterval(() => { if (!existsSync(this.netns.path)) stop('netns-gone'); }, 500) : null;
      this.timer = setInterval(() => {
        this.poll(sink, false);
        if (this.options.count !== null && this.tally.packets >= this.options.count) stop('count');
      }, POLL_MS);
    });
  }

  stop(why = 'signal'): void {
    this.stopping?.(why);
  }

  /** The namespace's netstat -s counters, or null when they cannot be read. */
  private readCounters(): Counters | null {
    try {
      const texts = native().readInNetns(this.nsPath, COUNTER_FILES);
      return texts.some((t) => t.length) ? parseCounters(...texts) : null;
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

  private poll(sink: Sink, final: boolean): void {
    const tracer = this.tracer;
    if (!tracer) return;
    const push = (e: NamedEvent) => {
      if (e.point === Point.KFREE_SKB || e.point === Point.CONSUME_SKB) {
        e.location = this.symbols.lookup(e.locHi, e.locLo);
        if (e.point === Point.KFREE_SKB) e.reasonName = this.reasons.name(e.reason);
      }
      if (this.recordTo) this.recorded.push(JSON.stringify(e));
      this.correlator.push(e);
    };
    for (let i = 0; i < MAX_BATCHES_PER_POLL || final; i++) {
      const n = tracer.consume(this.buf);
      this.events += n;
      decodeRecords(this.buf, n, this.base, push);
      if (n < BATCH_RECORDS) break;
    }
    if (this.recordTo && this.recorded.length) {
      appendFileSync(this.recordTo, this.recorded.join('\n') + '\n');
      this.recorded = [];
    }
    if (final) this.correlator.finish();
    else this.correlator.tick(this.now());
    for (const j of this.correlator.drain()) {
      if (this.options.count !== null && this.tally.packets >= this.options.count) break;
      this.tally.add(j);
      sink.packet(j);
    }
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.tracer?.close();
    this.tracer = null;
    this.closeNetns();
  }
}
