// The source articles' experiments (demo local-in and local-out), and the control case
// without a rule, with the TCP-side facts and a real tcpdump beside pathtrace.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { BIN } from '../helpers/paths.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import { isType, needsRoot, Pathtrace, runCli, unexpectedDrops, type Packet } from '../helpers/pathtrace.js';

const PORT = 3306;

/** tcpdump -w in a namespace; stop() returns the capture as "[S] seq" lines. */
async function startTcpdump(lab: Lab, netns: string, ifname: string) {
  const dir = mkdtempSync(path.join(tmpdir(), 'pathtrace-tcpdump-'));
  const file = path.join(dir, 'cap.pcap');
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      netns,
      'tcpdump',
      '-i',
      ifname,
      '-nn',
      '-U',
      '--immediate-mode',
      '-w',
      file,
      'tcp',
      'port',
      String(PORT),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await new Promise<void>((resolve, reject) => {
    let err = '';
    child.stderr!.on('data', (d) => {
      err += d;
      if (err.includes('listening on')) resolve();
    });
    child.on('exit', (code) => reject(new Error(`tcpdump exited (${code}): ${err}`)));
  });
  return {
    async stop(): Promise<{ flags: string; seq: number; src: string }[]> {
      child.kill('SIGINT');
      await new Promise((r) => child.on('exit', r));
      const text = execFileSync('tcpdump', ['-r', file, '-nn', '-S'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      rmSync(dir, { recursive: true, force: true });
      void lab;
      // "12:00:00.000000 IP 198.18.0.1.41234 > 198.18.0.2.3306: Flags [S], seq 123, ..."
      return text
        .split('\n')
        .filter(Boolean)
        .map((l) => {
          const m = /IP6? (\S+) > \S+: Flags \[([^\]]+)\], seq (\d+)/.exec(l)!;
          return { src: m[1], flags: m[2], seq: Number(m[3]) };
        });
    },
  };
}

const syns = (ps: Packet[]) => ps.filter((p) => p.tcp_flags === 'S');
const synacks = (ps: Packet[]) => ps.filter((p) => p.tcp_flags === 'SA');

test('experiment 1, local-in: tcpdump sees every SYN, netfilter drops it at LOCAL_IN, TCP has no state', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  try {
    lab.exec(lab.server.netns, 'iptables', ['-I', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP']);
    await lab.listen('tcp', PORT);
    const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(PORT)]);
    const client = await lab.connect('tcp', lab.server.v4, PORT, 2500);
    const { records } = await pt.stop();
    assert.equal(client.error, 'timeout');

    const packets = records.filter((r) => r.type === 'packet');
    assert.ok(syns(packets).length >= 2, 'the SYN and at least one retransmission');
    assert.equal(packets.length, syns(packets).length, 'the server sends nothing back');
    syns(packets).forEach((p, i) => {
      assert.equal(p.direction, 'in');
      assert.equal(p.tcpdump, true);
      assert.equal(p.fate, 'dropped');
      assert.equal(p.drop.hook, 'LOCAL_IN');
      assert.equal(p.drop.reason, 'NETFILTER_DROP');
      assert.equal(p.retransmit, i);
      assert.deepEqual(p.tcp, { saw: false, reply: null });
    });
    const flow = records.find((r) => r.type === 'summary')!.flows[0];
    assert.deepEqual(flow.tcp_states, [], 'no socket of the server changed state');
    assert.equal(flow.synack_retransmits, 0);
  } finally {
    lab.destroy();
  }
});

test('experiment 2, local-out: TCP reaches SYN_RECV, its SYN-ACKs die at LOCAL_OUT; a real tcpdump agrees', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  try {
    lab.exec(lab.server.netns, 'iptables', ['-I', 'OUTPUT', '-p', 'tcp', '--sport', String(PORT), '-j', 'DROP']);
    await lab.listen('tcp', PORT);
    const tcpdump = await startTcpdump(lab, lab.server.netns, lab.server.ifname);
    const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(PORT)]);
    const client = await lab.connect('tcp', lab.server.v4, PORT, 2500);
    await new Promise((r) => setTimeout(r, 200));
    const { records } = await pt.stop();
    const captured = await tcpdump.stop();
    assert.equal(client.error, 'timeout');

    const packets = records.filter((r) => r.type === 'packet');
    assert.ok(syns(packets).length >= 2);
    for (const p of syns(packets)) {
      assert.equal(p.fate, 'delivered');
      assert.equal(p.tcpdump, true);
      assert.deepEqual(p.tcp, { saw: true, reply: 'SA' }, 'TCP received the SYN and answered it');
      assert.equal(p.steps.at(-1)!.location, 'tcp_rcv_state_process');
    }
    assert.ok(synacks(packets).length >= syns(packets).length, 'a SYN-ACK for every SYN');
    for (const p of synacks(packets)) {
      assert.equal(p.direction, 'out');
      assert.equal(p.fate, 'dropped');
      assert.equal(p.drop.hook, 'LOCAL_OUT');
      assert.equal(p.drop.reason, 'NETFILTER_DROP');
      assert.equal(p.tcpdump, false);
    }

    // Both ways: what pathtrace says tcpdump saw is what tcpdump captured.
    const seen = packets.filter((p) => p.tcpdump);
    const capturedSyns = captured.filter((c) => c.flags === 'S');
    assert.equal(capturedSyns.length, seen.filter((p) => p.tcp_flags === 'S').length);
    for (const p of seen)
      assert.ok(
        capturedSyns.some((c) => c.seq === p.seq),
        `SYN seq ${p.seq} is in the capture`,
      );
    assert.equal(captured.filter((c) => c.flags === 'S.').length, 0, 'no SYN-ACK in the capture');
    assert.equal(seen.filter((p) => p.tcp_flags === 'SA').length, 0);
  } finally {
    lab.destroy();
  }
});

