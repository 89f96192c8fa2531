// `npm run bench` (as root): pathtrace's cost on real traffic, side by side
// with no tracer and with tcpdump, in one run. Each workload is measured under
// each configuration, interleaved and repeated; medians and spread are
// printed as ratios to the no-tracer baseline. Then the micro-benchmark.
//   npm run bench -- [--rounds N] [--seconds S] [--breakdown] [--soak SECONDS] [--ruleset]
// --ruleset: only the large-ruleset part (bench/ruleset.ts), which a full run ends with.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Lab, run } from '../src/lab/lab.js';
import { POINT_GROUPS } from '../src/trace/options.js';
import { run as micro } from './micro.js';
import { rulesetBench } from './ruleset.js';
import { startPathtrace } from './traced.js';
import { BIN, ROOT } from '../test/helpers/paths.js';

const LOADGEN = path.join(ROOT, 'build', 'pathtrace-loadgen');
const PORTS = { stream: 5201, udp: 7000, rr: 7001 };
const TRACED_PORTS = `${PORTS.stream},${PORTS.udp},${PORTS.rr}`;

type Workload = 'stream' | 'udp' | 'rr';
const WORKLOADS: { id: Workload; label: string; unit: string }[] = [
  { id: 'stream', label: 'TCP stream (iperf3)', unit: 'Gbit/s' },
  { id: 'udp', label: 'UDP 64-byte flood', unit: 'kpkt/s' },
  { id: 'rr', label: 'TCP request/response', unit: 'ktrans/s' },
];

interface Config {
  id: string;
  label: string;
  start?: (lab: Lab, dir: string) => Promise<Tracer>;
}
interface Tracer {
  pid?: number;
  /** The agent's /metrics. */
  metrics?: () => Promise<string>;
  stop(): Promise<TracerStats>;
}
interface TracerStats {
  events?: number;
  packets?: number;
  lost?: number;
  rssMiB?: number;
  readyMs?: number;
  cpuS?: number;
  /** CPU time of pathtrace's main thread (drain, decode, correlate, output) from ready to the end of the traffic. */
  mainCpuS?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const perSecond = (n: number | undefined, seconds: number) => (n === undefined ? undefined : n / seconds);

/** The fields of a /proc stat file after the command name. */
function statFields(path: string): string[] {
  const rest = readFileSync(path, 'utf8').split(') ')[1];
  if (rest === undefined) throw new Error(`${path}: no ") " after the command name`);
  return rest.split(' ');
}

/** CPU seconds of a process's main thread (where the ring is drained and events correlated). */
function mainThreadCpu(pid: number): number {
  try {
    const stat = statFields(`/proc/${pid}/task/${pid}/stat`);
    return (Number(stat[11]) + Number(stat[12])) / 100;
  } catch {
    return 0;
  }
}

function procStats(pid: number): { rssMiB: number; cpuS: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    const stat = statFields(`/proc/${pid}/stat`);
    return { rssMiB: hwm, cpuS: (Number(stat[11]) + Number(stat[12])) / 100 };
  } catch {
    return { rssMiB: 0, cpuS: 0 };
  }
}

/** Stops a tracer with SIGINT (its summary comes out); its peak RSS and CPU time just before. */
async function stopChild(child: ChildProcess): Promise<{ rssMiB: number; cpuS: number }> {
  const stats = procStats(child.pid!);
  child.kill('SIGINT');
  await new Promise((r) => child.on('exit', r));
  return stats;
}

/** pathtrace on the server's namespace; --quiet, so that output formatting is not what is measured. */
function pathtrace(args: string[], env: NodeJS.ProcessEnv = {}): Config['start'] {
  return async (lab, dir) => {
    const { child, readyMs, output } = await startPathtrace(
      ['--quiet', '--netns', lab.server.netns, ...args.map((a) => a.replace('DIR', dir))],
      env,
    );
    const cpuAtReady = mainThreadCpu(child.pid!);
    return {
      pid: child.pid!,
      async stop() {
        const mainCpuS = mainThreadCpu(child.pid!) - cpuAtReady;
        const { rssMiB, cpuS } = await stopChild(child);
        const summary = JSON.parse(output().trim().split('\n').at(-1)!);
        return {
          events: summary.events,
          packets: summary.packets,
          lost: summary.lost_events,
          rssMiB,
          readyMs,
          cpuS,
          mainCpuS,
        };
      },
    };
  };
}

