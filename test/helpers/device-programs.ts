// XDP and tc programs for the tests, built from test/fixtures/bpf with clang and attached with iproute2 and bpftool
// as an operator would; and tcpdump beside a trace, to hold pathtrace's word on what the capture saw to the capture.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Lab } from '../../src/lab/lab.js';
import { FIXTURES } from './paths.js';

let built: string | null = null;

/** The object of test/fixtures/bpf/NAME.bpf.c, built once per process (clang -target bpf). */
export function bpfObject(name: string): string {
  built ??= mkdtempSync(path.join(tmpdir(), 'pathtrace-test-bpf-'));
  const out = path.join(built, `${name}.o`);
  const arch = execFileSync('gcc', ['-print-multiarch'], { encoding: 'utf8' }).trim();
  execFileSync('clang', [
    '-O2',
    '-g',
    '-target',
    'bpf',
    `-I/usr/include/${arch}`,
    '-c',
    path.join(FIXTURES, 'bpf', `${name}.bpf.c`),
    '-o',
    out,
  ]);
  return out;
}

/** Removes the built objects (the programs attached from them stay until their device or namespace goes). */
export function removeBpfObjects(): void {
  if (built) rmSync(built, { recursive: true, force: true });
  built = null;
}

/** What the test machine lacks to build and attach the tests' programs: clang, bpftool. */
export function missingForPrograms(): string | null {
  const missing = ['clang', 'bpftool', 'tc'].filter((t) => spawnSync(t, ['--version']).error);
  return missing.length ? `needs ${missing.join(', ')} (scripts/setup.sh installs them)` : null;
}

/** `ip -d -j link show dev DEV`'s XDP program id in namespace ns. */
export function xdpProgramId(lab: Lab, ns: string, dev: string): number {
  const [link] = JSON.parse(lab.exec(ns, 'ip', ['-d', '-j', 'link', 'show', 'dev', dev])) as {
    xdp?: { prog?: { id: number } };
  }[];
  return link?.xdp?.prog?.id ?? 0;
}

/** A cls_bpf filter in direct-action mode on eth0's clsact hook of that direction in ns, its program the tests'
 *  tc_drop_in (ingress) or tc_drop_out (egress), as an operator adds one with tc. */
export function addTcDrop(lab: Lab, ns: string, direction: 'ingress' | 'egress'): void {
  lab.exec(ns, 'tc', ['qdisc', 'add', 'dev', 'eth0', 'clsact']);
  const obj = bpfObject(direction === 'ingress' ? 'tc_drop_in' : 'tc_drop_out');
  lab.exec(ns, 'tc', ['filter', 'add', 'dev', 'eth0', direction, 'bpf', 'da', 'obj', obj, 'sec', 'tc']);
}

/** tc's filters on dev's ingress or egress: {pref, id} of each BPF filter. */
export function tcBpfFilters(lab: Lab, ns: string, dev: string, direction: 'ingress' | 'egress') {
  const list = JSON.parse(lab.exec(ns, 'tc', ['-j', 'filter', 'show', 'dev', dev, direction])) as {
    pref: number;
    options?: { prog?: { id: number; name: string } };
  }[];
  return list.filter((f) => f.options?.prog).map((f) => ({ pref: f.pref, id: f.options!.prog!.id }));
}

/** Attaches the object's program to dev's tcx hook of that direction (Linux 6.6+): loaded and pinned in a bpffs of a
 *  mount namespace of its own (the host's /sys/fs/bpf is left alone), attached from inside ns. Returns its id, or
 *  null when the kernel has no tcx. */
export function attachTcx(
  netnsPath: string,
  object: string,
  dev: string,
  direction: 'ingress' | 'egress',
): number | null {
  const script = [
    'set -e',
    'd=$(mktemp -d)',
    'mount -t bpf bpf "$d"',
    `bpftool prog load ${object} "$d/p" type tc`,
    `nsenter --net=${netnsPath} bpftool net attach tcx_${direction} pinned "$d/p" dev ${dev}`,
    'bpftool -j prog show pinned "$d/p"',
  ].join('\n');
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], { encoding: 'utf8' });
  if (r.status !== 0) {
    if (/tcx|Invalid argument|invalid/i.test(r.stderr)) return null;
    throw new Error(`tcx attach failed: ${r.stderr}`);
  }
  return (JSON.parse(r.stdout) as { id: number }).id;
}

/** tcpdump on dev in namespace ns, capturing `filter`, until stop() says how many packets it captured. */
export async function tcpdumpBeside(
  ns: string,
  dev: string,
  filter: string[],
): Promise<{ stop(): Promise<number>; child: ChildProcess }> {
  const child = spawn('ip', ['netns', 'exec', ns, 'tcpdump', '-i', dev, '-nn', '-l', '--immediate-mode', ...filter], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  await new Promise<void>((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      if (err.includes('listening on')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`tcpdump exited ${code}: ${err}`)));
  });
  return {
    child,
    async stop() {
      await new Promise((r) => setTimeout(r, 200));
      const exited = new Promise((r) => child.on('exit', r));
      child.kill('SIGINT');
      await exited;
      return out.split('\n').filter(Boolean).length;
    },
  };
}