for (const family of [4, 6] as const) {
  test(`no rule, IPv${family}: the connection works and nothing is reported dropped`, async (t) => {
    if (!needsRoot(t)) return;
    const lab = new Lab();
    try {
      await lab.listen('tcp', PORT);
      const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(PORT)]);
      const client = await lab.connect('tcp', family === 4 ? lab.server.v4 : lab.server.v6, PORT, 2000);
      await pt.waitFor((p) => p.tcp_flags === 'FA' && p.direction === 'in', 2000);
      const { records } = await pt.stop();
      assert.deepEqual({ ok: client.ok, data: client.data }, { ok: true, data: 'hello\n' });

      const packets = records.filter((r) => r.type === 'packet');
      const kinds = packets.map((p) => `${p.direction} ${p.tcp_flags}`);
      for (const k of ['in S', 'out SA', 'in A', 'out PA']) assert.ok(kinds.includes(k), `${k} in ${kinds}`);
      assert.deepEqual(unexpectedDrops(packets), []);
      for (const p of packets.filter((x) => x.fate !== 'dropped')) {
        assert.equal(p.family, `ipv${family}`);
        assert.ok(['delivered', 'sent'].includes(p.fate), `${p.tcp_flags} ${p.fate}`);
        assert.equal(p.tcpdump, true);
      }
      const summary = records.find(isType('summary'))!;
      assert.ok(summary.flows[0].tcp_states.includes('SYN_RECV>ESTABLISHED'), summary.flows[0].tcp_states.join(' '));
    } finally {
      lab.destroy();
    }
  });
}

test('pathtrace demo local-in and local-out tell the story and leave nothing behind', async (t) => {
  if (!needsRoot(t)) return;
  const before = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  const localIn = runCli(['demo', 'local-in']);
  assert.equal(localIn.code, 0, localIn.stderr);
  assert.match(localIn.stdout, /in {2}SYN .*→ 198\.18\.0\.2:3306/);
  assert.match(localIn.stdout, /tcpdump ✓ ─ PRE_ROUTING ✓ ─ route: local ─ LOCAL_IN ✗ dropped/);
  assert.match(
    localIn.stdout,
    /NETFILTER_DROP at \w+ \(netfilter, hook LOCAL_IN\) · silently: no answer was sent · TCP never saw it/,
  );
  assert.match(localIn.stdout, /tcpdump shows \d+ SYN arriving/);
  assert.doesNotMatch(localIn.stdout, /SYN-ACK/);

  const localOut = runCli(['demo', 'local-out']);
  assert.equal(localOut.code, 0, localOut.stderr);
  assert.match(localOut.stdout, /LOCAL_IN ✓ ─ TCP socket ─ delivered/);
  assert.match(localOut.stdout, /TCP answered SYN-ACK/);
  assert.match(localOut.stdout, /out SYN-ACK .*\n {2}TCP socket ─ LOCAL_OUT ✗ dropped · tcpdump ✗/);
  assert.match(localOut.stdout, /tcpdump shows none of the \d+ SYN-ACK/);
  assert.match(localOut.stdout, /SYN_RECV/);

  assert.equal(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), before, 'the demo removed its namespaces');
});

test('Ctrl-C during the demo: a summary, exit 0, and the lab is gone', async (t) => {
  if (!needsRoot(t)) return;
  const demo = spawn(process.execPath, [BIN, 'demo', 'local-in'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '',
    stderr = '';
  demo.stdout!.on('data', (d) => {
    stdout += d;
  });
  const exited = new Promise<number | null>((r) => demo.on('exit', (code) => r(code)));
  await new Promise<void>((resolve) =>
    demo.stderr!.on('data', (d) => {
      stderr += d;
      if (stderr.includes('Ctrl-C to stop')) resolve();
    }),
  );
  await new Promise((r) => setTimeout(r, 1200));
  demo.kill('SIGINT');
  assert.equal(await exited, 0, stderr);
  assert.match(stdout, /── \d+ packets?/);
  const names = [...new Set([...stderr.matchAll(/netns (pt[0-9a-f]+-(?:cli|srv))/g)].map((m) => m[1]))];
  assert.equal(names.length, 2);
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const n of names) assert.ok(!left.includes(n), `${n} removed`);
});
