// Entry point: parses the command line, runs a trace or a demo, and turns
// every failure into one line on stderr and a non-zero exit code.
import { closeSync } from 'node:fs';
import { effectiveCaps, missingCaps } from './caps.js';
import { CompareError, runCompare, type Progress } from './capture/trace-file.js';
import type { TraceFilter } from './report/compare.js';
import { runMerge } from './merge-command.js';
import { traceAcross, type AcrossOptions } from './across.js';
import { captureFilter, ComparingSink, LiveCapture, LiveCaptureError } from './capture/live-capture.js';
import { runDemo } from './demo.js';
import { compileExpression, ExpressionError, instructions, LIBPCAP_NAMES, MAX_INSNS, type Expression } from './trace/expression.js';
import { release } from 'node:os';
import { native } from './trace/native.js';
import { NetnsError, resolveNetns } from './trace/netns.js';
import { parseCommandLine, USAGE, UsageError, type TraceOptions } from './options.js';
import { JsonSink } from './output/json.js';
import { PcapSink } from './output/pcap-sink.js';
import { drainStdout, SlowReaderSink } from './output/slow-reader.js';
import { openForWriting, WriteError } from './capture/pcapng.js';
import { ProgressLine } from './progress.js';
import { ANSI, PLAIN, TextSink } from './output/text.js';
import type { Sink } from './output/sink.js';
import { Session, SessionError } from './trace/session.js';
import { missingTools } from './trace/tools.js';
import { findVersion, versionText } from './version.js';

/** Failures the user can act on: printed as one line, exit code 1. */
export class UserError extends Error {}

export function filterText(o: TraceOptions): string {
  const parts = [o.protos.join('/')];
  if (o.ports) parts.push(`port ${compactPorts(o.ports)}`);
  if (o.hosts.length) parts.push(`host ${o.hosts.join(',')}`);
  if (!o.expression) return parts.join(' ');
  return onlyExpression(o) ? `'${o.expression}'` : `${parts.join(' ')} and '${o.expression}'`;
}

/** An expression without --port, --host or --proto beside it. */
export function onlyExpression(o: Pick<TraceOptions, 'expression' | 'ports' | 'hosts' | 'protos'>): boolean {
  return o.expression !== null && !o.ports && !o.hosts.length && o.protos.length === 3;
}

function compactPorts(ports: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ports.length; ) {
    let j = i;
    while (j + 1 < ports.length && ports[j + 1] === ports[j] + 1) j++;
    out.push(j > i ? `${ports[i]}-${ports[j]}` : `${ports[i]}`);
    i = j + 1;
  }
  return out.join(',');
}

/** The ready record's filter; an expression with its classic BPF, so that compare can run it on frames. */
export function filterObject(o: TraceOptions, expression: Expression | null = null): TraceFilter & { netns: string | null } {
  const bpf = expression ? instructions(expression.program).map((i): [number, number, number, number] => [i.code, i.jt, i.jf, i.k]) : [];
  return { ports: o.ports, hosts: o.hosts, protos: o.protos, netns: o.netns, expression: expression ? { text: expression.text, bpf } : null };
}

/** The user's expression compiled, or null; a one-line UserError when it cannot be, or this kernel cannot run it. */
export function compileFor(o: TraceOptions): Expression | null {
  if (!o.expression) return null;
  const n = native();
  if (!('BPF_FUNC_loop' in n.kernelEnum('bpf_func_id'))) {
    throw new UserError(`filter expressions need the bpf_loop helper (Linux 5.17 or later), which this kernel (${release()}) lacks: ` +
      'filter with --port, --host and --proto');
  }
  const libraries = process.env.PATHTRACE_LIBPCAP ? [process.env.PATHTRACE_LIBPCAP] : LIBPCAP_NAMES;
  try {
    return compileExpression(o.expression, (t, l) => n.compileExpression(t, l), MAX_INSNS, libraries);
  } catch (e) {
    throw e instanceof ExpressionError ? new UserError(e.message) : e;
  }
}

export function checkPrivileges(entersNetns: boolean): void {
  const missing = missingCaps(effectiveCaps(), entersNetns);
  if (missing.length) {
    throw new UserError(`must run as root: loading BPF probes needs ${missing.join(', ')}`);
  }
}

/** --quiet: everything but the per-packet output. */
class QuietSink implements Sink {
  constructor(private readonly inner: Sink) {}
  ready(info: Parameters<Sink['ready']>[0]): void { this.inner.ready(info); }
  packet(): void {}
  note(message: string): void { this.inner.note(message); }
  summary(s: Parameters<Sink['summary']>[0]): void { this.inner.summary(s); }
}

