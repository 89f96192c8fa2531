// What the summaries tell of real drops: who listened where a listen queue overflowed, what a REJECT answered
// in place of TCP (said once over the connections that show it), and the rule of each cause of drops, flat.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import { needsRoot, SLOWDOWN, sleep, traceLab } from '../helpers/pathtrace.js';
import { BIN } from '../helpers/paths.js';

/** pathtrace's text output (no --json) for the traffic, once it ends on Ctrl-C. */
async function traceText(args: string[], traffic: () => Promise<unknown>): Promise<string> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '',
    stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  while (!stderr.includes('Ctrl-C to stop')) {
    if (child.exitCode !== null) throw new Error(`pathtrace exited: ${stderr}`);
    await sleep(20);
  }
  await traffic();
  await sleep(300 * SLOWDOWN);
  child.kill('SIGINT');
  assert.equal(await exited, 0, stderr);
  return stdout;
}

const REJECT = ['-p', 'tcp', '--dport', '3306', '-j', 'REJECT', '--reject-with', 'tcp-reset'];

test('a listen queue that overflows: the listening process named, as ss -tlnp names it', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => lab.listen('tcp', 80, lab.server, '--stall', '8000', '--backlog', '1'),
      args: ['--port', '80'],
      traffic: async (lab) => {
        const ss = lab.exec(lab.server.netns, 'ss', ['-Htlnp', 'sport = :80']);
        await Promise.all([1, 2, 3, 4, 5, 6].map(() => lab.connect('tcp', lab.server.v4, 80, 1300)));
        return ss;
      },
    },
    ({ result: ss, packets, summary }) => {
      const [, comm, pid] = /users:\(\("([^"]+)",pid=(\d+)/.exec(ss) ?? [];
      assert.ok(pid, `ss names the listener: ${ss}`);
      const who = `${comm}[${pid}]`;
      const overflow = packets.filter((p) => p.drop?.reason === 'TCP_LISTEN_OVERFLOW');
      assert.ok(overflow.length >= 1, 'the queue overflowed');
      for (const p of overflow) {
        assert.deepEqual(p.drop.listening, [
          { address: '[::]:80', processes: [{ pid: Number(pid), comm }], queued: p.drop.listening[0]!.queued },
        ]);
        assert.match(
          p.drop.explanation,
          new RegExp(`accept queue was full: ${who.replace(/[[\]]/g, '\\$&')} on \\[::\\]:80 does not accept`),
        );
      }
      const told = summary.flows.filter((f) => f.verdict.includes('TCP_LISTEN_OVERFLOW'));
      assert.ok(told.length >= 1);
      for (const f of told) assert.ok(f.verdict.includes(`the accept queue of ${who} on [::]:80 was full`), f.verdict);
      assert.ok(
        summary.drops.some(
          (d) => d.reason === 'TCP_LISTEN_OVERFLOW' && d.listening[0]!.processes[0]!.pid === Number(pid),
        ),
      );
    },
  );
});

test("a REJECT rule's resets on three connections: the firewall answered for TCP, said once", async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  try {
    lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', ...REJECT]);
    const text = await traceText(['--netns', lab.server.netns, '--port', '3306'], async () => {
      for (let i = 0; i < 3; i++) await lab.connect('tcp', lab.server.v4, 3306, 400);
    });
    const said = text.split('\n').filter((l) => l.startsWith('  - tcpdump shows'));
    assert.deepEqual(said, [
      '  - tcpdump shows 3 SYN arriving over 3 connections: it captures them at the device, before netfilter. ' +
        'They were dropped afterwards, at LOCAL_IN (NETFILTER_DROP). ' +
        'TCP never saw them: the firewall answered each for it, with RST ×3 from a REJECT rule.',
    ]);
    assert.doesNotMatch(text, /never answered/);
    assert.equal(text.match(/SYN dropped at LOCAL_IN; RST sent by a netfilter REJECT rule/g)?.length, 3);
  } finally {
    lab.destroy();
  }
});

test("summary.drops: each cause's rule flat, as in the packets' drops; attribution kept, deprecated", async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', ...REJECT]),
      args: ['--port', '3306'],
      traffic: (lab) => lab.connect('tcp', lab.server.v4, 3306, 400),
    },
    ({ packets, summary }) => {
      const dropped = packets.find((p) => p.fate === 'dropped')!;
      const [cause] = summary.drops;
      for (const k of ['table', 'chain', 'family', 'source', 'rule', 'inspect', 'remove', 'answered'] as const)
        assert.deepEqual(cause![k], dropped.drop[k], k);
      assert.equal(cause!.rule.text, 'iptables -A INPUT -p tcp -m tcp --dport 3306 -j REJECT --reject-with tcp-reset');
      assert.equal(cause!.attribution.rule.text, cause!.rule.text, 'the nested rule, as before');
      assert.equal('advice' in cause!, false);
    },
  );
});
