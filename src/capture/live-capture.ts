// --with-tcpdump IFACE: tcpdump captures beside the trace, in the traced namespace and with the trace's
// filter; when the trace ends, its capture is compared with the trace as `pathtrace compare` does. Nothing
// stays behind on any exit: tcpdump dies with pathtrace (PR_SET_PDEATHSIG, by setpriv), and its file is
// unlinked as soon as both have it open (pathtrace reads it back through its own descriptor).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NetnsTarget } from '../trace/netns.js';
import { portRuns, type TraceOptions } from '../trace/options.js';
import { MAX_COMPARED } from '../report/compare.js';
import { fileSource, type ByteSource } from './read.js';

export class LiveCaptureError extends Error {}

const any = (xs: string[]) => (xs.length === 1 ? xs[0]! : `(${xs.join(' or ')})`);

/** Ports as tcpdump primitives: consecutive ports as one portrange. */
function portPrimitives(ports: number[]): string[] {
  return portRuns(ports).map(([first, last]) => (first === last ? `port ${first}` : `portrange ${first}-${last}`));
}

// pathtrace follows an ICMP error by the packet it quotes; tcpdump's filter cannot read the quote, so it
// takes every error (those about other packets show as outside pathtrace's filter in the comparison).
const ICMP_ERRORS =
  '(icmp and (icmp[icmptype] == icmp-unreach or icmp[icmptype] == icmp-timxceed or ' +
  'icmp[icmptype] == icmp-paramprob)) or (icmp6 and icmp6[icmp6type] >= 1 and icmp6[icmp6type] <= 4)';

/** The trace's filter as a pcap-filter expression for tcpdump: the user's expression verbatim when it is
 *  the whole filter. Pure. */
export function captureFilter(
  o: Pick<TraceOptions, 'ports' | 'hosts' | 'protos'> & { expression?: string | null },
): string {
  if (!o.expression) return optionsFilter(o);
  const alone = !o.ports && !o.hosts.length && o.protos.length === 3;
  return alone ? o.expression : `${optionsFilter(o)} and (${o.expression})`;
}

function optionsFilter(o: Pick<TraceOptions, 'ports' | 'hosts' | 'protos'>): string {
  const l4 = o.protos.filter((p) => p !== 'icmp');
  const alts: string[] = [];
  if (l4.length) alts.push(o.ports ? `(${any(l4)} and ${any(portPrimitives(o.ports))})` : any(l4));
  if (o.protos.includes('icmp') && !o.ports) alts.push('icmp or icmp6');
  else if (l4.length) alts.push(ICMP_ERRORS);
  const what = `(${alts.join(' or ')})`;
  return o.hosts.length ? `${any(o.hosts.map((h) => `host ${h}`))} and ${what}` : what;
}

/** A tcpdump writing to a file of its own until stop(). */
export class LiveCapture {
  private exited: Promise<number | null>;
  private stderr = '';
  private fd: number | null = null;

  private constructor(
    private readonly child: ChildProcess,
    private readonly dir: string,
    readonly iface: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
  }

  /** Starts tcpdump and waits until it listens (so that it covers all the trace); errors in one line. */
  static async start(iface: string, netns: NetnsTarget, filter: string): Promise<LiveCapture> {
    const dir = mkdtempSync(path.join(tmpdir(), 'pathtrace-capture-'));
    const file = path.join(dir, `${iface}.pcap`);
    // -U, --immediate-mode: each packet written as it comes; -n: no name lookups; -s 262: headers are enough;
    // -Z root: a change of user would clear the parent-death signal.
    const tcpdump = [
      'tcpdump',
      '-i',
      iface,
      '-n',
      '-U',
      '--immediate-mode',
      '-s',
      '262',
      '-Z',
      'root',
      '-c',
      String(MAX_COMPARED),
      '-w',
      file,
      filter,
    ];
    const args = [
      '--pdeathsig',
      'KILL',
      '--',
      ...(netns.path ? ['nsenter', `--net=${netns.path}`, '--'] : []),
      ...tcpdump,
    ];
    const child = spawn('setpriv', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const c = new LiveCapture(child, dir, iface);
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    const listening = new Promise<void>((resolve) => {
      const on = () => {
        if (/listening on/.test(c.stderr)) {
          child.stderr!.off('data', on);
          resolve();
        }
      };
      child.stderr!.on('data', on);
    });
    const outcome = await Promise.race([
      listening.then(() => 'ok' as const),
      c.exited.then(() => 'exited' as const),
      spawnError,
      new Promise<'slow'>((r) => setTimeout(() => r('slow'), 10_000).unref()),
    ]);
    if (outcome === 'ok') {
      // tcpdump opened its file before it said it listens.
      c.fd = openSync(file, 'r');
      rmSync(dir, { recursive: true, force: true });
      return c;
    }
    c.discard();
    if (outcome instanceof Error) {
      const missing = (outcome as NodeJS.ErrnoException).code === 'ENOENT';
      throw new LiveCaptureError(
        missing ? '--with-tcpdump needs setpriv (util-linux)' : `cannot start tcpdump: ${outcome.message}`,
      );
    }
    if (outcome === 'slow') throw new LiveCaptureError(`tcpdump on ${iface} did not start listening within 10 s`);
    if (/failed to execute tcpdump/.test(c.stderr))
      throw new LiveCaptureError('--with-tcpdump needs tcpdump (apt install tcpdump)');
    // tcpdump's own error is its first "tcpdump: ..." line (then a detail in parentheses).
    const why = /^tcpdump: (.*)$/m.exec(c.stderr)?.[1] ?? (c.stderr.trim().split('\n')[0] || 'it exited');
    throw new LiveCaptureError(`tcpdump -i ${iface} failed: ${why}`);
  }

  /** Stops tcpdump (it writes out what it holds) and returns the capture, read through a window. */
  async stop(): Promise<ByteSource> {
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
    return fileSource(this.fd!, `tcpdump -i ${this.iface}`);
  }

  /** Kills tcpdump if it still runs and lets go of its file. Safe to repeat. */
  discard(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