/** The full-screen UI: on a terminal, unless --json or --plain. */
export function usesTui(o: TraceOptions): boolean {
  return process.stdout.isTTY === true && process.stdin.isTTY === true && !o.json && !o.plain && !o.quiet;
}

/** capture: the --write file, opened before anything is attached (openForWriting). */
export async function makeSink(o: TraceOptions, session: () => Session, capture: number | null): Promise<Sink> {
  const sink = await outputSink(o, session);
  return o.write && capture !== null ? new PcapSink(sink, o.write, capture, o.snaplen, () => session().devices) : sink;
}

async function outputSink(o: TraceOptions, session: () => Session): Promise<Sink> {
  const devices = () => session().devices;
  if (o.quiet) return new QuietSink(o.json ? new JsonSink(devices, filterObject(o, session().expression)) : new TextSink(devices, filterText(o), PLAIN));
  if (o.json) return new SlowReaderSink(new JsonSink(devices, filterObject(o, session().expression)));
  const color = process.stdout.isTTY === true && !process.env.NO_COLOR;
  if (usesTui(o)) {
    const { TuiSink, TuiStore } = await loadTui();
    const store = new TuiStore(filterText(o), () => session().correlator.flows);
    return new TuiSink(store, devices, color ? ANSI : PLAIN, color, () => session().stop('quit'));
  }
  return new SlowReaderSink(new TextSink(devices, filterText(o), color ? ANSI : PLAIN));
}

/**
 * ink and React load only for the UI: a script using --json does not pay for them.
 * ink decides once, at import, that it runs in CI when CI or CONTINUOUS_INTEGRATION is set, and then draws
 * nothing until exit. The UI runs only on a terminal, so those are hidden from that import and put back.
 */
async function loadTui() {
  const ciKeys = ['CI', 'CONTINUOUS_INTEGRATION'];
  const saved = ciKeys.map((k) => [k, process.env[k]] as const);
  for (const k of ciKeys) delete process.env[k];
  try {
    const [{ TuiSink }, { TuiStore }, { AcrossStore, showAcross }] = await Promise.all([import('./tui/sink.js'), import('./tui/store.js'), import('./tui/across.js')]);
    return { TuiSink, TuiStore, AcrossStore, showAcross };
  } finally {
    for (const [k, v] of saved) if (v !== undefined) process.env[k] = v;
  }
}

/** Runs a trace until a signal, --duration or --count; detaches on every path. */
export async function trace(options: TraceOptions, onReady?: (s: Session) => void): Promise<void> {
  checkPrivileges(options.netns !== null);
  const lacking = options.ruleTrace ? missingTools([['nft', 'nftables']]) : [];
  if (lacking.length) throw new UserError(`--rule-trace needs ${lacking.join(', ')}: apt install nftables, or trace without it`);
  let netns;
  try {
    netns = resolveNetns(options.netns);
  } catch (e) {
    if (e instanceof NetnsError) throw new UserError(e.message);
    throw e;
  }
  const expression = compileFor(options);
  let session: Session | undefined;
  let sink: Sink | null = null;
  let capture: number | null = null;
  let live: LiveCapture | null = null;
  // Caught from the first moment: the session's setup (BPF load, --rule-trace's table) takes a while, and
  // a signal then would otherwise kill the process with what it had added still in place.
  let signalled = false;
  let draining = false;
  const stop = () => {
    if (signalled || draining) { // a second Ctrl-C, or one while stdout drains: at once, still detaching
      session?.close();
      sink?.close?.();
      live?.discard();
      process.stderr.write('pathtrace: stopped at once (second signal); everything it attached is detached\n');
      process.exit(130);
    }
    signalled = true;
    session?.stop('signal');
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const sig of signals) process.on(sig, stop);
  try {
    if (options.write) capture = openForWriting(options.write);
    // Listening before the probes attach: the capture covers the whole trace.
    if (options.withTcpdump) live = await LiveCapture.start(options.withTcpdump, netns, captureFilter(options));
    session = new Session(options, netns, expression);
    if (signalled) session.stop('signal'); // it runs, says it is ready and stops: everything detached
  } catch (e) {
    for (const sig of signals) process.off(sig, stop);
    if (capture !== null) closeSync(capture);
    live?.discard();
    if (e instanceof SessionError || e instanceof WriteError || e instanceof LiveCaptureError) throw new UserError(e.message);
    throw e;
  }
  // A bug must not leave probes behind: detach, then report it in one line.
  const crash = (e: unknown) => {
    session?.close();
    sink?.close?.();
    live?.discard();
    process.stderr.write(`pathtrace: internal error: ${(e as Error)?.message ?? e}\n`);
    process.exit(1);
  };
  process.on('uncaughtException', crash);
  const onPipe = (e: NodeJS.ErrnoException) => { if (e.code === 'EPIPE') session.stop('stdout-closed'); };
  process.stdout.on('error', onPipe);
  let comparing: ComparingSink | null = null;
  try {
    sink = await makeSink(options, () => session, capture);
    if (live) sink = comparing = new ComparingSink(sink, () => session.devices, filterObject(options, expression));
    await session.run(sink, () => onReady?.(session));
    if (live && comparing) process.stdout.write(comparing.comparison(await live.stop(), live.iface) + '\n');
    // Everything is detached by now: a reader that takes nothing more does not keep the process.
    session.close();
    draining = true;
    if (!(await drainStdout(3000))) {
      process.stderr.write(`pathtrace: stdout's reader took nothing for 3 s: exiting without the last ${process.stdout.writableLength} bytes\n`);
      sink?.close?.();
      live?.discard(); // its temporary directory too
      process.exit(0);
    }
  } finally {
    session.close();
    sink?.close?.();
    live?.discard();
    for (const sig of signals) process.off(sig, stop);
    process.off('uncaughtException', crash);
  }
}

