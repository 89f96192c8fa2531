// pathtrace merge on real traces: a client and a server namespace joined through a router namespace that
// neither traces; one pathtrace in each end, real rules and real traffic, then `pathtrace merge --json`
// says where between the two each packet went.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import type { HostRecord, MergeRecord } from '../../src/output/records.js';
import {
  isType,
  needsRoot,
  parseRecords,
  Pathtrace,
  pathtraceLinks,
  runCli,
  sleep,
  SLOWDOWN,
  type Clock,
  type Present,
  type Trip,
} from '../helpers/pathtrace.js';

interface Case {
  /** Rules and settings, before the traces start. */
  setup?: (lab: Lab) => void;
  /** The port the client connects to and the client's trace filters on; the server's port (a DNAT between). */
  port?: number;
  serverPort?: number;
  /** The address the client connects to (default: the server's). */
  to?: (lab: Lab) => string;
  /** Each trace also --write's a pcapng file, merged too (its records have no steps). */
  write?: boolean;
}

interface Merged {
  /** Each end's trace, compact, for a failure's message: its packets' times, flags, fates and points, its summary's
   *  lost events. */
  traces: string;
  trips: Trip[];
  clock: Clock;
  text: string;
  connected: boolean;
  written?: Trip[];
}

async function across(t: TestContext, c: Case): Promise<Merged> {
  const lab = new Lab({ router: true });
  t.after(() => lab.destroy());
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-merge-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const port = c.port ?? 3306,
    serverPort = c.serverPort ?? port;
  c.setup?.(lab);
  await lab.listen('tcp', serverPort);
  const pcapng = ['client', 'server'].map((n) => path.join(dir, `${n}.pcapng`));
  const write = (i: number) => (c.write ? ['--write', pcapng[i]] : []);
  const client = await Pathtrace.start(['--netns', lab.client.netns, '--port', String(port), ...write(0)]);
  const server = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(serverPort), ...write(1)]);
  const r = await lab.connect('tcp', c.to?.(lab) ?? lab.server.v4, port, 2500 * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  const files = ['client', 'server'].map((n) => path.join(dir, `${n}.ndjson`));
  const [a, b] = [await client.stop(), await server.stop()];
  writeFileSync(files[0], a.stdout);
  writeFileSync(files[1], b.stdout);
  const json = runCli(['merge', '--json', `client=${files[0]}`, `server=${files[1]}`]);
  assert.equal(json.code, 0, json.stderr);
  const records = parseRecords(json.stdout);
  const text = runCli(['merge', `client=${files[0]}`, `server=${files[1]}`]);
  assert.equal(text.code, 0, text.stderr);
  const written = c.write ? runCli(['merge', '--json', `client=${pcapng[0]}`, `server=${pcapng[1]}`]) : null;
  assert.equal(written?.code ?? 0, 0, written?.stderr);
  const compact = (ndjson: string) =>
    parseRecords(ndjson)
      .map((r) =>
        r.type === 'packet'
          ? `${r.time.slice(11)} ${r.tcp_flags} ${r.fate} ${r.steps.map((s) => s.point).join(',')}`
          : r.type === 'summary'
            ? `summary: ${r.lost_events} lost events`
            : '',
      )
      .filter(Boolean)
      .join('\n');
  return {
    traces: `client:\n${compact(a.stdout)}\nserver:\n${compact(b.stdout)}`,
    trips: records.filter(isType('trip')),
    clock: records.find(isType('clock'))!,
    text: text.stdout,
    connected: r.ok,
    written: written ? parseRecords(written.stdout).filter(isType('trip')) : undefined,
  };
}

const paths = (m: Merged) => m.trips.map((t) => `${t.from}→${t.to} [${t.tcp_flags}] ${t.path}`);
const only = (m: Merged, want: string) => {
  assert.ok(m.trips.length >= 2, `the SYN and a retransmission at least:\n${m.text}`);
  assert.deepEqual([...new Set(paths(m))], [want], `${m.text}\n${m.traces}`);
};

