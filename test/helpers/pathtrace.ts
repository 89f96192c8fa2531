// Runs the real pathtrace binary for end-to-end tests and collects its NDJSON.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import type { TestContext } from 'node:test';
import type {
  ClockRecord,
  ConnectionRecord,
  OutputRecord,
  PacketRecord,
  ReadyRecord,
  SummaryRecord,
  TraceRecord,
  TripRecord,
} from '../../src/output/records.js';
import { claimsFailures } from './claims.js';
import { BIN } from './paths.js';

/**
 * A record as a test reads it: every optional or nullable part taken as there. Names and types are checked; a test
 * that reads a part the record lacks fails when it runs, as an assertion would.
 */
export type Present<T> = T extends object ? { [K in keyof T]-?: Present<NonNullable<T[K]>> } : T;
export type Packet = Present<PacketRecord>;
export type Ready = Present<ReadyRecord>;
export type Connection = Present<ConnectionRecord>;
export type Summary = Present<SummaryRecord>;
export type Trip = Present<TripRecord>;
export type Clock = Present<ClockRecord>;

/** A filter by record type that narrows: records.filter(isType('packet')) is a Packet[]. */
export const isType =
  <T extends OutputRecord['type']>(t: T) =>
  <R extends { type: string }>(r: R): r is Extract<R, { type: T }> =>
    r.type === t;

/** NDJSON as pathtrace writes it, one record a line. */
export const parseRecords = (ndjson: string): Present<OutputRecord>[] =>
  ndjson
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));

/** Waits are multiplied by PATHTRACE_TEST_SLOWDOWN: the kernel matrix runs under qemu's TCG, many times slower. */
export const SLOWDOWN = Math.max(1, Number(process.env.PATHTRACE_TEST_SLOWDOWN) || 1);

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  records: Present<TraceRecord>[];
  stdout: string;
  stderr: string;
}

export class Pathtrace {
  readonly records: Present<TraceRecord>[] = [];
  stdout = '';
  stderr = '';
  private readonly exited: Promise<Finished>;

  private constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      const before = this.stdout.length;
      this.stdout += d;
      const complete = this.stdout.lastIndexOf('\n');
      if (complete < before) return;
      const startAt = this.stdout.lastIndexOf('\n', before - 1) + 1;
      for (const line of this.stdout.slice(startAt, complete).split('\n')) {
        if (line) this.records.push(JSON.parse(line));
      }
    });
    child.stderr!.on('data', (d: string) => {
      this.stderr += d;
    });
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) =>
        resolve({ code, signal, records: this.records, stdout: this.stdout, stderr: this.stderr }),
      ),
    );
  }

  /** Starts `pathtrace --json ARGS` and resolves once it printed its ready record. */
  static async start(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Pathtrace> {
    const child = spawn(process.execPath, [BIN, '--json', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pt = new Pathtrace(child);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`pathtrace not ready after ${10 * SLOWDOWN} s: ${pt.stderr}`)),
        10_000 * SLOWDOWN,
      );
      const check = setInterval(() => {
        if (pt.records.some((r) => r.type === 'ready')) {
          clearInterval(check);
          clearTimeout(timer);
          resolve();
        }
      }, 10);
      child.on('exit', (code) => {
        clearInterval(check);
        clearTimeout(timer);
        reject(new Error(`pathtrace exited (${code}): ${pt.stderr}`));
      });
    });
    return pt;
  }

  get ready(): Ready {
    return this.records.find(isType('ready'))!;
  }

  packets(): Packet[] {
    return this.records.filter(isType('packet'));
  }

  /** Waits until a packet record satisfies pred (or the timeout passes). */
  async waitFor(pred: (p: Packet) => boolean, ms = 5000): Promise<Packet | undefined> {
    const until = Date.now() + ms * SLOWDOWN;
    while (Date.now() < until) {
      const hit = this.packets().find(pred);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 20));
    }
    return undefined;
  }

  /** Stops it (signal) and resolves with what it wrote, once every packet's claims were found to rest on its steps
   *  (claims.ts); rejects naming those that do not. */
  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<Finished> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.done();
  }

  async done(): Promise<Finished> {
    const finished = await this.exited;
    const bad = claimsFailures(finished.records);
    if (bad.length) throw new Error(`claims without evidence:\n${bad.join('\n')}`);
    return finished;
  }
}

/** `pathtrace --plain ARGS` started, resolved once it said it is ready. */
export async function startPlain(
  args: string[],
): Promise<{ child: ChildProcess; out: () => string; err: () => string; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, '--plain', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '',
    err = '';
  child.stdout!.on('data', (d) => {
    out += d;
  });
  child.stderr!.on('data', (d) => {
    err += d;
  });
  const exit = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await Promise.race([
    new Promise<void>((resolve) =>
      child.stderr!.on('data', () => {
        if (/pathtrace: tracing/.test(err)) resolve();
      }),
    ),
    exit.then((code) => {
      throw new Error(`pathtrace exited (${code}): ${err}`);
    }),
  ]);
  return { child, out: () => out, err: () => err, exit };
}

