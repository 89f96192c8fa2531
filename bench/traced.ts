// pathtrace as the benchmarks run it: a child process with --json, started and waited for until ready.
import { spawn, type ChildProcess } from 'node:child_process';
import { BIN } from '../test/helpers/paths.js';

export interface Traced {
  child: ChildProcess;
  readyMs: number;
  output(): string;
}

export async function startPathtrace(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Traced> {
  const started = Date.now();
  const child = spawn(process.execPath, [BIN, '--json', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  });
  let text = '';
  child.stdout!.on('data', (d) => {
    text += d;
  });
  while (!text.includes('"ready"')) {
    if (child.exitCode !== null) throw new Error('pathtrace exited before it was ready');
    await new Promise((r) => setTimeout(r, 5));
  }
  return { child, readyMs: Date.now() - started, output: () => text };
}