test("merge: a drop in the router's FORWARD is loss on the path: left the client's device, never reached the server's", async (t) => {
  if (!needsRoot(t)) return;
  const m = await across(t, {
    setup: (lab) =>
      lab.exec(lab.router!.netns, 'iptables', ['-A', 'FORWARD', '-p', 'tcp', '--dport', '3306', '-j', 'DROP']),
  });
  assert.equal(m.connected, false);
  only(m, 'client→server [S] lost-on-path');
  for (const trip of m.trips) {
    assert.equal(trip.sent.fate, 'sent');
    assert.equal(trip.received, null);
  }
  assert.match(m.text, /\[S\] ×\d+ lost on the path \(client → server\)/);
  assert.match(m.text, /left client's eth0 · never reached server: lost on the path/);
});

test("merge: a device on the path that drops (the router's ingress) is loss on the path too", async (t) => {
  if (!needsRoot(t)) return;
  const m = await across(t, {
    setup: (lab) =>
      lab.exec(
        lab.router!.netns,
        'nft',
        ['-f', '-'],
        'table netdev wire {\n  chain in {\n    type filter hook ingress device "eth-cli" priority 0;\n    tcp dport 3306 drop\n  }\n}\n',
      ),
  });
  only(m, 'client→server [S] lost-on-path');
});

test("merge: loss on the path by netem on the router's link", async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab({ router: true });
  const probe = spawnSync(
    'ip',
    ['netns', 'exec', lab.router!.netns, 'tc', 'qdisc', 'add', 'dev', 'eth-srv', 'root', 'netem', 'loss', '100%'],
    { encoding: 'utf8' },
  );
  lab.destroy();
  if (probe.status !== 0) {
    t.skip(`this kernel has no netem qdisc (sch_netem): ${probe.stderr.trim()}`);
    return;
  }
  const m = await across(t, {
    setup: (l) => l.exec(l.router!.netns, 'tc', ['qdisc', 'add', 'dev', 'eth-srv', 'root', 'netem', 'loss', '100%']),
  });
  only(m, 'client→server [S] lost-on-path');
});

test("merge: a drop in the client's OUTPUT never left the client", async (t) => {
  if (!needsRoot(t)) return;
  const m = await across(t, {
    setup: (lab) =>
      lab.exec(lab.client.netns, 'iptables', ['-A', 'OUTPUT', '-p', 'tcp', '--dport', '3306', '-j', 'DROP']),
  });
  only(m, 'client→server [S] dropped-at-sender');
  for (const trip of m.trips) assert.deepEqual([trip.sent.drop.hook, trip.sent.drop.chain], ['LOCAL_OUT', 'OUTPUT']);
});

test("merge: a full queue on the client's device never left the client", async (t) => {
  if (!needsRoot(t)) return;
  const m = await across(t, {
    setup: (lab) => lab.exec(lab.client.netns, 'tc', ['qdisc', 'add', 'dev', 'eth0', 'root', 'pfifo', 'limit', '0']),
  });
  only(m, 'client→server [S] dropped-at-sender');
  for (const trip of m.trips) assert.equal(trip.sent.drop.layer, 'qdisc');
});

test("merge: the client's device drops (its veth peer is down): never left the client, and its tx_dropped moved", async (t) => {
  if (!needsRoot(t)) return;
  const m = await across(t, { setup: (lab) => lab.exec(lab.router!.netns, 'ip', ['link', 'set', 'eth-cli', 'down']) });
  only(m, 'client→server [S] dropped-at-sender');
  assert.match(m.text, /client's counters of loss \(netstat -s, ip -s link, softnet_stat\): .*eth0\.tx_dropped \+\d+/);
});

test("merge: a drop in the server's INPUT reached the server's device and died there (from --json outputs and --write files)", async (t) => {
  if (!needsRoot(t)) return;
  const m = await across(t, {
    write: true,
    setup: (lab) =>
      lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '3306', '-j', 'DROP']),
  });
  only(m, 'client→server [S] dropped-at-receiver');
  assert.deepEqual(
    m.written!.map((x) => x.path),
    m.trips.map((x) => x.path),
    'the --write files merge as the --json outputs do',
  );
  for (const trip of m.trips) {
    assert.deepEqual([trip.received.drop.hook, trip.received.drop.chain], ['LOCAL_IN', 'INPUT']);
    assert.ok(trip.received.at_us >= trip.sent.at_us - 1000, 'arrival after departure, on one clock');
  }
});

test("merge: a drop in the server's OUTPUT: the SYNs arrive, the SYN-ACKs never leave the server", async (t) => {
  if (!needsRoot(t)) return;
  const m = await across(t, {
    setup: (lab) =>
      lab.exec(lab.server.netns, 'iptables', ['-A', 'OUTPUT', '-p', 'tcp', '--sport', '3306', '-j', 'DROP']),
  });
  assert.deepEqual(
    [...new Set(paths(m))].sort(),
    ['client→server [S] delivered', 'server→client [SA] dropped-at-sender'],
    m.text,
  );
  for (const trip of m.trips.filter((x) => x.from === 'server')) assert.equal(trip.sent.drop.hook, 'LOCAL_OUT');
});

test("merge: through a DNAT in the router the two ends name the flow differently; TCP's content matches them", async (t) => {
  if (!needsRoot(t)) return;
  const m = await across(t, {
    port: 80,
    serverPort: 8080,
    to: (lab) => lab.router!.toClient.v4,
    setup: (lab) =>
      lab.exec(lab.router!.netns, 'iptables', [
        '-t',
        'nat',
        '-A',
        'PREROUTING',
        '-p',
        'tcp',
        '--dport',
        '80',
        '-j',
        'DNAT',
        '--to-destination',
        `${lab.server.v4}:8080`,
      ]),
  });
  assert.equal(m.connected, true, m.text);
  assert.deepEqual([...new Set(m.trips.map((x) => x.path))], ['delivered'], m.text);
  assert.ok(
    m.trips.some((x) => x.from === 'client' && x.tcp_flags === 'S' && x.dport === 80),
    m.text,
  );
  assert.ok(
    m.trips.some((x) => x.from === 'server' && x.tcp_flags === 'SA' && x.sport === 8080),
    m.text,
  );
  assert.equal(new Set(m.trips.map((x) => x.flow)).size, 1, 'one connection');
});