/** pathtrace agent, as left on a server: every namespace, counting in the kernel, /metrics served. */
async function startAgent(args: string[] = []): Promise<Tracer> {
  const started = Date.now();
  const port = 19000 + Math.floor(Math.random() * 1000);
  const child = spawn(process.execPath, [BIN, 'agent', '--listen', `127.0.0.1:${port}`, ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  for (;;) {
    if (child.exitCode !== null) throw new Error('pathtrace agent exited before it served');
    const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await sleep(20);
  }
  const readyMs = Date.now() - started;
  return {
    pid: child.pid!,
    metrics: () => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text()),
    async stop() {
      const { rssMiB, cpuS } = await stopChild(child);
      return { rssMiB, cpuS, readyMs };
    },
  };
}

const AGENT: Config = { id: 'agent', label: 'pathtrace agent', start: () => startAgent() };

const CONFIGS: Config[] = [
  { id: 'none', label: 'no tracer' },
  AGENT,
  // The floor: the probes of tracing all, each leaving at its first check (a namespace no packet is in).
  {
    id: 'pt-floor',
    label: 'pathtrace, probes only (floor)',
    start: pathtrace(['--port', TRACED_PORTS], { PATHTRACE_PROBES_ONLY: '1' }),
  },
  { id: 'pt-none', label: 'pathtrace, filter matching none', start: pathtrace(['--port', '9']) },
  { id: 'pt-all', label: 'pathtrace, tracing all', start: pathtrace(['--port', TRACED_PORTS]) },
  {
    id: 'pt-write',
    label: 'pathtrace, all + --write',
    start: pathtrace(['--port', TRACED_PORTS, '--write', 'DIR/w.pcapng']),
  },
  // The same two filters as tcpdump expressions: run by the kernel interpreter once per packet.
  { id: 'pt-expr-none', label: "pathtrace 'port 9'", start: pathtrace(['port 9']) },
  {
    id: 'pt-expr-all',
    label: 'pathtrace, all by an expression',
    start: pathtrace([`port ${PORTS.stream} or port ${PORTS.udp} or port ${PORTS.rr}`]),
  },
  {
    id: 'tcpdump',
    label: 'tcpdump -w /dev/null, all',
    start: async (lab) => {
      const child = spawn(
        'ip',
        [
          'netns',
          'exec',
          lab.server.netns,
          'tcpdump',
          '-i',
          'eth0',
          '-w',
          '/dev/null',
          '-n',
          'port',
          String(PORTS.stream),
          'or',
          'port',
          String(PORTS.udp),
          'or',
          'port',
          String(PORTS.rr),
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      await new Promise<void>((resolve) =>
        child.stderr!.on('data', (d) => {
          if (String(d).includes('listening')) resolve();
        }),
      );
      return {
        stop: () => stopChild(child),
      };
    },
  },
];

/** Traffic runs on CPU 0, tracers wherever the scheduler puts them: what a probe costs shows on the
 *  traffic's CPU, and one-byte round trips do not depend on another CPU waking up. */
function spawnIn(netns: string, cmd: string, args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', netns, 'taskset', '-c', '0', cmd, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function firstLine(child: ChildProcess): Promise<Record<string, number>> {
  let text = '';
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      text += d;
      const nl = text.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(text.slice(0, nl)));
    });
    child.on('exit', (code) => {
      if (!text.includes('\n')) reject(new Error(`exited ${code}`));
    });
  });
}

async function lastLine(child: ChildProcess): Promise<Record<string, number>> {
  let text = '';
  child.stdout!.on('data', (d) => {
    text += d;
  });
  await new Promise((r) => child.on('exit', r));
  return JSON.parse(text.trim().split('\n').at(-1)!);
}

