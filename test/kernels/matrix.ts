// The kernel matrix: `node dist/test/kernels/matrix.js [NAMES...]` runs a command (by default the kernel scenario
// tests) under each of Debian's kernels in qemu (scripts/kernels/boot.sh), and on this machine for HOST.
// Env: PATHTRACE_MATRIX_COMMAND (a bash script, run in the repository root), PATHTRACE_MATRIX_JOBS (guests booted
// at a time, default 2), plus boot.sh's PATHTRACE_VM_*.
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../helpers/paths.js';

// 6.12 has netfilter links; ":trampolines" runs it as a kernel without them would be (both paths on one kernel);
// ":kprobes" runs 6.1 as a kernel that refuses trampolines would be. The scenarios check the mechanism used.
export const KERNELS = ['5.10', '6.1', '6.12', '6.12:trampolines', '6.1:kprobes'];
const VARIANTS: Record<string, NodeJS.ProcessEnv> = {
  '': {},
  trampolines: { PATHTRACE_PRETEND_KERNEL_LACKS: 'netfilter', PATHTRACE_EXPECT_NETFILTER: 'trampolines' },
  kprobes: { PATHTRACE_PRETEND_KERNEL_LACKS: 'trampolines', PATHTRACE_EXPECT_NETFILTER: 'kprobes' },
};
export const DEFAULT_COMMAND = 'node --test --test-concurrency=1 dist/test/kernels/*.test.js';
const SCRIPTS = path.join(ROOT, 'scripts', 'kernels');

export interface Result {
  kernel: string;
  release: string;
  ok: boolean;
  detail: string;
  seconds: number;
  /** Each failed test's TAP block, so that the end of a long log still says what failed. */
  failures?: string[];
}

/** The kernels to run: the arguments, or all of KERNELS; `host` (any case) means this machine without a VM. */
export function kernelsToRun(args: string[]): string[] {
  const names = args.length > 0 ? args : KERNELS;
  return names.map((n) => (n.toLowerCase() === 'host' ? 'HOST' : n));
}

/** Splits a stream's chunks into whole lines, each prefixed; flush() returns what is left of a last line. */
export function linePrefixer(prefix: string): { push(chunk: string): string; flush(): string } {
  let rest = '';
  return {
    push(chunk) {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop() ?? '';
      return lines.map((l) => `${prefix}${l}\n`).join('');
    },
    flush() {
      const last = rest ? `${prefix}${rest}\n` : '';
      rest = '';
      return last;
    },
  };
}

