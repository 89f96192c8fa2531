// The command line as a user meets it: bad input, privileges, a kernel that
// lacks a feature, the NDJSON contract, --count, --duration and filters.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import { BACKLOG_BYTES } from '../../src/output/slow-reader.js';
import { needsRoot, Pathtrace, pathtraceLinks, peakMiB, runCli, sleep, type Summary } from '../helpers/pathtrace.js';
import { BIN, ROOT } from '../helpers/paths.js';

/** One line on stderr, no stack trace. */
function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at |Error:|node:internal/m);
  return lines[0];
}

test('bad input: one clear line on stderr, a non-zero exit code', () => {
  const cases: [string[], number, RegExp][] = [
    [['--port', '0'], 2, /^pathtrace: bad port '0': ports go from 1 to 65535/],
    [['--port', 'mysql'], 2, /^pathtrace: bad port 'mysql'/],
    [['--host', '999.1.1.1'], 2, /^pathtrace: bad host '999.1.1.1'/],
    [['--frobnicate'], 2, /^pathtrace: unknown option '--frobnicate'/],
    [['--proto', 'sctp'], 2, /^pathtrace: bad protocol 'sctp'/],
    [['--netns', 'no-such-netns-pathtrace'], 1, /^pathtrace: unknown network namespace 'no-such-netns-pathtrace'/],
    [['--netns', '/proc/999999999/ns/net'], 1, /^pathtrace: unknown network namespace '\/proc\/999999999\/ns\/net'/],
    [['--netns', '/etc/hostname'], 1, /^pathtrace: '\/etc\/hostname' is not a network namespace file/],
    [['demo', 'nowhere'], 2, /^pathtrace: unknown demo scenario 'nowhere'/],
  ];
  for (const [args, code, message] of cases) {
    const r = runCli(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(oneLine(r.stderr), message);
    assert.equal(r.stdout, '');
  }
});

test("--version: the version, the libbpf carried with the addon, and this kernel's features", () => {
  const r = runCli(['--version']);
  assert.equal(r.code, 0, r.stderr);
  const [name, libbpf, kernel] = r.stdout.trimEnd().split('\n');
  assert.match(name, /^pathtrace \d+\.\d+\.\d+$/);
  assert.match(libbpf, /^libbpf 1\.\d+ \(carried with the addon\)$/);
  assert.match(
    kernel,
    new RegExp(
      `^kernel ${os.release().replace(/\./g, '\\.')} x86_64: BTF yes; BPF netfilter links (yes|no|run as root to tell); kprobes (yes|no); bpf_loop (yes \\(filter expressions run\\)|no \\(no filter expressions: Linux 5\\.17\\+\\))$`,
    ),
  );
});

test('tools missing from the server: a trace says once what it loses; --rule-trace and a demo refuse in one line', (t) => {
  if (!needsRoot(t)) return;
  const bare = mkdtempSync(path.join(tmpdir(), 'pt-bare-'));
  t.after(() => rmSync(bare, { recursive: true, force: true }));
  const env = { PATH: bare };
  const trace = runCli(['--json', '--port', '9', '--duration', '1'], { env });
  assert.equal(trace.code, 0, trace.stderr);
  const notes = trace.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.type === 'note')
    .map((r) => r.message);
  assert.deepEqual(
    notes.filter((n) => /installed/.test(n)),
    [
      'neither nft nor iptables is installed: a drop in netfilter is told by its hook, not by its table, chain and rule (apt install nftables)',
    ],
  );
  const rt = runCli(['--rule-trace', '--port', '9', '--duration', '1'], { env });
  assert.equal(rt.code, 1);
  assert.equal(
    oneLine(rt.stderr),
    'pathtrace: --rule-trace needs nft (nftables): apt install nftables, or trace without it',
  );
  const demo = runCli(['demo', 'local-in', '--plain'], { env });
  assert.equal(demo.code, 1);
  assert.equal(
    oneLine(demo.stderr),
    'pathtrace: demo local-in needs ip (iproute2), iptables: apt install them, or trace your own traffic',
  );
});