/** A number the load generator reported. */
function reported(line: Record<string, number>, name: string): number {
  const n = line[name];
  if (n === undefined) throw new Error(`the load generator did not report ${name}: ${JSON.stringify(line)}`);
  return n;
}

/** One measurement of a workload: its rate in the workload's unit. */
async function measure(lab: Lab, w: Workload, seconds: number): Promise<number> {
  const srv = lab.server.v4;
  if (w === 'stream') {
    const server = spawnIn(lab.server.netns, 'iperf3', ['-s', '-1', '-p', String(PORTS.stream)]);
    await sleep(300);
    const out = run('ip', [
      'netns',
      'exec',
      lab.client.netns,
      'taskset',
      '-c',
      '0',
      'iperf3',
      '-c',
      srv,
      '-p',
      String(PORTS.stream),
      '-t',
      String(seconds),
      '-J',
    ]);
    server.kill();
    return JSON.parse(out).end.sum_received.bits_per_second / 1e9;
  }
  if (w === 'udp') {
    const sink = spawnIn(lab.server.netns, LOADGEN, ['udp-sink', String(PORTS.udp), String(seconds + 1)]);
    await firstLine(sink);
    const flood = spawnIn(lab.client.netns, LOADGEN, ['udp-flood', srv, String(PORTS.udp), String(seconds), '18']);
    await lastLine(flood);
    const got = await lastLine(sink);
    return reported(got, 'packets') / seconds / 1e3;
  }
  const server = spawnIn(lab.server.netns, LOADGEN, ['rr-server', String(PORTS.rr)]);
  await firstLine(server);
  const client = await lastLine(
    spawnIn(lab.client.netns, LOADGEN, ['rr-client', srv, String(PORTS.rr), String(seconds)]),
  );
  server.kill();
  return reported(client, 'transactions') / reported(client, 'seconds') / 1e3;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const [lo, hi] = [s[Math.floor((s.length - 1) / 2)], s[Math.floor(s.length / 2)]];
  if (lo === undefined || hi === undefined) throw new Error('median of no rounds');
  return (lo + hi) / 2;
}

function shuffle<T>(xs: T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

async function soak(seconds: number): Promise<void> {
  const lab = new Lab();
  const dir = mkdtempSync(path.join(tmpdir(), 'pathtrace-soak-'));
  try {
    const tracer = await pathtrace(['--port', TRACED_PORTS])!(lab, dir);
    const server = spawnIn(lab.server.netns, 'iperf3', ['-s', '-p', String(PORTS.stream)]);
    await sleep(300);
    const client = spawnIn(lab.client.netns, 'iperf3', [
      '-c',
      lab.server.v4,
      '-p',
      String(PORTS.stream),
      '-t',
      String(seconds),
    ]);
    const pid = tracer.pid!;
    const started = Date.now();
    while (client.exitCode === null) {
      await sleep(10_000);
      const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
      console.log(`soak ${Math.round((Date.now() - started) / 1000)} s: RSS ${rss.toFixed(0)} MiB`);
    }
    server.kill();
    const s = await tracer.stop();
    console.log(
      `soak done: ${s.events} events, ${s.lost} lost, peak RSS ${s.rssMiB!.toFixed(0)} MiB (target < 200 MiB)`,
    );
  } finally {
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}

const rssMiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const dropSeries = (text: string, netns = '') =>
  text.split('\n').filter((l) => l.startsWith(`pathtrace_drops_total{netns="${netns}`)).length;

/** --soak S --agent: the agent while namespaces come and go, each with drops of its own (a lab, a DROP rule, SYNs),
 *  for S seconds: its RSS and series every 10 s, and at the end whether the gone namespaces' series went too. */
async function agentSoak(seconds: number): Promise<void> {
  const forgetAfter = 5;
  const tracer = await startAgent(['--interval', '1', '--forget-after', String(forgetAfter)]);
  const pid = tracer.pid!;
  const started = Date.now();
  let labs = 0;
  let lastReport = started;
  while (Date.now() - started < seconds * 1000) {
    const lab = new Lab();
    try {
      lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '3306', '-j', 'DROP']);
      await Promise.all([1, 2].map(() => lab.connect('tcp', lab.server.v4, 3306, 300)));
      await sleep(1200); // a collection while it is there
    } finally {
      lab.destroy();
    }
    labs++;
    if (Date.now() - lastReport >= 10_000) {
      lastReport = Date.now();
      const text = await tracer.metrics!();
      console.log(
        `agent soak ${Math.round((Date.now() - started) / 1000)} s: ${labs} labs, RSS ${rssMiB(pid).toFixed(0)} MiB, ` +
          `${dropSeries(text)} drop series (${dropSeries(text, 'pt')} of labs)`,
      );
    }
  }
  await sleep((forgetAfter + 3) * 1000);
  const left = dropSeries(await tracer.metrics!(), 'pt');
  const s = await tracer.stop();
  console.log(
    `agent soak done: ${labs} labs (${labs * 2} namespaces) in ${seconds} s, peak RSS ${s.rssMiB!.toFixed(0)} MiB, ` +
      `CPU ${s.cpuS!.toFixed(1)} s; series of gone labs left after --forget-after: ${left} (expected 0)`,
  );
}

