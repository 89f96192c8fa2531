// The agent as the tests run it: a free port, a child's output and exit, waits, and a rule's own count.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { Lab } from '../../src/lab/lab.js';
import { linksOfPrograms, sleep, SLOWDOWN } from './pathtrace.js';
import { BIN } from './paths.js';

export const PORT = 3306;
export const RULE = `iptables -A INPUT -p tcp -m tcp --dport ${PORT} -j DROP`;

/** The rule the tests drop by, in the server's namespace. */
export function addDropRule(lab: Lab): void {
  lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP']);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** A child process's output, and its exit. */
export function started(child: ChildProcess) {
  let out = '';
  child.stdout?.on('data', (d) => (out += d));
  child.stderr?.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { output: () => out, exited };
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms: number): Promise<T> {
  const until = Date.now() + ms * SLOWDOWN;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    await sleep(250);
  }
  throw new Error(`${what}: not within ${(ms * SLOWDOWN) / 1000} s${last ? ` (${(last as Error).message})` : ''}`);
}

/** The value of a PromQL query's one sample, by Prometheus' HTTP API; undefined while it has none. */
export async function query(prometheus: string, expr: string): Promise<number | undefined> {
  const res = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; data: { result: { value: [number, string] }[] } };
  assert.equal(body.status, 'success', JSON.stringify(body));
  const [sample] = body.data.result;
  return sample ? Number(sample.value[1]) : undefined;
}

/** Packets the rule's own counter counted (iptables-save -c: "[packets:bytes] -A INPUT ..."). */
export function ruleCount(lab: Lab, netns: string): number {
  const save = lab.exec(netns, 'iptables-save', ['-c', '-t', 'filter']);
  const line = save.split('\n').find((l) => l.includes(`--dport ${PORT} -j DROP`));
  assert.ok(line, save);
  return Number(/^\[(\d+):/.exec(line)![1]);
}

/** Nothing of an agent that ended left in the kernel: none of its links at once, none of its programs once the
 *  kernel has freed them (a tracing program goes an RCU grace period after its link: seen lingering under load). */
export async function assertAgentGone(message?: string): Promise<void> {
  assert.deepEqual(linksOfPrograms(/^agent_/), [], message);
  const end = Date.now() + 20_000 * SLOWDOWN;
  while (agentPrograms().length && Date.now() < end) await sleep(100);
  assert.deepEqual(agentPrograms(), [], message);
}

/** The agent's BPF programs loaded now (bpftool prog show). */
export const agentPrograms = () =>
  execFileSync('bpftool', ['prog', 'show'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => /name agent_/.test(l));

/** `pathtrace agent` on a free port of 127.0.0.1, served (its /healthz answers); its child, output and URL. */
export async function startAgent(args: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const port = await freePort();
  const child = spawn(process.execPath, [BIN, 'agent', '--listen', `127.0.0.1:${port}`, '--interval', '1', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const run = started(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor('the agent serving', async () => ((await fetch(`${url}/healthz`)).ok ? true : undefined), 15_000).catch(
    (e: Error) => {
      child.kill('SIGKILL');
      assert.fail(`${e.message}: ${run.output()}`);
    },
  );
  return { child, ...run, url, metrics: () => fetch(`${url}/metrics`).then((r) => r.text()) };
}

/** The agent's drop series of one namespace (its /metrics lines). */
export async function dropSeries(agent: { metrics(): Promise<string> }, netns: string): Promise<string[]> {
  return (await agent.metrics()).split('\n').filter((l) => l.startsWith(`pathtrace_drops_total{netns="${netns}"`));
}

/** The first series of the namespace with `has` in its labels, once it is there; fails saying what there was. */
export function seriesWith(
  agent: { metrics(): Promise<string>; output(): string },
  netns: string,
  has: string,
): Promise<string> {
  return waitFor(
    `a series of ${netns} with ${has}`,
    async () => (await dropSeries(agent, netns)).find((l) => l.includes(has)),
    15_000,
  ).catch(async (e: Error) =>
    assert.fail(`${e.message}: ${(await dropSeries(agent, netns)).join('\n')}; ${agent.output()}`),
  );
}

export type { ChildProcess };