test('--write to a place that cannot be written: one line before anything is attached', (t) => {
  if (!needsRoot(t)) return;
  const r = runCli(['--port', '9', '--duration', '1', '--write', '/nonexistent-pathtrace/x.pcapng']);
  assert.equal(r.code, 1);
  assert.match(
    oneLine(r.stderr),
    /^pathtrace: cannot write \/nonexistent-pathtrace\/x\.pcapng: no such directory \/nonexistent-pathtrace$/,
  );
  assert.equal(r.stdout, '');
  const proc = runCli(['--port', '9', '--duration', '1', '--write', '/proc/x.pcapng']);
  assert.equal(proc.code, 1);
  assert.match(
    oneLine(proc.stderr),
    /^pathtrace: cannot write \/proc\/x\.pcapng: files cannot be created there$/,
    'the directory is there',
  );
});

test('--write to a full disk or past a file size limit: the file stops, said as what it is; the trace and its summary go on', async (t) => {
  if (!needsRoot(t)) return;
  const full = runCli(['--json', '--port', '9', '--duration', '1', '--write', '/dev/full']);
  assert.equal(full.code, 0, full.stderr);
  assert.doesNotMatch(full.stderr, /internal error/);
  const records = full.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  const notes = records.filter((r) => r.type === 'note').map((r) => r.message);
  assert.ok(
    notes.includes(
      'cannot write /dev/full any more: no space left on the device (ENOSPC); the trace goes on without it',
    ),
    notes.join('\n'),
  );
  assert.ok(
    notes.includes('wrote 0 packets to /dev/full, then stopped: no space left on the device (ENOSPC)'),
    notes.join('\n'),
  );
  assert.equal(records.at(-1).type, 'summary');

  // A file size limit of 1 KiB: the section and interface headers fit, packets soon do not.
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-fsize-'));
  const lab = new Lab();
  try {
    const file = path.join(dir, 'w.pcapng');
    const child = spawn(
      'prlimit',
      [
        '--fsize=1024',
        process.execPath,
        BIN,
        '--json',
        '--netns',
        lab.server.netns,
        '--port',
        '8080',
        '--count',
        '6',
        '--write',
        file,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => {
      out += d;
    });
    child.stderr!.on('data', (d) => {
      err += d;
    });
    const exited = new Promise((r) => child.on('exit', (c, sig) => r(c ?? sig)));
    while (!out.includes('"ready"') && child.exitCode === null) await sleep(20);
    for (let i = 0; i < 6 && child.exitCode === null; i++)
      await lab.connect('tcp', lab.server.v4, 8080, 300).catch(() => {});
    child.kill('SIGINT');
    assert.equal(await exited, 0, err);
    const fsNotes = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((r) => r.type === 'note')
      .map((r) => r.message as string);
    assert.ok(
      fsNotes.some((m) =>
        /^wrote \d+ packets to .*w\.pcapng, then stopped: the file size limit was reached \(EFBIG, ulimit -f\)$/.test(
          m,
        ),
      ),
      fsNotes.join('\n'),
    );
  } finally {
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('not root: says so and exits 1', (t) => {
  if (!needsRoot(t)) return; // to drop to another user we must be root first
  const r = runCli(['--port', '3306'], { uid: 65534 });
  assert.equal(r.code, 1);
  assert.match(
    oneLine(r.stderr),
    /^pathtrace: must run as root: loading BPF probes needs CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN/,
  );
});

test('a kernel without BTF: says what is missing, exits 1', (t) => {
  if (!needsRoot(t)) return;
  const r = runCli(['--port', '3306', '--duration', '1'], { env: { PATHTRACE_PRETEND_KERNEL_LACKS: 'btf' } });
  assert.equal(r.code, 1);
  assert.match(oneLine(r.stderr), /BTF.*CONFIG_DEBUG_INFO_BTF.*nothing can be traced/);
});

test('a kernel without netfilter links that refuses trampolines (this one, pretending): says so in one line, and drops are still caught by kfree_skb', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  try {
    lab.exec(lab.server.netns, 'iptables', ['-I', 'INPUT', '-p', 'udp', '--dport', '5353', '-j', 'DROP']);
    const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', '5353'], {
      PATHTRACE_PRETEND_KERNEL_LACKS: 'netfilter',
    });
    assert.deepEqual(pt.ready.netfilter, []);
    assert.equal(pt.ready.netfilter_mechanism, 'none');
    assert.match(
      pt.ready.unavailable.find((u: { point: string }) => u.point === 'netfilter')!.reason,
      /no BPF netfilter links \(Linux < 6\.4\), and neither trampolines nor kprobes on nf_hook_slow could trace the hooks \(.*nf_hook_slow_entry.*\): .*still work/,
    );
    // The points of the mechanisms that failed are in that one line, not each on its own.
    assert.ok(!pt.ready.unavailable.some((u: { point: string }) => /^(fentry|fexit|kprobe|kretprobe)\//.test(u.point)));
    await lab.connect('udp', lab.server.v4, 5353, 300);
    const p = await pt.waitFor((x) => x.fate === 'dropped');
    const { code } = await pt.stop();
    assert.equal(code, 0);
    assert.ok(p);
    assert.deepEqual(
      { layer: p.drop.layer, hook: p.drop.hook, reason: p.drop.reason },
      { layer: 'netfilter', hook: null, reason: 'NETFILTER_DROP' },
    );
    assert.equal(p.tcpdump, true);
    assert.ok(!p.steps.some((s: { point: string }) => s.point === 'netfilter'));
  } finally {
    lab.destroy();
  }
});

test('--json: only NDJSON on stdout, a ready record first and a summary last; --count ends it', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  try {
    await lab.listen('udp', 5353);
    const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', '5353', '--count', '2']);
    await lab.connect('udp', lab.server.v4, 5353, 1000);
    await lab.connect('udp', lab.server.v4, 5353, 1000);
    const { code, stdout, records } = await pt.done();
    assert.equal(code, 0);
    const lines = stdout.trimEnd().split('\n');
    assert.equal(lines.length, records.length);
    assert.equal(records[0].type, 'ready');
    assert.deepEqual(records[0].points.sort(), [
      'consume_skb',
      'inet_sock_set_state',
      'kfree_skb',
      'napi_gro_receive_entry',
      'net_dev_queue',
      'net_dev_start_xmit',
      'netif_receive_skb',
      'netif_rx',
      'qdisc_dequeue',
      'qdisc_enqueue',
      'skb_copy_datagram_iovec',
      'sock_recv_length',
      'tcp_receive_reset',
      'tcp_retransmit_skb',
      'tcp_retransmit_synack',
      'tcp_send_reset',
      'xdp_exception',
      'xdp_redirect_err',
    ]);
    assert.equal(records[0].netfilter.length, 10);
    // No chains in the namespace: each hook's entry probe alone.
    for (const p of records[0].netfilter)
      assert.ok(p.entry_priority !== null && p.exit_priority === null && !p.bracketed);
    const packets = records.filter((r) => r.type === 'packet');
    assert.equal(packets.length, 2);
    const [req, resp] = packets;
    assert.deepEqual(
      [req.direction, req.fate, req.proto, req.tcp_flags, req.dport],
      ['in', 'delivered', 'udp', null, 5353],
    );
    assert.deepEqual([resp.direction, resp.fate, resp.sport], ['out', 'sent', 5353]);
    for (const p of packets) assert.ok(p.steps.every((s: { t_ns: number }) => Number.isInteger(s.t_ns) && s.t_ns >= 0));
    const summary = records.at(-1) as Summary;
    assert.equal(summary.type, 'summary');
    assert.equal(summary.packets, 2);
    assert.equal(summary.stopped_by, 'count');
    assert.equal(summary.lost_events, 0);
  } finally {
    lab.destroy();
  }
});

test('--duration ends the trace by itself; --host keeps only that address', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  try {
    await lab.listen('tcp', 8080);
    const started = Date.now();
    const pt = await Pathtrace.start(['--netns', lab.server.netns, '--host', lab.client.v6, '--duration', '2']);
    await lab.connect('tcp', lab.server.v4, 8080, 1000);
    await lab.connect('tcp', lab.server.v6, 8080, 1000);
    const { code, records } = await pt.done();
    assert.equal(code, 0);
    assert.ok(Date.now() - started >= 2000);
    const packets = records.filter((r) => r.type === 'packet');
    assert.ok(packets.length >= 4, 'the IPv6 connection was traced');
    for (const p of packets) {
      assert.equal(p.family, 'ipv6');
      assert.ok(p.src === lab.client.v6 || p.dst === lab.client.v6);
    }
    assert.equal((records.at(-1) as Summary).stopped_by, 'duration');
  } finally {
    lab.destroy();
  }
});

test('--netns accepts a path such as /proc/PID/ns/net', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  try {
    const { child } = await lab.peer(lab.server.netns, ['listen', 'tcp', '8080']);
    const pt = await Pathtrace.start(['--netns', `/proc/${child.pid}/ns/net`, '--port', '8080']);
    await lab.connect('tcp', lab.server.v4, 8080, 1000);
    const syn = await pt.waitFor((p) => p.tcp_flags === 'S');
    await pt.stop();
    assert.equal(syn?.fate, 'delivered');
    assert.equal(pt.ready.netns.name, `/proc/${child.pid}/ns/net`);
  } finally {
    lab.destroy();
  }
});

