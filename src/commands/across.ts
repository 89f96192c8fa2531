// --netns A --netns B: both namespaces traced at once, each by a pathtrace of its own (a child process with
// its own probes and ring: nothing shared, and each detaches by itself), their packets told as they come,
// tagged by namespace, and at the end merged as `pathtrace merge` does. The children die with this process
// (PR_SET_PDEATHSIG, by setpriv): SIGTERM, on which they detach.
import { spawn, type ChildProcess } from 'node:child_process';
import type { LoadedTrace } from '../capture/trace-file.js';
import { formatMerged, mergedRecords } from '../output/merge.js';
import { MAX_COMPARED } from '../report/compare.js';
import { merge, type Merged } from '../report/merge.js';
import { tupleText } from '../report/nat.js';
import type { Place, TraceOptions } from '../trace/options.js';
import { hostTrace } from './merge.js';
import { checkPrivileges, compileFor, loadTui, resolvePlace, usesTui } from './trace.js';
import type {
  DropRecord,
  HostRecord,
  PacketRecord,
  ReadyRecord,
  SummaryRecord,
  TraceRecord,
} from '../output/records.js';

/** The arguments of the child tracing one namespace: the user's, their --netns, --container, --pod and output
 *  mode replaced (a container or pod is found once, here, and its child given its namespace). Pure. */
export function childArgs(argv: string[], netns: string): string[] {
  const out: string[] = [];
  const args = argv.values();
  for (const a of args) {
    if (a === '--netns' || a === '-n' || a === '--container' || a === '--pod') {
      args.next();
      continue;
    } // and the name after it
    if (/^--(netns|container|pod)=/.test(a)) continue;
    if (a.startsWith('-n') && !a.startsWith('--') && a.length > 2) continue;
    if (a === '--json' || a === '--plain') continue;
    out.push(a);
  }
  return [...out, '--json', '--netns', netns];
}

/** What packetLine reads of a packet record. */
type PacketLineFields = Pick<
  PacketRecord,
  'time' | 'direction' | 'tcp_flags' | 'proto' | 'src' | 'sport' | 'dst' | 'dport' | 'fate' | 'translated'
> & { drop: Pick<DropRecord, 'hook' | 'layer' | 'reason'> | null };

/** One line for a packet as it comes: "client  out [S] 198.18.1.1:40000 → 198.18.2.2:3306 sent"; a forwarded
 *  one "fwd", with the tuple NAT gave it. Pure. */
export function packetLine(host: string, r: PacketLineFields, width: number): string {
  const at = (a: string, p: number | null) => (p === null ? a : `${a}:${p}`);
  const kind = r.tcp_flags ? `[${r.tcp_flags}]` : r.proto;
  const fate = r.drop ? `dropped at ${r.drop.hook ?? r.drop.layer} (${r.drop.reason ?? 'no reason'})` : r.fate;
  const time = typeof r.time === 'string' ? r.time.slice(11, 23) : '';
  const dir = r.direction === 'forward' ? 'fwd' : String(r.direction);
  const t = r.translated;
  const nat = t ? ` NAT → ${tupleText(t, t.src.includes(':') ? 6 : 4, r.sport !== null)}` : '';
  return `${host.padEnd(width)}  ${time} ${dir.padEnd(3)} ${kind} ${at(r.src, r.sport)} → ${at(r.dst, r.dport)}${nat} ${fate}`;
}

/** A child's records, parsed once as they come: its packets (MAX_COMPARED at most), its ready and summary. */
interface Child {
  name: string;
  proc: ChildProcess;
  packets: PacketRecord[];
  beyond: number;
  ready: ReadyRecord | null;
  summary: SummaryRecord | null;
  exited: Promise<number>;
}

interface AcrossRun {
  /** Resolves once both are ready (their probes attached). */
  ready: Promise<void>;
  /** Asks both to finish (SIGINT): each writes its summary. */
  stop(): void;
  /** The merge of what both traced so far (the full-screen view redraws it); null before both are ready. */
  current(): Merged | null;
  /** Resolves with the exit code once both are done and the merge is printed. */
  done: Promise<number>;
}

interface AcrossOptions {
  json: boolean;
  /** How the namespaces are named in the output (default: as given). */
  names?: [string, string];
  /** The full-screen view takes the records and the children's messages instead of the terminal. */
  view?: { record(host: 0 | 1, r: TraceRecord): void; message(host: 0 | 1, line: string): void; close(): void };
  out?: NodeJS.WritableStream;
  err?: NodeJS.WritableStream;
}

/** A child's trace as merge takes it (the view redraws it every second: nothing is parsed again). */
function traceOf(c: Child): LoadedTrace {
  return {
    packets: c.packets,
    filter: c.ready?.filter ?? null,
    total: c.packets.length + c.beyond,
    beyond: c.beyond,
    traced: null,
    flows: new Set(),
    ready: c.ready,
    summary: c.summary,
  };
}

