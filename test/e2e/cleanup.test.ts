// Whatever pathtrace attaches is gone after it exits, however it exits; and
// two pathtraces, or a chain at the priority it wants, do not make it fail.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Lab } from '../../src/lab/lab.js';
import { needsRoot, Pathtrace, pathtraceLinks, sleep } from '../helpers/pathtrace.js';
import { ROOT } from '../helpers/paths.js';

const INT_MIN = -2147483648;
const INT_MAX = 2147483647;
// With an IPv4 rule: entry and exit of IPv4's 5 hooks, the entry alone of IPv6's (no chains there), 18 tracepoints
// (this machine's kernel has no xdp_redirect_map_err), and no XDP or tc program whose verdicts to trace.
const ALL_POINTS = 5 * 2 + 5 + 18;

async function linksGone(): Promise<number[]> {
  for (let i = 0; i < 50 && pathtraceLinks().length; i++) await sleep(100);
  return pathtraceLinks();
}

for (const how of ['duration', 'SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
  test(`no BPF link is left after pathtrace ends by ${how}`, async (t) => {
    if (!needsRoot(t)) return;
    assert.deepEqual(pathtraceLinks(), [], 'no pathtrace running before the test');
    const lab = new Lab();
    let pt: Pathtrace | null = null;
    try {
      lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '3306', '-j', 'ACCEPT']);
      pt = await Pathtrace.start(['--netns', lab.server.netns, ...(how === 'duration' ? ['--duration', '1'] : [])]);
      assert.equal(pathtraceLinks().length, ALL_POINTS);
      const running = pt;
      pt = null;
      const end = how === 'duration' ? await running.done() : await running.stop(how);
      if (how === 'SIGKILL') assert.equal(end.signal, 'SIGKILL');
      else {
        assert.equal(end.code, 0, end.stderr);
        assert.equal(end.records.at(-1)!.type, 'summary');
      }
      assert.deepEqual(await linksGone(), []);
    } finally {
      if (pt) await pt.stop('SIGKILL'); // a failed check must not leave it running for the next test
      lab.destroy();
    }
  });
}

test("a lab is removed when its process exits without destroying it (a crash handler's process.exit)", (t) => {
  if (!needsRoot(t)) return;
  const lab = pathToFileURL(path.join(ROOT, 'dist/src/lab/lab.js')).href;
  const script = `import { Lab } from '${lab}'; const l = new Lab({ router: true }); console.log(l.client.netns); process.exit(1);`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  const tag = r.stdout.trim().replace(/-cli$/, '');
  assert.match(tag, /^pt[0-9a-f]{6}$/);
  const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
  assert.ok(!left.includes(tag), `namespaces of ${tag} left:\n${left}`);
});

test('two pathtraces at once, and a chain at the first free priority: both attach everywhere', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  try {
    // A base chain at INT_MIN+1 on LOCAL_IN takes the entry probe's first choice (EBUSY).
    lab.exec(
      lab.server.netns,
      'nft',
      ['-f', '-'],
      `table inet early {\nchain c {\ntype filter hook input priority ${INT_MIN + 1}\n}\n}\n`,
    );
    lab.exec(lab.server.netns, 'iptables', ['-I', 'INPUT', '-p', 'tcp', '--dport', '3306', '-j', 'DROP']);
    const a = await Pathtrace.start(['--netns', lab.server.netns, '--port', '3306']);
    const b = await Pathtrace.start(['--netns', lab.server.netns, '--port', '3306']);
    const prio = (p: Pathtrace, hook: string) => {
      const x = p.ready.netfilter.find((n: { family: string; hook: string }) => n.family === 'ipv4' && n.hook === hook);
      return [x!.entry_priority, x!.exit_priority, ...x!.between_priorities];
    };
    // The nft chain holds INT_MIN+1: a's entry moves up one, b's further; exits share nothing either.
    const [aEntry, aExit, ...aBetween] = prio(a, 'LOCAL_IN');
    const [bEntry, bExit, ...bBetween] = prio(b, 'LOCAL_IN');
    assert.equal(aEntry, INT_MIN + 2);
    assert.ok(bEntry > aEntry && bEntry < 0);
    assert.deepEqual([aExit, bExit], [INT_MAX - 1, INT_MAX - 2]);
    // Each also probes the gap between the early chain and iptables' filter (0), at a priority of its own.
    const all = [aEntry, ...aBetween, bEntry, ...bBetween, INT_MIN + 1];
    assert.equal(new Set(all).size, all.length, `no two hooks at one priority: ${all}`);
    assert.deepEqual(prio(b, 'PRE_ROUTING').slice(0, 2), [INT_MIN + 2, INT_MAX - 2]);
    assert.deepEqual(a.ready.unavailable, []);
    assert.deepEqual(b.ready.unavailable, []);
    await lab.connect('tcp', lab.server.v4, 3306, 300);
    for (const p of [a, b]) {
      const drop = await p.waitFor((x) => x.fate === 'dropped');
      assert.equal(drop?.drop.hook, 'LOCAL_IN');
    }
    await Promise.all([a.stop(), b.stop()]);
    assert.deepEqual(await linksGone(), []);
  } finally {
    lab.destroy();
  }
});