test('--netns /proc/PID/ns/net: the trace outlives that process while the namespace lives on', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  try {
    const sleeper = spawn('ip', ['netns', 'exec', lab.server.netns, 'sleep', '60'], { stdio: 'ignore' });
    const nsIno = statSync(`/run/netns/${lab.server.netns}`).ino;
    while (statSync(`/proc/${sleeper.pid}/ns/net`).ino !== nsIno) await sleep(10); // until it has entered
    const { child } = await lab.peer(lab.server.netns, ['listen', 'tcp', '8080']);
    const pt = await Pathtrace.start(['--netns', `/proc/${sleeper.pid}/ns/net`, '--port', '8080']);
    sleeper.kill();
    await new Promise((r) => sleeper.on('exit', r));
    await sleep(1200); // the namespace file is looked for every 500 ms
    assert.ok(child.exitCode === null, 'the listener still runs in the namespace');
    await lab.connect('tcp', lab.server.v4, 8080, 1000);
    const syn = await pt.waitFor((p) => p.tcp_flags === 'S');
    assert.equal(syn?.fate, 'delivered', 'still tracing after the process named by --netns exited');
    lab.destroy();
    const { records } = await pt.done();
    assert.equal((records.at(-1) as Summary).stopped_by, 'netns-gone', 'and ends once nothing names the namespace');
  } finally {
    lab.destroy();
  }
});