export function summaryTable(results: Result[]): string {
  const rows = [
    ['kernel', 'release', 'result', 'seconds'],
    ...results.map((r) => [r.kernel, r.release, r.ok ? 'ok' : `FAILED (${r.detail})`, r.seconds.toFixed(1)]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return (
    rows
      .map((row) =>
        row
          .map((cell, i) => cell.padEnd(widths[i]))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

/**
 * Collects node --test's failed-test blocks (a `not ok` line and the lines after it, up to the next test) and
 * boot.sh's account of a VM that failed (its `boot.sh: NAME: ...` line, qemu's words and the console's tail).
 */
export function failureCollector(maxLines = 30): { line(l: string): void; failures: string[] } {
  const failures: string[] = [];
  let current: string[] | null = null;
  let vm = false;
  return {
    failures,
    line(l) {
      const bare = l.replace(/^\s+/, '');
      const vmFailure = /^boot\.sh: \S+: (timed out|the VM ended)/.test(l);
      if (/^not ok \d+/.test(bare) || vmFailure) {
        current = [l];
        vm = vmFailure;
        failures.push('');
      } else if (
        current &&
        (vm ? !/^( |boot\.sh: )/.test(l) : /^(ok|not ok) \d+|^# Subtest:/.test(bare) || current.length >= maxLines)
      ) {
        current = null;
      } else if (current) current.push(l);
      if (current) failures[failures.length - 1] = current.join('\n');
    },
  };
}

/** Runs a program in the repository root, its output prefixed on our stdout; resolves with code and stdout. */
function run(
  file: string,
  args: string[],
  prefix: string,
  keepStdout = false,
  env: NodeJS.ProcessEnv = {},
  onLine?: (line: string) => void,
): Promise<{ code: number; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    const out = linePrefixer(prefix);
    const err = linePrefixer(prefix);
    const write = (text: string): void => {
      process.stdout.write(text);
      if (onLine) for (const l of text.split('\n').slice(0, -1)) onLine(l.slice(prefix.length));
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (keepStdout) stdout += d;
      else write(out.push(d));
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => write(err.push(d)));
    child.on('error', (e) => process.stdout.write(`${prefix}${e.message}\n`));
    child.on('close', (code, signal) => {
      write(out.flush() + err.flush());
      resolve({ code: code ?? (signal ? 128 : 1), stdout });
    });
  });
}

async function runKernel(kernel: string, command: string): Promise<Result> {
  const start = Date.now();
  const prefix = `[${kernel}] `;
  const failed = failureCollector();
  const done = (release: string, ok: boolean, detail: string): Result => ({
    kernel,
    release,
    ok,
    detail,
    seconds: (Date.now() - start) / 1000,
    failures: failed.failures,
  });
  if (kernel === 'HOST') {
    const { code } = await run('bash', ['-c', command], prefix, false, {}, failed.line);
    return done(os.release(), code === 0, `exit ${code}`);
  }
  const [name, variant] = kernel.split(':');
  if (variant !== undefined && !VARIANTS[variant]) return done('?', false, `unknown variant ${variant}`);
  const fetched = await run('bash', [path.join(SCRIPTS, 'fetch.sh'), name], prefix, true);
  const release = fetched.stdout.trim().split(/\s+/)[1] ?? '?';
  if (fetched.code !== 0) return done(release, false, 'fetch failed');
  // The tests' waits stretch under qemu's TCG (about 6 times slower here), and so does the time a packet may rest
  // mid-path: a vCPU stalled past the correlator's 1 s once split a forwarded packet in three. boot.sh passes
  // PATHTRACE_* in.
  const slowdown = Number(process.env.PATHTRACE_TEST_SLOWDOWN ?? '6');
  const env = {
    PATHTRACE_TEST_SLOWDOWN: String(slowdown),
    PATHTRACE_IDLE_MS: String(1000 * slowdown),
    ...VARIANTS[variant ?? ''],
  };
  const { code } = await run('bash', [path.join(SCRIPTS, 'boot.sh'), name, command], prefix, false, env, failed.line);
  const detail = code === 124 ? 'timeout' : code === 125 ? 'VM failed' : `exit ${code}`;
  return done(release, code === 0, detail);
}

async function main(): Promise<void> {
  const command = process.env.PATHTRACE_MATRIX_COMMAND || DEFAULT_COMMAND;
  const kernels = kernelsToRun(process.argv.slice(2));
  // Each kernel fetched once, one after the other (fetch.sh shares apt lists per suite), before any boots.
  for (const name of new Set(kernels.filter((k) => k !== 'HOST').map((k) => k.split(':')[0]!)))
    await run('bash', [path.join(SCRIPTS, 'fetch.sh'), name], `[${name}] `, true);
  // A TCG guest keeps about one of its two vCPUs busy: two guests at a time use a 2-core machine whole.
  const jobs = Math.max(1, Number(process.env.PATHTRACE_MATRIX_JOBS) || 2);
  const results: Result[] = new Array(kernels.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < kernels.length; i = next++) {
      const kernel = kernels[i]!;
      process.stdout.write(`\n=== ${kernel}: ${command}\n`);
      const r = await runKernel(kernel, command);
      process.stdout.write(`=== ${kernel} (${r.release}): ${r.ok ? 'ok' : 'FAILED'} in ${r.seconds.toFixed(1)} s\n`);
      results[i] = r;
    }
  };
  // HOST runs alone: its lab namespaces and load are this machine's.
  if (kernels.includes('HOST')) await worker();
  else await Promise.all(Array.from({ length: Math.min(jobs, kernels.length) }, worker));
  for (const r of results)
    for (const f of r.failures ?? []) process.stdout.write(`\n--- failed on ${r.kernel}:\n${f}\n`);
  process.stdout.write('\n' + summaryTable(results));
  process.exitCode = results.every((r) => r.ok) ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