test('merge: a clean exchange is delivered both ways, and the clocks (one machine) are within their bounds', async (t) => {
  if (!needsRoot(t)) return;
  const m = await across(t, {});
  assert.equal(m.connected, true);
  assert.deepEqual([...new Set(m.trips.map((x) => x.path))], ['delivered'], m.text);
  assert.ok(m.trips.some((x) => x.from === 'server') && m.trips.some((x) => x.from === 'client'));
  assert.ok(m.clock.pairs >= 4, JSON.stringify(m.clock));
  assert.ok(
    m.clock.lower_us <= 0 && m.clock.upper_us >= 0,
    `one clock: 0 within [${m.clock.lower_us}, ${m.clock.upper_us}] µs`,
  );
});

test('--netns twice: both traced at once, each packet tagged by its namespace, merged at the end; nothing left behind', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab({ router: true });
  t.after(() => lab.destroy());
  lab.exec(lab.router!.netns, 'iptables', ['-A', 'FORWARD', '-p', 'tcp', '--dport', '3306', '-j', 'DROP']);
  await lab.listen('tcp', 3306);
  const pt = await Pathtrace.start(['--netns', lab.client.netns, '--netns', lab.server.netns, '--port', '3306']);
  // Its children's records tagged by namespace, then the merge's.
  const lines = (records: Pathtrace['records']) => records as Present<HostRecord | MergeRecord>[];
  for (let i = 0; i < 200 * SLOWDOWN && lines(pt.records).filter(isType('ready')).length < 2; i++) await sleep(50);
  assert.equal(lines(pt.records).filter(isType('ready')).length, 2, 'a ready record from each');
  assert.deepEqual(
    new Set(
      lines(pt.records)
        .filter(isType('ready'))
        .map((r) => r.host),
    ),
    new Set([lab.client.netns, lab.server.netns]),
  );
  await lab.connect('tcp', lab.server.v4, 3306, 2500 * SLOWDOWN);
  const done = await pt.stop();
  assert.equal(done.code, 0, done.stderr);
  const packets = lines(done.records).filter(isType('packet'));
  assert.ok(packets.length >= 2 && packets.every((p) => p.host === lab.client.netns), 'the SYNs, in the client only');
  const trips = lines(done.records).filter(isType('trip'));
  assert.ok(
    trips.length >= 2 && trips.every((x) => x.path === 'lost-on-path' && x.from === lab.client.netns),
    JSON.stringify(trips),
  );
  assert.equal(lines(done.records).at(-1)?.type, 'merge_summary');
  assert.deepEqual(pathtraceLinks(), [], 'both children detached');
});

test('--netns twice: a namespace that is not there, the same one twice, or with --write: one line, nothing started', (t) => {
  if (!needsRoot(t)) return;
  const cases: [string[], number, RegExp][] = [
    [
      ['--netns', 'no-such-pt-ns', '--netns', 'no-such-pt-ns2'],
      1,
      /^pathtrace: unknown network namespace 'no-such-pt-ns'/,
    ],
    [['--netns', 'a', '--netns', 'a'], 2, /^pathtrace: --netns 'a' twice: give two different namespaces/],
    [
      ['--netns', 'a', '--netns', 'b', '--netns', 'c'],
      2,
      /^pathtrace: --netns, --container and --pod at most twice in all/,
    ],
    [
      ['--netns', 'a', '--netns', 'b', '--write', '/tmp/x.pcapng'],
      2,
      /^pathtrace: --write with two namespaces: trace each with a --write of its own/,
    ],
  ];
  for (const [args, code, message] of cases) {
    const r = runCli(args);
    assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('--netns twice, the parent killed: its children detach by themselves', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab({ router: true });
  t.after(() => lab.destroy());
  const pt = await Pathtrace.start(['--netns', lab.client.netns, '--netns', lab.server.netns, '--port', '3306']);
  assert.ok(pathtraceLinks().length > 0, 'attached while tracing');
  pt.child.kill('SIGKILL');
  await pt.done();
  let left = pathtraceLinks();
  for (let i = 0; i < 100 * SLOWDOWN && left.length; i++) {
    await sleep(100);
    left = pathtraceLinks();
  }
  assert.deepEqual(left, [], 'the children got SIGTERM when their parent died, and detached');
});

test('pathtrace demo across: the SYNs are lost on the path between client and server', (t) => {
  if (!needsRoot(t)) return;
  const r = runCli(['demo', 'across']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /\[S\] ×\d+ lost on the path \(client → server\)/);
  assert.match(r.stdout, /left client's eth0 · never reached server: lost on the path/);
  assert.match(r.stderr, /lost on the path, in a host neither end traced/);
});