/** --netns A --netns B: both traced by children of this process, merged at the end (across.ts); on a
 *  terminal, both shown side by side meanwhile. onReady: once both trace (the demo starts its client). */
export async function across(o: TraceOptions & { across: [string, string] }, argv: string[], names?: [string, string],
  onReady?: (stop: () => void) => void): Promise<number> {
  checkPrivileges(true);
  compileFor(o); // a bad expression said once, here, rather than by both children
  for (const n of o.across) {
    try {
      resolveNetns(n);
    } catch (e) {
      throw e instanceof NetnsError ? new UserError(e.message) : e;
    }
  }
  let stopRun = () => {};
  let view: AcrossOptions['view'];
  let redraw: NodeJS.Timeout | null = null;
  if (usesTui(o)) {
    const { AcrossStore, showAcross } = await loadTui();
    const store = new AcrossStore(names ?? o.across);
    const screen = showAcross(store, !process.env.NO_COLOR, () => stopRun());
    view = {
      record: (host, r) => store.record(host, r),
      message: (host, line) => store.message(host, line),
      close: () => { if (redraw) clearInterval(redraw); screen.close(); },
    };
    redraw = setInterval(() => {
      const m = run.current();
      if (m) store.setMerged(m);
    }, 1000);
  }
  const run = traceAcross(argv, o.across, process.argv[1], { json: o.json, names, view });
  stopRun = run.stop;
  let signalled = false;
  const stop = () => {
    if (signalled) { // the children get SIGTERM by their parent-death signal, and detach
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

/** compare and merge, with a progress line on stderr when it is a terminal. */
function withProgress<T>(run: (progress?: Progress) => T): T {
  const line = process.stderr.isTTY ? new ProgressLine(process.stderr) : null;
  try {
    return run(line ? (label, pos, size) => line.update(label, pos, size) : undefined);
  } finally {
    line?.end();
  }
}

export async function main(argv: string[]): Promise<number> {
  try {
    const cmd = parseCommandLine(argv);
    switch (cmd.kind) {
      case 'help':
        process.stdout.write(USAGE + '\n');
        return 0;
      case 'version':
        process.stdout.write(versionText(findVersion()) + '\n');
        return 0;
      case 'trace':
        if (cmd.options.across) return await across({ ...cmd.options, across: cmd.options.across }, argv);
        await trace(cmd.options);
        return 0;
      case 'demo':
        await runDemo(cmd.scenario, cmd.options);
        return 0;
      case 'compare':
        process.stdout.write(withProgress((p) => runCompare(cmd.capture, cmd.trace, p)) + '\n');
        return 0;
      case 'merge':
        process.stdout.write(withProgress((p) => runMerge(cmd.traces, cmd.json, p)) + '\n');
        return 0;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`pathtrace: ${e.message} (see pathtrace --help)\n`);
      return 2;
    }
    if (e instanceof UserError || e instanceof CompareError) {
      process.stderr.write(`pathtrace: ${e.message}\n`);
      return 1;
    }
    const err = e as Error;
    process.stderr.write(`pathtrace: internal error: ${err.message}\n`);
    if (process.env.PATHTRACE_DEBUG) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