/** Runs pathtrace to completion (no --json added). */
export function runCli(args: string[], opts: { uid?: number; env?: NodeJS.ProcessEnv; timeout?: number } = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    uid: opts.uid,
    env: { ...process.env, ...opts.env },
    timeout: opts.timeout ?? 30_000,
    maxBuffer: 256 << 20,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Skips the test unless running as root, saying why. */
export function needsRoot(t: TestContext): boolean {
  if (process.getuid?.() === 0) return true;
  t.skip('needs root: loads BPF programs and creates network namespaces');
  return false;
}

/**
 * bpftool's JSON listing. A link or program that goes away between bpftool finding its id and reading it fails the
 * whole listing (it does, while a killed pathtrace detaches), so a failed listing is taken again a few times.
 */
function bpftoolList<T>(kind: 'prog' | 'link'): T[] {
  for (let attempt = 1; ; attempt++) {
    try {
      return JSON.parse(
        execFileSync('bpftool', ['-j', kind, 'show'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }),
      ) as T[];
    } catch (e) {
      if (attempt >= 5) throw e;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
}

/** IDs of BPF links whose programs' names match: what attaches them. A link goes when its last fd closes; its
 *  program, for tracing programs, only after an RCU grace period (longer on a busy machine). */
export function linksOfPrograms(names: RegExp): number[] {
  const progs = bpftoolList<{ id: number; name?: string }>('prog');
  const ours = new Set(progs.filter((p) => names.test(p.name ?? '')).map((p) => p.id));
  return bpftoolList<{ id: number; prog_id: number }>('link')
    .filter((l) => ours.has(l.prog_id))
    .map((l) => l.id);
}

/** IDs of BPF links whose programs are pathtrace's (nf_probeN, the trampolines, on_*). */
export const pathtraceLinks = () =>
  linksOfPrograms(
    /^(nf_probe\d|nf_hook_slow_|nft_do_chain_|ip6?t_do_table_|k[pr]_(nf_hook|nft_do|ip6?t_do)|on_(netif_|napi_gro|net_dev_|qdisc_|skb_copy|sock_recv|kfree_skb|consume_skb|tcp_|inet_sock|xdp_)|(xdp|tc)_verdict$)/,
  );

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface LabTrace<T> {
  lab: import('../../src/lab/lab.js').Lab;
  result: T;
  packets: Packet[];
  connections: Connection[];
  summary: Summary;
  records: Present<TraceRecord>[];
}

/**
 * Builds a lab, lets setup install rules and servers, traces the namespace
 * `traced` picks with args, runs traffic, waits for journeys to settle
 * (settleMs), stops, and removes the lab. check() runs before the lab goes.
 */
export async function traceLab<T>(
  opts: {
    router?: boolean;
    bridge?: boolean;
    setup?: (lab: import('../../src/lab/lab.js').Lab) => Promise<unknown> | unknown;
    traced: (lab: import('../../src/lab/lab.js').Lab) => string;
    args: string[];
    traffic: (lab: import('../../src/lab/lab.js').Lab) => Promise<T>;
    settleMs?: number;
  },
  check: (t: LabTrace<T>) => void | Promise<void>,
): Promise<void> {
  const { Lab } = await import('../../src/lab/lab.js');
  const lab = new Lab({ router: opts.router, bridge: opts.bridge });
  try {
    await opts.setup?.(lab);
    const pt = await Pathtrace.start(['--netns', opts.traced(lab), ...opts.args]);
    const result = await opts.traffic(lab);
    await sleep((opts.settleMs ?? 300) * SLOWDOWN);
    const { code, records, stderr } = await pt.stop();
    if (code !== 0) throw new Error(`pathtrace exited ${code}: ${stderr}`);
    await check({
      lab,
      result,
      records,
      packets: records.filter(isType('packet')),
      connections: records.filter(isType('connection')),
      summary: records.find(isType('summary'))!,
    });
  } finally {
    lab.destroy();
  }
}

/** traceLab's setup for a router that DNATs its port 80 to the server's 8080, where the server listens; by
 *  iptables (iptables-nft), or the command given (iptables-legacy). */
export async function dnatToServer(lab: import('../../src/lab/lab.js').Lab, iptables = 'iptables'): Promise<void> {
  lab.exec(lab.router!.netns, iptables, [
    '-t',
    'nat',
    '-A',
    'PREROUTING',
    '-p',
    'tcp',
    '--dport',
    '80',
    '-j',
    'DNAT',
    '--to-destination',
    `${lab.server.v4}:8080`,
  ]);
  await lab.listen('tcp', 8080);
}

/**
 * Drops a test of normal traffic must not see. On a loaded machine the kernel
 * really drops stale duplicates (an ACK or data TCP already has: the
 * TCP_OLD_* reasons), and a last ACK or FIN that reaches a socket closing at
 * that moment (TCP_CLOSE: seen once in a VM of the matrix, an ACK without
 * payload queued behind close()); those are drops, honestly reported, not noise.
 */
export function unexpectedDrops(packets: Packet[]): Packet[] {
  const stale = (p: Packet) =>
    /^TCP_OLD_(SEQUENCE|ACK|DATA)$/.test(p.drop.reason) ||
    (p.drop.reason === 'TCP_CLOSE' && p.len === 0 && /^F?A$/.test(p.tcp_flags ?? ''));
  return packets.filter((p) => p.fate === 'dropped' && !stale(p));
}

/** Peak RSS of a process in MiB (VmHWM). */
export function peakMiB(pid: number): number {
  return Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** PIDs of the `nft -a monitor trace` processes running now (--rule-trace's reader). */
export function nftMonitors(): string[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/cmdline`, 'utf8').startsWith('nft\0-a\0monitor\0trace');
      } catch {
        return false;
      }
    });
}
