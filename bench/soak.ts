// `npm run soak` (as root, not in CI): pathtrace under the conditions a hostile user or a bad day brings,
// each checked for what it must leave: a UDP flood, a reader of stdout that stalls, --with-tcpdump through
// the flood, two instances side by side, SIGKILL at random moments of --rule-trace, the traced namespace
// deleted mid-trace. Prints a table of what was checked and what was found.
//   npm run soak -- [--seconds S] [--kills N]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Lab } from '../src/lab/lab.js';
import { nftMonitors, pathtraceLinks, peakMiB } from '../test/helpers/pathtrace.js';
import { BIN, ROOT } from '../test/helpers/paths.js';

const LOADGEN = path.join(ROOT, 'build', 'pathtrace-loadgen');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  check: string;
  found: string;
  ok: boolean;
}

interface Started {
  child: ChildProcess;
  out(): string;
  err(): string;
  exited: Promise<number | string | null>;
}

/** pathtrace with --json (or --plain, as --with-tcpdump needs); stdout read unless `stalled`. Resolves once
 *  it is ready; throws if it exits first. */
async function start(args: string[], opts: { stalled?: boolean; plain?: boolean } = {}): Promise<Started> {
  const child = spawn(process.execPath, [BIN, opts.plain ? '--plain' : '--json', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const onData = (d: Buffer) => {
    out += d;
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', (d) => {
    err += d;
  });
  const exited = new Promise<number | string | null>((r) => child.on('exit', (c, sig) => r(c ?? sig)));
  const ready = () => (opts.plain ? /pathtrace: tracing/.test(err) : out.includes('"ready"'));
  while (!ready()) {
    if (child.exitCode !== null) throw new Error(`pathtrace ${args.join(' ')} exited ${child.exitCode}: ${err.trim()}`);
    await sleep(20);
  }
  if (opts.stalled) {
    child.stdout!.off('data', onData);
    child.stdout!.pause();
  }
  return { child, out: () => out, err: () => err, exited };
}

const records = (s: Started) =>
  s
    .out()
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
async function flood(lab: Lab, seconds: number): Promise<void> {
  const sink = spawn('ip', ['netns', 'exec', lab.server.netns, LOADGEN, 'udp-sink', '7000', String(seconds + 1)], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  await new Promise((r) => sink.stdout!.once('data', r));
  const f = spawn(
    'ip',
    ['netns', 'exec', lab.client.netns, LOADGEN, 'udp-flood', lab.server.v4, '7000', String(seconds), '18'],
    { stdio: 'ignore' },
  );
  await new Promise((r) => f.on('exit', r));
  sink.kill();
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string' }, kills: { type: 'string' } } });
  if (process.getuid?.() !== 0) throw new Error('the soak needs root (namespaces, BPF)');
  const seconds = Number(values.seconds ?? 10);
  const kills = Number(values.kills ?? 10);
  const rows: Row[] = [];
  const row = (check: string, found: string, ok: boolean) => {
    rows.push({ check, found, ok });
    process.stderr.write(`${ok ? 'ok  ' : 'FAIL'} ${check}: ${found}\n`);
  };
  const lab = new Lab();
  try {
    // A flood, traced in full.
    {
      const pt = await start(['--netns', lab.server.netns, '--port', '7000', '--quiet']);
      await flood(lab, seconds);
      const peak = peakMiB(pt.child.pid!);
      pt.child.kill('SIGINT');
      const code = await pt.exited;
      const s = records(pt).at(-1);
      row(
        `UDP flood, ${seconds} s, tracing all`,
        `exit ${code}, ${s.packets} packets, ${s.lost_events} events lost (counted), peak RSS ${peak.toFixed(0)} MiB, links left ${pathtraceLinks().length}`,
        code === 0 && s.type === 'summary' && pathtraceLinks().length === 0,
      );
    }
    // A reader of stdout that stalls during the flood.
    {
      const pt = await start(['--netns', lab.server.netns, '--port', '7000'], { stalled: true });
      await flood(lab, seconds);
      const peak = peakMiB(pt.child.pid!);
      const stopped = Date.now();
      pt.child.kill('SIGINT');
      const code = await pt.exited;
      row(
        `stdout never read, ${seconds} s flood`,
        `peak RSS ${peak.toFixed(0)} MiB, exit ${code} ${((Date.now() - stopped) / 1000).toFixed(1)} s after SIGINT, links left ${pathtraceLinks().length}`,
        code === 0 && peak < 400 && pathtraceLinks().length === 0,
      );
    }
    // --with-tcpdump through the flood: its comparison at the end is linear, and the exit prompt.
    {
      const pt = await start(['--netns', lab.server.netns, '--port', '7000', '--quiet', '--with-tcpdump', 'eth0'], {
        plain: true,
      });
      await flood(lab, seconds);
      const peak = peakMiB(pt.child.pid!);
      const stopped = Date.now();
      pt.child.kill('SIGINT');
      const code = await pt.exited;
      const took = (Date.now() - stopped) / 1000;
      const frames = /^(\d+) frames in tcpdump/m.exec(pt.out())?.[1] ?? '?';
      const tcpdumps = spawnSync('pgrep', ['-f', 'pathtrace-capture-'], { encoding: 'utf8' }).stdout.trim();
      row(
        `--with-tcpdump eth0 through a ${seconds} s flood`,
        `exit ${code} ${took.toFixed(1)} s after SIGINT, ${frames} frames compared, peak RSS ${peak.toFixed(0)} MiB, tcpdump left ${tcpdumps ? 'yes' : 'no'}`,
        code === 0 && took < 30 && frames !== '?' && !tcpdumps && pathtraceLinks().length === 0,
      );
    }
    // Two instances side by side see the same packets.
    {
      await lab.listen('tcp', 7001);
      const a = await start(['--netns', lab.server.netns, '--port', '7001', '--quiet']);
      const b = await start(['--netns', lab.server.netns, '--port', '7001', '--quiet']);
      for (let i = 0; i < 50; i++) await lab.connect('tcp', lab.server.v4, 7001, 300);
      await sleep(500);
      a.child.kill('SIGINT');
      b.child.kill('SIGINT');
      const [ca, cb] = [await a.exited, await b.exited];
      const [sa, sb] = [records(a).at(-1), records(b).at(-1)];
      row(
        'two instances on one namespace, 50 connections',
        `exit ${ca}/${cb}, ${sa.packets}/${sb.packets} packets`,
        ca === 0 && cb === 0 && sa.packets === sb.packets && sa.packets >= 150,
      );
    }
    // SIGKILL at random moments of a --rule-trace start; each next run removes what the killed one left.
    {
      let leftTables = 0;
      let worst = 0;
      for (let i = 0; i < kills; i++) {
        const child = spawn(
          process.execPath,
          [BIN, '--json', '--netns', lab.server.netns, '--port', '7000', '--rule-trace'],
          { stdio: 'ignore' },
        );
        const exited = new Promise((r) => child.on('exit', r));
        await sleep(Math.floor(Math.random() * 1500));
        child.kill('SIGKILL');
        await exited;
        await sleep(100);
        worst = Math.max(worst, pathtraceLinks().length + nftMonitors().length);
      }
      const after = await start(['--netns', lab.server.netns, '--port', '7000', '--rule-trace']);
      after.child.kill('SIGINT');
      await after.exited;
      leftTables = (lab.exec(lab.server.netns, 'nft', ['list', 'tables']).match(/pathtrace_/g) ?? []).length;
      row(
        `SIGKILL at ${kills} random moments of --rule-trace`,
        `probes or nft monitors left after a kill: ${worst}; tables left after the next run: ${leftTables}`,
        worst === 0 && leftTables === 0,
      );
    }
    // The traced namespace deleted mid-trace.
    {
      const doomed = new Lab();
      const pt = await start(['--netns', doomed.server.netns]);
      doomed.destroy();
      const code = await pt.exited;
      const s = records(pt).at(-1);
      row(
        'namespace deleted mid-trace',
        `exit ${code}, stopped_by ${s.stopped_by}, links left ${pathtraceLinks().length}`,
        code === 0 && s.stopped_by === 'netns-gone' && pathtraceLinks().length === 0,
      );
    }
  } finally {
    lab.destroy();
  }
  const w = Math.max(...rows.map((r) => r.check.length));
  console.log(`pathtrace soak and faults (${new Date().toISOString().slice(0, 10)})\n`);
  for (const r of rows) console.log(`${r.ok ? 'ok  ' : 'FAIL'}  ${r.check.padEnd(w)}  ${r.found}`);
  process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
}

main().catch((e) => {
  process.stderr.write(`soak: ${(e as Error).message}\n`);
  process.exitCode = 1;
});