/** --breakdown: what each group of probe points costs, alone, with a filter matching none. */
const BREAKDOWN: Config[] = [
  { id: 'none', label: 'no tracer' },
  ...Object.keys(POINT_GROUPS).map((g) => ({
    id: `only-${g}`,
    label: `only --points ${g}`,
    start: pathtrace(['--port', '9', '--points', g]),
  })),
  { id: 'pt-none', label: 'all points', start: pathtrace(['--port', '9']) },
];

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string' },
      seconds: { type: 'string' },
      soak: { type: 'string' },
      breakdown: { type: 'boolean' },
      agent: { type: 'boolean' },
      ruleset: { type: 'boolean' },
    },
  });
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (namespaces, BPF)');
  for (const need of [LOADGEN, '/usr/bin/iperf3', '/usr/bin/tcpdump']) {
    if (!existsSync(need)) throw new Error(`missing ${need}: run scripts/setup.sh`);
  }
  if (values.soak) return values.agent ? agentSoak(Number(values.soak)) : soak(Number(values.soak));
  if (values.ruleset) {
    console.log((await rulesetBench(Number(values.rounds ?? 5))).join('\n'));
    return;
  }
  // --agent: the agent beside no tracer alone, for more rounds in the same time.
  const configs = values.breakdown ? BREAKDOWN : values.agent ? [CONFIGS[0]!, AGENT] : CONFIGS;
  const workloads = values.breakdown ? WORKLOADS.filter((w) => w.id !== 'stream') : WORKLOADS;
  const rounds = Number(values.rounds ?? 5);
  const seconds = Number(values.seconds ?? 3);
  const results = new Map<string, number[]>(); // `${workload} ${config}` -> rates
  const stats = new Map<string, TracerStats[]>();
  const lab = new Lab();
  const dir = mkdtempSync(path.join(tmpdir(), 'pathtrace-bench-'));
  try {
    for (let r = 1; r <= rounds; r++) {
      for (const w of workloads) {
        for (const c of shuffle(configs)) {
          const tracer = c.start ? await c.start(lab, dir) : null;
          const rate = await measure(lab, w.id, seconds);
          const s = tracer ? await tracer.stop() : null;
          const k = `${w.id} ${c.id}`;
          results.set(k, [...(results.get(k) ?? []), rate]);
          if (s)
            stats.set(k, [
              ...(stats.get(k) ?? []),
              {
                ...s,
                events: perSecond(s.events, seconds),
                packets: perSecond(s.packets, seconds),
                mainCpuS: s.mainCpuS,
              },
            ]);
          process.stderr.write(
            `round ${r}/${rounds} ${w.label.padEnd(22)} ${c.label.padEnd(34)} ${rate.toFixed(2)} ${w.unit}\n`,
          );
        }
      }
    }
  } finally {
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }

  const lines: string[] = [];
  lines.push(
    `pathtrace overhead: ${rounds} rounds × ${seconds} s, configurations interleaved in random order; median (min–max) as a ratio of the no-tracer median`,
  );
  lines.push('');
  lines.push(
    `${'workload'.padEnd(24)}${'configuration'.padEnd(36)}${'median'.padStart(10)}  ${'ratio'.padStart(6)} ${'floor−'.padStart(7)} ${'spread'.padStart(13)}  ${'events/s'.padStart(9)} ${'pkts/s'.padStart(7)} ${'lost'.padStart(6)} ${'RSS MiB'.padStart(8)} ${'CPU s'.padStart(6)}`,
  );
  /** A configuration's median as a ratio of the no-tracer median; undefined where it did not run. */
  const ratio = (w: Workload, c: string) => {
    const xs = results.get(`${w} ${c}`);
    return xs ? median(xs) / median(results.get(`${w} none`)!) : undefined;
  };
  for (const w of workloads) {
    const base = median(results.get(`${w.id} none`)!);
    const floor = ratio(w.id, 'pt-floor');
    for (const c of configs) {
      const xs = results.get(`${w.id} ${c.id}`)!;
      const m = median(xs);
      const st = stats.get(`${w.id} ${c.id}`) ?? [];
      const ev = st[0]?.events !== undefined ? median(st.map((x) => x.events!)) : undefined;
      const pk = st[0]?.packets !== undefined ? median(st.map((x) => x.packets!)) : undefined;
      const lost = st[0]?.lost !== undefined ? st.reduce((n, x) => n + x.lost!, 0) : undefined;
      const rss = st.length ? Math.max(...st.map((x) => x.rssMiB ?? 0)) : undefined;
      const cpu = st.length ? median(st.map((x) => x.cpuS ?? 0)) : undefined;
      lines.push(
        // floor−: how far below the floor a trace is (the part of its cost that is its own work, not attaching).
        `${w.label.padEnd(24)}${c.label.padEnd(36)}${`${m.toFixed(2)} ${w.unit.split('/')[0]}`.padStart(10)}  ${(m / base).toFixed(3).padStart(6)} ` +
          `${(floor !== undefined && c.id.startsWith('pt-') && c.id !== 'pt-floor' ? (floor - m / base).toFixed(3) : '').padStart(7)} ` +
          `${`${(Math.min(...xs) / base).toFixed(2)}–${(Math.max(...xs) / base).toFixed(2)}`.padStart(13)}  ` +
          `${ev === undefined ? '' : `${(ev / 1e3).toFixed(0)}k`.padStart(9)} ${pk === undefined ? '' : `${(pk / 1e3).toFixed(0)}k`.padStart(7)} ` +
          `${lost === undefined ? '' : String(lost).padStart(6)} ` +
          `${rss === undefined ? '' : rss.toFixed(0).padStart(8)} ${cpu === undefined ? '' : cpu.toFixed(2).padStart(6)}`,
      );
    }
  }
  const ready = [...stats.values()]
    .flat()
    .map((s) => s.readyMs)
    .filter((x): x is number => x !== undefined);
  lines.push('');
  lines.push(`time from start to ready: median ${median(ready)} ms, max ${Math.max(...ready)} ms (target < 1000 ms)`);
  const pipeline: number[] = []; // events/s per second of the main thread's CPU, per workload
  // What the whole pipeline (ring → addon → decode → correlate → summary) sustains on one core: the events it
  // handled per second of its main thread's CPU (where all of that runs), tracing all; and its rate where it lost events.
  for (const w of workloads.filter((x) => x.id !== 'stream')) {
    const st = (stats.get(`${w.id} pt-all`) ?? []).filter((x) => x.mainCpuS);
    if (!st.length) continue;
    const perCore = (n: (x: TracerStats) => number) => median(st.map((x) => (n(x) * seconds) / x.mainCpuS!)) / 1e3;
    pipeline.push(perCore((x) => x.events!) * 1e3);
    lines.push(
      `whole pipeline, one core (${w.label}, tracing all): ${perCore((x) => x.events!).toFixed(0)} k events/s, ` +
        `${perCore((x) => x.packets!).toFixed(0)} k packets/s per second of its main thread's CPU`,
    );
  }
  const saturated = (stats.get('udp pt-all') ?? []).filter((x) => (x.lost ?? 0) > 0);
  lines.push(
    saturated.length
      ? `whole pipeline, saturated (UDP flood, tracing all, ${saturated.length}/${rounds} rounds losing events): median ` +
          `${(median(saturated.map((x) => x.events!)) / 1e3).toFixed(0)} k events/s, ${(median(saturated.map((x) => x.packets!)) / 1e3).toFixed(0)} k packets/s`
      : 'whole pipeline: not saturated by the UDP flood (no events lost)',
  );
  const m = micro(4000, 5);
  lines.push(
    `decode + correlate (one core, recorded events): median ${(median(m.eventsPerSecond) / 1e6).toFixed(2)} M events/s ` +
      `(min ${(Math.min(...m.eventsPerSecond) / 1e6).toFixed(2)}, max ${(Math.max(...m.eventsPerSecond) / 1e6).toFixed(2)}; target ≥ 5)`,
  );
  if (!values.breakdown && !values.agent) {
    lines.push('', ...targets(workloads, ratio, stats, pipeline, median(m.eventsPerSecond)));
    lines.push('', ...(await rulesetBench(rounds)));
  }
  console.log(lines.join('\n'));
}

