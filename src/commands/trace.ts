// The trace command: checks what it needs, opens the session, picks the output (text, NDJSON, the UI,
// --write, --with-tcpdump), runs until a signal, --duration or --count, and detaches on every path.
import { accessSync, closeSync, constants } from 'node:fs';
import path from 'node:path';
import { writeFailure } from '../capture/file-errors.js';
import { release } from 'node:os';
import { captureFilter, LiveCapture, LiveCaptureError } from '../capture/live-capture.js';
import { ComparingSink } from './comparing-sink.js';
import { openForWriting, WriteError } from '../capture/pcapng.js';
import { JsonSink } from '../output/json.js';
import { PcapSink } from '../output/pcap-sink.js';
import { ReportSink } from '../output/report-sink.js';
import type { Sink } from '../output/sink.js';
import { drainStdout, SlowReaderSink } from '../output/slow-reader.js';
import { ANSI, PLAIN, TextSink } from '../output/text.js';
import {
  compileExpression,
  ExpressionError,
  instructions,
  LIBPCAP_NAMES,
  MAX_INSNS,
  type Expression,
} from '../trace/expression.js';
import { native } from '../trace/native.js';
import { ContainerError, containerNetns, podNetns } from '../trace/containers.js';
import { NetnsError, resolveNetns, type NetnsTarget } from '../trace/netns.js';
import { portRuns, type Place, type TraceOptions } from '../trace/options.js';
import type { Summary } from '../report/summary.js';
import { Session, SessionError, type SessionSwitches } from '../trace/session.js';
import { missingTools } from '../trace/tools.js';
import { effectiveCaps, missingCaps } from './caps.js';
import type { FilterRecord } from '../output/records.js';

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
  return portRuns(ports)
    .map(([first, last]) => (last > first ? `${first}-${last}` : `${first}`))
    .join(',');
}

/** The ready record's filter; an expression with its classic BPF, so that compare can run it on frames. */
export function filterObject(o: TraceOptions, expression: Expression | null = null): FilterRecord {
  const bpf = expression
    ? instructions(expression.program).map((i): [number, number, number, number] => [i.code, i.jt, i.jf, i.k])
    : [];
  return {
    ports: o.ports,
    hosts: o.hosts,
    protos: o.protos,
    netns: o.place && 'netns' in o.place ? o.place.netns : null,
    expression: expression ? { text: expression.text, bpf } : null,
  };
}

/** The user's expression compiled, or null; a one-line UserError when it cannot be, or this kernel cannot run it. */
export function compileFor(o: Pick<TraceOptions, 'expression'>): Expression | null {
  if (!o.expression) return null;
  const n = native();
  if (!('BPF_FUNC_loop' in n.kernelEnum('bpf_func_id'))) {
    throw new UserError(
      `filter expressions need the bpf_loop helper (Linux 5.17 or later), which this kernel (${release()}) lacks: ` +
        'filter with --port, --host and --proto',
    );
  }
  const libraries = process.env.PATHTRACE_LIBPCAP ? [process.env.PATHTRACE_LIBPCAP] : LIBPCAP_NAMES;
  try {
    return compileExpression(o.expression, (t, l) => n.compileExpression(t, l), MAX_INSNS, libraries);
  } catch (e) {
    throw e instanceof ExpressionError ? new UserError(e.message) : e;
  }
}

