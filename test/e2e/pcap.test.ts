// --write read back by tshark, and `pathtrace compare` against a real
// tcpdump capture of the lab experiments (issue "Compare with tcpdump...").
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import { startNginx } from '../../src/lab/nginx.js';
import { needsRoot, Pathtrace, pathtraceLinks, runCli, sleep, startPlain } from '../helpers/pathtrace.js';

function tools(t: TestContext, ...names: string[]): boolean {
  const missing = names.filter((n) => spawnSync(n, ['--version']).error);
  if (!missing.length) return true;
  t.skip(`needs ${missing.join(', ')} (scripts/setup.sh installs them)`);
  return false;
}

function tshark(file: string, ...args: string[]): string {
  return execFileSync('tshark', ['-r', file, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
}

async function tcpdump(lab: Lab, file: string, port: number): Promise<ChildProcess> {
  const child = spawn(
    'ip',
    [
      'netns',
      'exec',
      lab.server.netns,
      'tcpdump',
      '-i',
      'eth0',
      '-nn',
      '-U',
      '--immediate-mode',
      '-w',
      file,
      'tcp',
      'port',
      String(port),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await new Promise<void>((resolve) =>
    child.stderr!.on('data', (d) => {
      if (String(d).includes('listening on')) resolve();
    }),
  );
  return child;
}

function tmp(t: TestContext): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'pathtrace-pcap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs the local-out (or app-response) scenario with tcpdump and pathtrace --json --write side by side. */
async function scenario(t: TestContext, kind: 'local-out' | 'app-response') {
  const dir = tmp(t);
  const files = {
    cap: path.join(dir, 'tcpdump.pcap'),
    json: path.join(dir, 'trace.ndjson'),
    pcapng: path.join(dir, 'trace.pcapng'),
  };
  const lab = new Lab();
  t.after(() => lab.destroy());
  const port = kind === 'local-out' ? 3306 : 80;
  if (kind === 'local-out') {
    lab.exec(lab.server.netns, 'iptables', ['-I', 'OUTPUT', '-p', 'tcp', '--sport', '3306', '-j', 'DROP']);
    await lab.listen('tcp', 3306);
  } else {
    lab.sysctl(lab.server.netns, 'net.ipv4.tcp_orphan_retries', '1');
    await startNginx(lab, lab.server, 80);
    lab.exec(lab.server.netns, 'iptables', [
      '-I',
      'OUTPUT',
      '-p',
      'tcp',
      '--sport',
      '80',
      '--tcp-flags',
      'SYN',
      'NONE',
      '-j',
      'DROP',
    ]);
  }
  const td = await tcpdump(lab, files.cap, port);
  const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(port), '--write', files.pcapng]);
  await lab.connect(
    'tcp',
    lab.server.v4,
    port,
    2500,
    lab.client,
    ...(kind === 'app-response' ? ['--send', 'GET / HTTP/1.0\r\n\r\n'] : []),
  );
  await sleep(300);
  const { records, code } = await pt.stop();
  assert.equal(code, 0);
  td.kill('SIGINT');
  await new Promise((r) => td.on('exit', r));
  writeFileSync(files.json, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return { files, records, packets: records.filter((r) => r.type === 'packet') };
}

test('--write: tshark reads every packet, its fate in a comment, nothing malformed', async (t) => {
  if (!needsRoot(t) || !tools(t, 'tshark', 'tcpdump')) return;
  const { files, packets, records } = await scenario(t, 'local-out');
  const rows = tshark(
    files.pcapng,
    '-T',
    'fields',
    '-E',
    'separator=|',
    '-e',
    'frame.interface_name',
    '-e',
    'ip.src',
    '-e',
    'tcp.flags.str',
    '-e',
    'frame.comment',
  )
    .trim()
    .split('\n')
    .map((l) => l.split('|'));
  assert.equal(rows.length, packets.length, 'one frame per packet');
  assert.ok(records.some((r) => r.type === 'note' && new RegExp(`wrote ${packets.length} packets`).test(r.message)));
  packets.forEach((p, i) => {
    const [ifname, src, , comment] = rows[i];
    assert.equal(ifname, 'eth0');
    assert.equal(src, p.src);
    if (p.tcp_flags === 'SA') {
      assert.match(
        comment,
        /^pathtrace: dropped at LOCAL_OUT: NETFILTER_DROP \(nft_do_chain\), filter\/OUTPUT rule 1; tcpdump did not see it/,
      );
    } else {
      assert.match(comment, /^pathtrace: delivered; tcpdump saw it \(eth0\)/);
    }
  });
  assert.equal(
    tshark(
      files.pcapng,
      '-Y',
      '_ws.malformed || _ws.expert.severity >= "error"',
      '-T',
      'fields',
      '-e',
      'frame.number',
    ).trim(),
    '',
  );
  // Bytes as pathtrace saw them: the TCP sequence numbers are the packets'.
  const seqs = tshark(files.pcapng, '-o', 'tcp.relative_sequence_numbers:FALSE', '-T', 'fields', '-e', 'tcp.seq')
    .trim()
    .split('\n')
    .map(Number);
  assert.deepEqual(
    seqs,
    packets.map((p) => p.seq),
  );
});

test('compare, local-out: the captured SYNs were delivered; the SYN-ACKs are listed as handled but never captured', async (t) => {
  if (!needsRoot(t) || !tools(t, 'tcpdump')) return;
  const { files, packets } = await scenario(t, 'local-out');
  for (const trace of [files.json, files.pcapng]) {
    const r = runCli(['compare', files.cap, trace]);
    assert.equal(r.code, 0, r.stderr);
    const syns = packets.filter((p) => p.tcp_flags === 'S');
    const synacks = packets.filter((p) => p.tcp_flags === 'SA');
    assert.match(r.stdout, new RegExp(`^${syns.length} frames in .*, ${packets.length} packets in `));
    assert.equal((r.stdout.match(/\[S\] seq \d+ +delivered \(pathtrace #\d+\)/g) ?? []).length, syns.length);
    assert.match(r.stdout, new RegExp(`Handled by the kernel but not in the capture \\(${synacks.length}\\):`));
    assert.equal(
      (
        r.stdout.match(
          /out \[SA\] .*: dropped at LOCAL_OUT \(NETFILTER_DROP, nft_do_chain\) by filter\/OUTPUT: iptables -A OUTPUT .*; it never reached a capture point/g,
        ) ?? []
      ).length,
      synacks.length,
    );
    assert.match(r.stdout, /Frames pathtrace could not match \(0\):/);
  }
});

test('compare, app-response: the request was read by nginx; the response and FIN never reached the capture', async (t) => {
  if (!needsRoot(t) || !tools(t, 'tcpdump', 'nginx')) return;
  const { files } = await scenario(t, 'app-response');
  const r = runCli(['compare', files.cap, files.json]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /198\.18\.0\.1\.\d+ > 198\.18\.0\.2\.80 \[PA\] seq \d+ +delivered \(pathtrace #\d+\)/);
  assert.match(
    r.stdout,
    /out \[FPA\] 198\.18\.0\.2:80 → 198\.18\.0\.1:\d+: dropped at LOCAL_OUT .*; it never reached a capture point/,
  );
  assert.match(r.stdout, /out \[PA\] 198\.18\.0\.2:80 → .*: dropped at LOCAL_OUT/);
});

test('compare: frames outside the filter are named so; bad files get one line and exit 1', async (t) => {
  if (!needsRoot(t) || !tools(t, 'tcpdump')) return;
  const dir = tmp(t);
  const lab = new Lab();
  t.after(() => lab.destroy());
  await lab.listen('tcp', 3306);
  await lab.listen('tcp', 8080);
  const cap = path.join(dir, 'all.pcap');
  const td = spawn(
    'ip',
    ['netns', 'exec', lab.server.netns, 'tcpdump', '-i', 'eth0', '-nn', '-U', '--immediate-mode', '-w', cap, 'tcp'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  await new Promise<void>((resolve) =>
    td.stderr!.on('data', (d) => {
      if (String(d).includes('listening on')) resolve();
    }),
  );
  const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', '3306']);
  await lab.connect('tcp', lab.server.v4, 3306, 1000);
  await lab.connect('tcp', lab.server.v4, 8080, 1000);
  await sleep(200);
  const { records } = await pt.stop();
  td.kill('SIGINT');
  await new Promise((r) => td.on('exit', r));
  const json = path.join(dir, 'trace.ndjson');
  writeFileSync(json, records.map((r) => JSON.stringify(r)).join('\n'));
  const r = runCli(['compare', cap, json]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /frame \d+: 198\.18\.0\.1\.\d+ > 198\.18\.0\.2\.8080 \[S\] seq \d+: outside pathtrace's filter/,
  );
  assert.doesNotMatch(r.stdout, /3306 .*: outside/);

  const bytes = readFileSync(cap);
  const files = {
    empty: path.join(dir, 'empty.pcap'),
    text: path.join(dir, 'notes.txt'),
    cut: path.join(dir, 'cut.pcap'),
  };
  writeFileSync(files.empty, '');
  writeFileSync(files.text, 'hello, this is not a capture\n');
  writeFileSync(files.cut, bytes.subarray(0, bytes.length - 10));
  const cases: [string[], RegExp][] = [
    [['compare', files.empty, json], /^pathtrace: .*empty\.pcap is empty$/],
    [
      ['compare', files.text, json],
      /^pathtrace: .*notes\.txt is not a pcap or pcapng file \(it starts with 68656c6c\)$/,
    ],
    [
      ['compare', files.cut, json],
      /^pathtrace: .*cut\.pcap is truncated: packet \d+ is cut short \(\d+ complete packets before it\)$/,
    ],
    [['compare', path.join(dir, 'nope.pcap'), json], /^pathtrace: cannot read .*nope\.pcap: no such file$/],
    [
      ['compare', cap, files.text],
      /^pathtrace: .*notes\.txt is neither pathtrace's --json output nor a --write file \(line 1 is not a JSON record\)$/,
    ],
    [['compare', cap], /^pathtrace: compare takes two files/],
  ];
  for (const [args, re] of cases) {
    const out = runCli(args);
    assert.notEqual(out.code, 0, args.join(' '));
    assert.match(out.stderr.trimEnd(), re);
    assert.equal(out.stderr.trimEnd().split('\n').length, 1);
  }

  // A valid header, then zeros (a sparse file): 16-byte empty records, each a frame. The frames compared are
  // bounded (it grew to 4.7 GB and died out of memory at 200 MB); the rest are counted and said.
  const sparse = path.join(dir, 'sparse.pcap');
  const frames = 250_000;
  const zeros = Buffer.alloc(24 + frames * 16);
  bytes.copy(zeros, 0, 0, 24);
  writeFileSync(sparse, zeros);
  const big = runCli(['compare', sparse, json], { timeout: 120_000 });
  assert.equal(big.code, 0, big.stderr);
  assert.match(big.stdout, /^compared the first 200000 frames of .*sparse\.pcap \(50000 more left out; /);
  assert.match(big.stdout, /^200000 frames in /m);
});

/** tcpdump processes of --with-tcpdump (their capture files live in pathtrace-capture-* directories). */
function liveCaptures(): { pids: string; dirs: string[] } {
  const pids = spawnSync('pgrep', ['-f', 'pathtrace-capture-'], { encoding: 'utf8' }).stdout.trim();
  return { pids, dirs: readdirSync(tmpdir()).filter((f) => f.startsWith('pathtrace-capture-')) };
}

// The filter as options, and as an expression (handed to tcpdump verbatim).
for (const filter of [['--port', '3306'], ['tcp port 3306']]) {
  test(`--with-tcpdump, filter ${filter.join(' ')}: tcpdump runs beside the trace; at the end the comparison shows the SYN-ACKs it could not see`, async (t) => {
    if (!needsRoot(t) || !tools(t, 'tcpdump')) return;
    const lab = new Lab();
    t.after(() => lab.destroy());
    lab.exec(lab.server.netns, 'iptables', ['-I', 'OUTPUT', '-p', 'tcp', '--sport', '3306', '-j', 'DROP']);
    await lab.listen('tcp', 3306);
    const pt = await startPlain(['--netns', lab.server.netns, ...filter, '--with-tcpdump', 'eth0']);
    assert.ok(liveCaptures().pids, 'tcpdump runs while tracing');
    await lab.connect('tcp', lab.server.v4, 3306, 2500);
    await sleep(300);
    pt.child.kill('SIGINT');
    assert.equal(await pt.exit, 0, pt.err());
    const out = pt.out();
    const syns = (out.match(/^[\d:.]+ in +SYN 198/gm) ?? []).length;
    const synacks = (out.match(/^[\d:.]+ out SYN-ACK 198/gm) ?? []).length;
    assert.ok(syns >= 2 && synacks >= 2, `SYNs and SYN-ACKs traced:\n${out}`);
    const cmp = out.slice(out.indexOf('── compared with tcpdump -i eth0'));
    assert.match(
      cmp,
      new RegExp(
        `^── compared with tcpdump -i eth0\\n${syns} frames in tcpdump -i eth0, ${syns + synacks} packets in this trace`,
      ),
    );
    assert.equal((cmp.match(/\[S\] seq \d+ +delivered \(pathtrace #\d+\)/g) ?? []).length, syns, cmp);
    assert.match(cmp, new RegExp(`Handled by the kernel but not in the capture \\(${synacks}\\):`));
    assert.equal(
      (
        cmp.match(
          /out \[SA\] .*: dropped at LOCAL_OUT \(NETFILTER_DROP, nft_do_chain\) by filter\/OUTPUT: .*; it never reached a capture point/g,
        ) ?? []
      ).length,
      synacks,
      cmp,
    );
    assert.match(cmp, /Frames pathtrace could not match \(0\):/);
    assert.deepEqual(liveCaptures(), { pids: '', dirs: [] }, 'no tcpdump and no capture file left');
  });
}

test('--with-tcpdump: tcpdump dies with pathtrace, even by SIGKILL; an unknown interface is one line', async (t) => {
  if (!needsRoot(t) || !tools(t, 'tcpdump')) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  const pt = await startPlain(['--netns', lab.server.netns, '--port', '3306', '--with-tcpdump', 'eth0']);
  assert.ok(liveCaptures().pids, 'tcpdump runs while tracing');
  assert.deepEqual(liveCaptures().dirs, [], 'its file is unlinked once open');
  pt.child.kill('SIGKILL');
  await pt.exit;
  for (let i = 0; i < 50 && liveCaptures().pids; i++) await sleep(100);
  assert.deepEqual(liveCaptures(), { pids: '', dirs: [] });
  assert.deepEqual(pathtraceLinks(), []);

  const r = runCli(['--netns', lab.server.netns, '--port', '3306', '--with-tcpdump', 'nosuch0', '--duration', '1']);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'pathtrace: tcpdump -i nosuch0 failed: nosuch0: No such device exists\n');
  assert.deepEqual(liveCaptures(), { pids: '', dirs: [] });
  assert.deepEqual(pathtraceLinks(), []);
});