/** Starts both traces (bin: pathtrace's own script, for the children). */
function traceAcross(argv: string[], across: [string, string], bin: string, o: AcrossOptions): AcrossRun {
  const { json, view } = o;
  const names = o.names ?? across;
  const out = o.out ?? process.stdout,
    err = o.err ?? process.stderr;
  const width = Math.max(...names.map((n) => n.length));
  const start = (netns: string, host: 0 | 1): Child => {
    const name = names[host];
    const proc = spawn('setpriv', ['--pdeathsig', 'TERM', '--', process.execPath, bin, ...childArgs(argv, netns)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const c: Child = {
      name,
      proc,
      packets: [],
      beyond: 0,
      ready: null,
      summary: null,
      exited: new Promise((r) => proc.on('exit', (code) => r(code ?? 1))),
    };
    let rest = '';
    proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (rest + d).split('\n');
      rest = lines.pop()!;
      for (const line of lines) take(c, host, line);
    });
    let errRest = '';
    proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      const lines = (errRest + d).split('\n');
      errRest = lines.pop()!;
      for (const line of lines) {
        if (!line) continue;
        if (view) view.message(host, line);
        else err.write(`[${name}] ${line}\n`);
      }
    });
    proc.on('error', (e) => err.write(`[${name}] cannot start: ${e.message}\n`));
    return c;
  };
  let readyCount = 0;
  let onReady: () => void = () => {};
  const ready = new Promise<void>((r) => {
    onReady = r;
  });
  const take = (c: Child, host: 0 | 1, line: string) => {
    let r: TraceRecord; // pathtrace's own child wrote it
    try {
      r = JSON.parse(line);
    } catch {
      return;
    }
    if (r.type === 'ready' && ++readyCount === 2) {
      if (!json && !view)
        err.write(
          `pathtrace: tracing ${names.join(' and ')} at once, each by a pathtrace of its own. Ctrl-C to stop and merge.\n`,
        );
      onReady();
    }
    if (r.type === 'packet') {
      // Kept for the merge, as many as merge takes from a file.
      if (c.packets.length < MAX_COMPARED) c.packets.push(r);
      else c.beyond++;
    } else if (r.type === 'ready') c.ready = r;
    else if (r.type === 'summary') c.summary = r;
    if (view) view.record(host, r);
    else if (json) out.write(JSON.stringify({ host: c.name, ...r } satisfies HostRecord) + '\n');
    else if (r.type === 'packet') out.write(packetLine(c.name, r, width) + '\n');
  };
  const children: [Child, Child] = [start(across[0], 0), start(across[1], 1)];
  // One that fails at its start (a namespace that is not there) takes the other down: nothing to merge.
  for (const c of children)
    c.exited.then((code) => {
      if (code !== 0 && readyCount < 2) for (const x of children) x.proc.kill('SIGINT');
    });
  const stop = () => {
    for (const c of children) c.proc.kill('SIGINT');
  };
  const current = () => {
    if (readyCount < 2) return null;
    const now = Date.now() * 1000;
    return merge(hostTrace(names[0], traceOf(children[0]), now), hostTrace(names[1], traceOf(children[1]), now));
  };
  const done = (async () => {
    const codes = await Promise.all(children.map((c) => c.exited));
    view?.close();
    if (codes.some((c) => c !== 0) && readyCount < 2) return 1;
    const traces = [traceOf(children[0]), traceOf(children[1])] as [LoadedTrace, LoadedTrace];
    const m = merge(hostTrace(names[0], traces[0]), hostTrace(names[1], traces[1]));
    const cut = children
      .filter((c) => c.beyond)
      .map((c) => `merged the first ${MAX_COMPARED} packets of ${c.name} (${c.beyond} more left out)`);
    if (json) for (const r of mergedRecords(m)) out.write(JSON.stringify(r) + '\n');
    else
      out.write(
        `\n── across ${names[0]} and ${names[1]}\n${cut.map((l) => l + '\n').join('')}${formatMerged(m, [across[0], across[1]], traces)}\n`,
      );
    return codes.every((c) => c === 0) ? 0 : 1;
  })();
  return { ready, stop, current, done };
}

/** --netns A --netns B: both traced by children of this process, merged at the end (traceAcross above); on a
 *  terminal, both shown side by side meanwhile. onReady: once both trace (the demo starts its client). */
export async function across(
  o: TraceOptions & { across: [Place, Place] },
  argv: string[],
  names?: [string, string],
  onReady?: (stop: () => void) => void,
): Promise<number> {
  checkPrivileges(true);
  compileFor(o); // a bad expression said once, here, rather than by both children
  const self = process.argv[1]; // pathtrace's own script, which each child runs
  if (self === undefined)
    throw new Error('tracing two namespaces needs pathtrace run as a script (it runs itself for each)');
  const [a, b] = o.across.map(resolvePlace);
  const paths: [string, string] = [a!.path, b!.path];
  names ??= [a!.label, b!.label];
  let stopRun = () => {};
  let view: AcrossOptions['view'];
  let redraw: NodeJS.Timeout | null = null;
  if (usesTui(o)) {
    const { AcrossStore, showAcross } = await loadTui();
    const store = new AcrossStore(names);
    const screen = showAcross(store, !process.env.NO_COLOR, () => stopRun());
    view = {
      record: (host, r) => store.record(host, r),
      message: (host, line) => store.message(host, line),
      close: () => {
        if (redraw) clearInterval(redraw);
        screen.close();
      },
    };
    redraw = setInterval(() => {
      const m = run.current();
      if (m) store.setMerged(m);
    }, 1000);
  }
  const run = traceAcross(argv, paths, self, { json: o.json, names, view });
  stopRun = run.stop;
  let signalled = false;
  const stop = () => {
    if (signalled) {
      // the children get SIGTERM by their parent-death signal, and detach
      view?.close();
      process.exit(130);
    }
    signalled = true;
    run.stop();
  };
  // A bug while both trace: the screen restored, one line; the children get SIGTERM as this process exits.
  const crash = (e: unknown) => {
    view?.close();
    process.stderr.write(`pathtrace: internal error: ${(e as Error)?.message ?? e}\n`);
    process.exit(1);
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const sig of signals) process.on(sig, stop);
  process.on('uncaughtException', crash);
  try {
    if (onReady) run.ready.then(() => onReady(run.stop));
    return await run.done;
  } finally {
    view?.close();
    for (const sig of signals) process.off(sig, stop);
    process.off('uncaughtException', crash);
  }
}