/** The targets of "Performance measured against its floor" (docs/overhead.md), each with what was measured. */
function targets(
  workloads: typeof WORKLOADS,
  ratio: (w: Workload, c: string) => number | undefined,
  stats: Map<string, TracerStats[]>,
  pipeline: number[],
  decodeCorrelate: number,
): string[] {
  const fmt = (x: number | undefined) => (x === undefined ? '—' : x.toFixed(3));
  const row = (what: string, measured: string, met: boolean) =>
    `  ${met ? 'met    ' : 'not met'}  ${what}: ${measured}`;
  const each = (c: string) => workloads.map((w) => `${w.id} ${fmt(ratio(w.id, c))}`).join(', ');
  const lost = (w: Workload) => (stats.get(`${w} pt-all`) ?? []).reduce((n, x) => n + (x.lost ?? 0), 0);
  const gap = workloads.map((w) => (ratio(w.id, 'pt-floor') ?? 0) - (ratio(w.id, 'pt-all') ?? 0));
  const atLeast = (c: string, min: (w: Workload) => number) =>
    workloads.every((w) => (ratio(w.id, c) ?? 0) >= min(w.id));
  return [
    'targets (medians of this run):',
    row(
      'tracing all within 0.08 of the floor',
      workloads.map((w, i) => `${w.id} ${gap[i]!.toFixed(3)} below`).join(', '),
      gap.every((g) => g <= 0.08),
    ),
    row(
      'tracing all loses no event on the stream and request/response',
      `${lost('stream')} and ${lost('rr')}`,
      lost('stream') + lost('rr') === 0,
    ),
    row(
      'a filter matching none ≥ 0.97 (stream, request/response), ≥ 0.85 (UDP flood)',
      each('pt-none'),
      atLeast('pt-none', (w) => (w === 'udp' ? 0.85 : 0.97)),
    ),
    row(
      'the agent ≥ 0.97 on every workload',
      each('agent'),
      atLeast('agent', () => 0.97),
    ),
    row(
      'whole pipeline ≥ 2.5 M events/s per second of its main thread',
      pipeline.map((x) => `${(x / 1e6).toFixed(2)} M`).join(', '),
      pipeline.length > 0 && pipeline.every((x) => x >= 2.5e6),
    ),
    row('decode + correlate ≥ 5 M events/s', `${(decodeCorrelate / 1e6).toFixed(2)} M`, decodeCorrelate >= 5e6),
  ];
}

main().catch((e) => {
  process.stderr.write(`bench: ${(e as Error).message}\n`);
  process.exit(1);
});