test('the traced namespace going away ends the trace with a summary', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  try {
    const pt = await Pathtrace.start(['--netns', lab.server.netns]);
    lab.destroy();
    const { code, records } = await pt.done();
    assert.equal(code, 0);
    assert.equal((records.at(-1) as Summary).stopped_by, 'netns-gone');
  } finally {
    lab.destroy();
  }
});

test('a flood while pathtrace is stalled fills the ring buffer: lost events are counted, said loudly, and the journeys they touch marked', async (t) => {
  if (!needsRoot(t)) return;
  const loadgen = path.join(ROOT, 'build', 'pathtrace-loadgen');
  const lab = new Lab();
  try {
    const sink = spawn('ip', ['netns', 'exec', lab.server.netns, loadgen, 'udp-sink', '7000', '3'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    await new Promise((r) => sink.stdout!.once('data', r));
    const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', '7000', '--ring-mib', '1', '--quiet']);
    const flood = spawn(
      'ip',
      ['netns', 'exec', lab.client.netns, loadgen, 'udp-flood', lab.server.v4, '7000', '1.5', '18'],
      { stdio: 'ignore' },
    );
    // Stopped (as a machine under memory pressure or a debugger would), the reader of the ring falls behind.
    await sleep(300);
    pt.child.kill('SIGSTOP');
    await sleep(500);
    pt.child.kill('SIGCONT');
    await new Promise((r) => flood.on('exit', r));
    const { code, records } = await pt.stop();
    sink.kill();
    assert.equal(code, 0);
    const summary = records.at(-1) as Summary;
    assert.ok(summary.lost_events > 0, 'the 1 MiB ring overflowed');
    assert.ok(summary.incomplete > 0, 'journeys under way are marked');
    assert.ok(summary.events > 0);
  } finally {
    lab.destroy();
  }
});

test('a reader of stdout that falls behind costs bounded memory: records are skipped and said; a stalled one does not keep pathtrace alive, and a second Ctrl-C ends it at once', async (t) => {
  if (!needsRoot(t)) return;
  const loadgen = path.join(ROOT, 'build', 'pathtrace-loadgen');
  const lab = new Lab();
  try {
    // Side by side: the peak of a reader that keeps up, under the same flood, is what a fallen-behind one may
    // add its backlog to (and the heap's slack); unbounded, the backlog reached 1.15 GB in 20 s.
    let keepingUp = 0;
    for (const reader of ['keeping up', 'slow', 'stalled', 'stalled, Ctrl-C twice'] as const) {
      const sink = spawn('ip', ['netns', 'exec', lab.server.netns, loadgen, 'udp-sink', '7000', '4'], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      await new Promise((r) => sink.stdout!.once('data', r));
      // stdout is a pipe nobody reads yet: its 64 KiB fill at once, the rest waits in pathtrace.
      const pt = spawn(process.execPath, [BIN, '--json', '--netns', lab.server.netns, '--port', '7000'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      pt.stderr!.on('data', (d) => {
        stderr += d;
      });
      let head = '';
      const onData = (d: Buffer) => {
        head += d;
      };
      pt.stdout!.on('data', onData);
      while (!head.includes('"ready"') && pt.exitCode === null) await sleep(20);
      pt.stdout!.off('data', onData);
      if (reader === 'keeping up') pt.stdout!.resume();
      else pt.stdout!.pause();
      const flood = spawn(
        'ip',
        ['netns', 'exec', lab.client.netns, loadgen, 'udp-flood', lab.server.v4, '7000', '3', '18'],
        { stdio: 'ignore' },
      );
      await new Promise((r) => flood.on('exit', r));
      sink.kill();
      const peak = peakMiB(pt.pid!);
      const exited = new Promise<number | null>((r) => pt.on('exit', (c) => r(c)));
      if (reader === 'keeping up') {
        keepingUp = peak;
        pt.kill('SIGINT');
        assert.equal(await exited, 0);
        continue;
      }
      // ~1 KB per packet record at this rate is hundreds of MB a second: only the 16 MiB backlog may be added.
      const bound = keepingUp + (BACKLOG_BYTES >> 20) + 112;
      t.diagnostic(`${reader} reader: peak RSS ${peak.toFixed(0)} MiB, keeping up ${keepingUp.toFixed(0)} MiB`);
      assert.ok(
        peak < bound,
        `${reader} reader: peak RSS ${peak.toFixed(0)} MiB, ${keepingUp.toFixed(0)} MiB keeping up (bound ${bound.toFixed(0)})`,
      );
      pt.kill('SIGINT');
      if (reader === 'slow') {
        await sleep(1000);
        let out = '';
        pt.stdout!.on('data', (d) => {
          out += d;
        });
        const ended = new Promise((r) => pt.stdout!.on('end', r));
        pt.stdout!.resume();
        assert.equal(await exited, 0);
        await ended;
        const records = out
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l));
        const notes = records.filter((r) => r.type === 'note').map((r) => r.message as string);
        assert.ok(
          notes.some((m) => /stdout's reader fell behind \(16 MiB waiting\): packet records are skipped/.test(m)),
          notes.join('\n'),
        );
        const skipped = Number(
          /^(\d+) packet records in all were skipped/.exec(notes.find((m) => /in all were skipped/.test(m)) ?? '')?.[1],
        );
        const summary = records.at(-1) as Summary;
        assert.equal(summary.type, 'summary');
        assert.ok(
          skipped > 0 && summary.packets === records.filter((r) => r.type === 'packet').length + skipped,
          `the summary counts every packet: ${summary.packets} = written + ${skipped} skipped`,
        );
        assert.equal(summary.output_skipped, skipped);
      } else if (reader === 'stalled') {
        // Never read: pathtrace exits once the reader has taken nothing for 3 s, everything detached.
        assert.equal(await exited, 0);
        assert.match(stderr, /stdout's reader took nothing for 3 s: exiting without the last \d+ bytes/);
        assert.deepEqual(pathtraceLinks(), []);
      } else {
        await sleep(500);
        pt.kill('SIGINT');
        assert.equal(await exited, 130);
        assert.match(stderr, /stopped at once \(second signal\); everything it attached is detached/);
        assert.doesNotMatch(stderr, /took nothing for 3 s/);
        assert.deepEqual(pathtraceLinks(), []);
      }
    }
  } finally {
    lab.destroy();
  }
});