/** The namespace a place names (a container or pod: found through its runtime); a UserError saying why not. */
export function resolvePlace(place: Place | null): NetnsTarget {
  try {
    if (place && 'container' in place) return containerNetns(place.container);
    if (place && 'pod' in place) return podNetns(place.pod);
    return resolveNetns(place?.netns ?? null);
  } catch (e) {
    if (e instanceof NetnsError || e instanceof ContainerError) throw new UserError(e.message);
    throw e;
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
  ready(info: Parameters<Sink['ready']>[0]): void {
    this.inner.ready(info);
  }
  packet(): void {}
  note(message: string): void {
    this.inner.note(message);
  }
  summary(s: Parameters<Sink['summary']>[0]): void {
    this.inner.summary(s);
  }
}

/** The full-screen UI: on a terminal, unless --json or --plain. */
export function usesTui(o: TraceOptions): boolean {
  return process.stdout.isTTY === true && process.stdin.isTTY === true && !o.json && !o.plain && !o.quiet;
}

/** capture: the --write file, opened before anything is attached (openForWriting). */
export async function makeSink(o: TraceOptions, session: () => Session, capture: number | null): Promise<Sink> {
  let sink = await outputSink(o, session);
  if (o.report) {
    // Refused now, not after a long trace: the page is written at its end.
    try {
      accessSync(path.dirname(path.resolve(o.report)), constants.W_OK);
    } catch (e) {
      throw new UserError(`cannot write ${o.report}: ${writeFailure(e)}`);
    }
    const devices = () => session().devices;
    const filter = () => filterObject(o, session().expression);
    sink = new ReportSink(sink, o.report, devices, filter, (l) => process.stderr.write(`pathtrace: ${l}\n`));
  }
  return o.write && capture !== null ? new PcapSink(sink, o.write, capture, o.snaplen, () => session().devices) : sink;
}

async function outputSink(o: TraceOptions, session: () => Session): Promise<Sink> {
  const devices = () => session().devices;
  if (o.quiet)
    return new QuietSink(
      o.json
        ? new JsonSink(devices, filterObject(o, session().expression))
        : new TextSink(devices, filterText(o), PLAIN),
    );
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
export async function loadTui() {
  const ciKeys = ['CI', 'CONTINUOUS_INTEGRATION'];
  const saved = ciKeys.map((k) => [k, process.env[k]] as const);
  for (const k of ciKeys) delete process.env[k];
  try {
    const [{ TuiSink }, { TuiStore }, { AcrossStore, showAcross }] = await Promise.all([
      import('../tui/sink.js'),
      import('../tui/store.js'),
      import('../tui/across.js'),
    ]);
    return { TuiSink, TuiStore, AcrossStore, showAcross };
  } finally {
    for (const [k, v] of saved) if (v !== undefined) process.env[k] = v;
  }
}

/** The session's test switches, from the environment: read here only, handed to the session. */
function sessionSwitches(env: NodeJS.ProcessEnv = process.env): SessionSwitches {
  return {
    pretendLacks: (env.PATHTRACE_PRETEND_KERNEL_LACKS ?? '').split(','),
    recordEventsTo: env.PATHTRACE_RECORD_EVENTS || null,
    probesOnly: env.PATHTRACE_PROBES_ONLY === '1',
  };
}

/** Runs a trace until a signal, --duration or --count; detaches on every path. */
/** Runs a trace to its end; its summary (the demo checks it showed what it is about). */
export async function trace(options: TraceOptions, onReady?: (s: Session) => void): Promise<Summary | null> {
  checkPrivileges(options.place !== null);
  const lacking = options.ruleTrace ? missingTools([['nft', 'nftables']]) : [];
  if (lacking.length)
    throw new UserError(`--rule-trace needs ${lacking.join(', ')}: apt install nftables, or trace without it`);
  const netns = resolvePlace(options.place);
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
    if (signalled || draining) {
      // a second Ctrl-C, or one while stdout drains: at once, still detaching
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
    session = new Session(options, netns, expression, sessionSwitches());
    if (signalled) session.stop('signal'); // it runs, says it is ready and stops: everything detached
  } catch (e) {
    for (const sig of signals) process.off(sig, stop);
    if (capture !== null) closeSync(capture);
    live?.discard();
    if (e instanceof SessionError || e instanceof WriteError || e instanceof LiveCaptureError)
      throw new UserError(e.message);
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
  const onPipe = (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') session.stop('stdout-closed');
  };
  process.stdout.on('error', onPipe);
  let comparing: ComparingSink | null = null;
  try {
    sink = await makeSink(options, () => session, capture);
    if (live) sink = comparing = new ComparingSink(sink, () => session.devices, filterObject(options, expression));
    const summary = await session.run(sink, () => onReady?.(session));
    if (live && comparing) process.stdout.write(comparing.comparison(await live.stop(), live.iface) + '\n');
    // Everything is detached by now: a reader that takes nothing more does not keep the process.
    session.close();
    draining = true;
    if (!(await drainStdout(3000))) {
      process.stderr.write(
        `pathtrace: stdout's reader took nothing for 3 s: exiting without the last ${process.stdout.writableLength} bytes\n`,
      );
      sink?.close?.();
      live?.discard(); // its temporary directory too
      process.exit(0);
    }
    return summary;
  } finally {
    session.close();
    sink?.close?.();
    live?.discard();
    for (const sig of signals) process.off(sig, stop);
    process.off('uncaughtException', crash);
  }
}
