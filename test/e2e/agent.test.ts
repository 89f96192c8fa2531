// pathtrace agent behind the real Prometheus (Debian's package, run here on 127.0.0.1 with a configuration of the
// test's own): a DROP rule in a namespace of the test drops SYNs, and Prometheus' query API shows the counter with
// that namespace's, hook's, table's, chain's and rule's labels grown by exactly what the rule's own counter counted.
// And the same over OTLP/HTTP to a receiver of the test's own (Debian packages no collector), which decodes what
// the agent's OpenTelemetry SDK sends: the metric's data point and the drop's log record.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { Lab } from '../../src/lab/lab.js';
import { onPath } from '../../src/trace/tools.js';
import {
  addDropRule,
  agentPrograms,
  assertAgentGone,
  freePort,
  PORT,
  query,
  RULE,
  ruleCount,
  started,
  startAgent,
  waitFor,
} from '../helpers/agent.js';
import { needsRoot, runCli } from '../helpers/pathtrace.js';

test('the agent behind Prometheus: drops by namespace, hook, table, chain and rule, as the rule counted them', async (t) => {
  if (!needsRoot(t)) return;
  const missing = ['prometheus', 'promtool', 'bpftool'].filter((p) => !onPath(p, `${process.env.PATH}:/usr/sbin`));
  if (missing.length) return t.skip(`needs ${missing.join(', ')} (bash scripts/setup.sh installs them)`);
  const lab = new Lab();
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-prom-'));
  const children: ChildProcess[] = [];
  t.after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const srv = lab.server.netns;
  addDropRule(lab);
  const agent = await startAgent();
  children.push(agent.child);
  const agentPort = new URL(agent.url).port;

  const promPort = await freePort();
  writeFileSync(
    path.join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: pathtrace\n    static_configs:\n      - targets: ['127.0.0.1:${agentPort}']\n`,
  );
  const promChild = spawn(
    'prometheus',
    [
      `--config.file=${path.join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(promChild);
  const prom = started(promChild);
  const prometheus = `http://127.0.0.1:${promPort}`;
  await waitFor('Prometheus scraping the agent', () => query(prometheus, 'up{job="pathtrace"} == 1'), 30_000).catch(
    (e: Error) => assert.fail(`${e.message}: ${prom.output()}`),
  );

  // SYNs to the dropped port, each connection's retransmissions too.
  const tries = await Promise.all([1, 2, 3].map(() => lab.connect('tcp', lab.server.v4, PORT, 1500)));
  assert.ok(
    tries.every((r) => !r.ok),
    'the rule dropped them',
  );
  const dropped = ruleCount(lab, srv);
  assert.ok(dropped >= 3, `the rule counted ${dropped}`);

  const series =
    `pathtrace_drops_total{netns="${srv}",device="eth0",stage="netfilter",hook="LOCAL_IN",` +
    `reason="NETFILTER_DROP",table="filter",chain="INPUT",rule="${RULE}",protocol="tcp"}`;
  const seen = await waitFor(
    `${series} at ${dropped}`,
    async () => {
      const v = await query(prometheus, series);
      return v === dropped ? v : undefined;
    },
    20_000,
  ).catch(async (e: Error) =>
    assert.fail(
      `${e.message}; the agent said:\n${agent.output()}\nand serves:\n` +
        (await agent.metrics()).replace(/^#.*\n/gm, '').slice(0, 4000),
    ),
  );
  assert.equal(seen, dropped);

  // The first drop of that kind, told in a line with its packet.
  const told = new RegExp(
    `^pathtrace agent: drop in ${srv} on eth0: tcp 198\\.18\\.0\\.1\\.\\d+ > 198\\.18\\.0\\.2\\.${PORT} length 60, ` +
      `netfilter LOCAL_IN table filter chain INPUT \\(NETFILTER_DROP\\), rule: ${RULE.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&')}$`,
    'm',
  );
  assert.match(agent.output(), told);
  assert.equal(agent.output().match(new RegExp(told.source, 'gm'))?.length, 1, 'once, not once per packet');

  // The exposition as Prometheus' own checker reads it.
  const exposition = await agent.metrics();
  execFileSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  assert.match(exposition, /^pathtrace_build_info\{version="[^"]+",kernel="[^"]+",libbpf="[^"]+"\} 1$/m);
  assert.equal((await fetch(`${agent.url}/healthz`)).status, 200);

  // SIGTERM: it ends at once, with nothing of it left in the kernel.
  assert.ok(agentPrograms().length > 0, 'its programs were loaded');
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0, agent.output());
  await assertAgentGone();
});

interface OtlpAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number; doubleValue?: number };
}
type Attributes = Record<string, string | number>;
const attrs = (list: OtlpAttribute[] = []): Attributes =>
  Object.fromEntries(list.map((a) => [a.key, a.value.stringValue ?? Number(a.value.intValue ?? a.value.doubleValue)]));

/** An OTLP/HTTP receiver: the JSON bodies posted to it, by path. */
async function otlpReceiver() {
  const bodies: { path: string; body: any }[] = []; // eslint-disable-line @typescript-eslint/no-explicit-any
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      assert.match(String(req.headers['content-type']), /^application\/json/);
      bodies.push({ path: req.url ?? '', body: JSON.parse(raw.toString('utf8')) });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, bodies, server };
}

test('the agent over OTLP: the drops as a metric with the rule in its attributes, the first as a log record', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  const receiver = await otlpReceiver();
  const children: ChildProcess[] = [];
  t.after(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    lab.destroy();
    receiver.server.close();
  });
  const srv = lab.server.netns;
  addDropRule(lab);
  const agent = await startAgent(['--otlp', receiver.url]);
  const { child } = agent;
  children.push(child);

  await Promise.all([1, 2].map(() => lab.connect('tcp', lab.server.v4, PORT, 1500)));
  const dropped = ruleCount(lab, srv);
  const wanted = { 'pathtrace.netns': srv, hook: 'LOCAL_IN', table: 'filter', chain: 'INPUT', rule: RULE };
  const point = await waitFor(
    `pathtrace.drops of ${srv} at ${dropped}`,
    async () => {
      const points = receiver.bodies
        .filter((b) => b.path === '/v1/metrics')
        .flatMap((b) => b.body.resourceMetrics)
        .flatMap((r: any) => r.scopeMetrics) // eslint-disable-line @typescript-eslint/no-explicit-any
        .flatMap((s: any) => s.metrics) // eslint-disable-line @typescript-eslint/no-explicit-any
        .filter((m: any) => m.name === 'pathtrace.drops') // eslint-disable-line @typescript-eslint/no-explicit-any
        .flatMap((m: any) => m.sum.dataPoints) // eslint-disable-line @typescript-eslint/no-explicit-any
        .map((p: any): Attributes => ({ ...attrs(p.attributes), value: Number(p.asDouble ?? p.asInt) })) // eslint-disable-line @typescript-eslint/no-explicit-any
        .filter((p) => p.netns === srv && p.rule === RULE);
      const last = points.at(-1);
      return last && last.value === dropped ? last : undefined;
    },
    20_000,
  ).catch((e: Error) =>
    assert.fail(`${e.message}: ${JSON.stringify(receiver.bodies).slice(0, 3000)}; ${agent.output()}`),
  );
  assert.deepEqual(
    [point.hook, point.table, point.chain, point.stage, point.reason, point.protocol],
    [wanted.hook, wanted.table, wanted.chain, 'netfilter', 'NETFILTER_DROP', 'tcp'],
  );

  // SIGTERM flushes what is pending: the log record of the first drop is there by then.
  child.kill('SIGTERM');
  assert.equal(await agent.exited, 0, agent.output());
  const records = receiver.bodies
    .filter((b) => b.path === '/v1/logs')
    .flatMap((b) => b.body.resourceLogs)
    .flatMap((r: any) => r.scopeLogs) // eslint-disable-line @typescript-eslint/no-explicit-any
    .flatMap((s: any) => s.logRecords) // eslint-disable-line @typescript-eslint/no-explicit-any
    .map((l: any): Attributes => ({ ...attrs(l.attributes), body: l.body.stringValue as string })) // eslint-disable-line @typescript-eslint/no-explicit-any
    .filter((l) => l['pathtrace.netns'] === srv && l['destination.port'] === PORT);
  assert.equal(records.length, 1, JSON.stringify(records));
  const [r] = records;
  assert.deepEqual(
    [
      r!['source.address'],
      r!['destination.address'],
      r!['network.transport'],
      r!['pathtrace.rule'],
      r!['pathtrace.hook'],
    ],
    [lab.client.v4, lab.server.v4, 'tcp', RULE, 'LOCAL_IN'],
  );
  assert.match(String(r!.body), new RegExp(`^drop in ${srv} on eth0: tcp `));
});

test('a namespace that goes takes its series with it, after --forget-after', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  const agent = await startAgent(['--forget-after', '1']);
  t.after(() => {
    if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
    lab.destroy();
  });
  const { metrics } = agent;
  const srv = lab.server.netns;
  addDropRule(lab);
  await lab.connect('tcp', lab.server.v4, PORT, 300);
  const series = (text: string) => text.split('\n').filter((l) => l.startsWith(`pathtrace_drops_total{netns="${srv}"`));
  await waitFor(`a series of ${srv}`, async () => (series(await metrics()).length ? true : undefined), 10_000);
  lab.destroy();
  await waitFor(`${srv}'s series gone`, async () => (series(await metrics()).length ? undefined : true), 10_000).catch(
    async (e: Error) => assert.fail(`${e.message}: ${series(await metrics()).join('\n')}; ${agent.output()}`),
  );
  agent.child.kill('SIGTERM');
  assert.equal(await agent.exited, 0, agent.output());
});

test('agent: a port taken, an address not here, not root: one line, exit 1, nothing left attached', async (t) => {
  if (!needsRoot(t)) return;
  const first = await startAgent();
  t.after(() => {
    if (first.child.exitCode === null) first.child.kill('SIGKILL');
  });
  const port = new URL(first.url).port;
  const taken = runCli(['agent', '--listen', `127.0.0.1:${port}`]);
  assert.deepEqual([taken.code, taken.stderr], [1, `pathtrace: cannot listen on 127.0.0.1:${port}: EADDRINUSE\n`]);
  const away = runCli(['agent', '--listen', '203.0.113.1:9810']);
  assert.deepEqual([away.code, away.stderr], [1, 'pathtrace: cannot listen on 203.0.113.1:9810: EADDRNOTAVAIL\n']);
  const user = runCli(['agent'], { uid: 65534 });
  assert.equal(user.code, 1);
  assert.match(user.stderr, /^pathtrace: must run as root: loading BPF probes needs [A-Z_, ]+\n$/);
  first.child.kill('SIGTERM');
  assert.equal(await first.exited, 0, first.output());
  await assertAgentGone('the refused ones left nothing either');
});

for (const filter of [['--port', String(PORT)], [`tcp dst port ${PORT}`]])
  test(`agent ${filter.join(' ')}: only the drops it takes are counted, in the kernel`, async (t) => {
    if (!needsRoot(t)) return;
    const lab = new Lab();
    const agent = await startAgent(filter);
    t.after(() => {
      if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
      lab.destroy();
    });
    const srv = lab.server.netns;
    addDropRule(lab);
    // A SYN to a closed port (NO_SOCKET, with a reset back) and one the rule drops.
    await Promise.all([lab.connect('tcp', lab.server.v4, 9, 300), lab.connect('tcp', lab.server.v4, PORT, 300)]);
    const series = (text: string) =>
      text.split('\n').filter((l) => l.startsWith(`pathtrace_drops_total{netns="${srv}"`));
    const seen = await waitFor(
      `the drops of port ${PORT}`,
      async () => {
        const s = series(await agent.metrics());
        return s.some((l) => l.includes(`rule="${RULE}"`)) ? s : undefined;
      },
      10_000,
    );
    await new Promise((r) => setTimeout(r, 1500)); // another collection: the port 9 one would be there by now
    assert.deepEqual(
      series(await agent.metrics()).filter((l) => !l.includes('stage="netfilter"')),
      [],
      JSON.stringify(seen),
    );
  });

test('agent --port P,Q --label-ports: a series per port of the list, and none for other ports', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab();
  const closed = 5432;
  const agent = await startAgent(['--port', `${PORT},${closed}`, '--label-ports']);
  t.after(() => {
    if (agent.child.exitCode === null) agent.child.kill('SIGKILL');
    lab.destroy();
  });
  const srv = lab.server.netns;
  addDropRule(lab);
  // The rule drops the SYN to PORT; nothing listens on `closed` (NO_SOCKET) nor on 9 (not in the list).
  await Promise.all([PORT, closed, 9].map((p) => lab.connect('tcp', lab.server.v4, p, 300)));
  const series = (text: string) => text.split('\n').filter((l) => l.startsWith(`pathtrace_drops_total{netns="${srv}"`));
  const seen = await waitFor(
    'a series of each port',
    async () => {
      const s = series(await agent.metrics());
      const ruled = s.some((l) => l.includes(`rule="${RULE}"`) && l.includes(`port="${PORT}"`));
      return ruled && s.some((l) => l.includes(`port="${closed}"`)) ? s : undefined;
    },
    10_000,
  ).catch(async (e: Error) => assert.fail(`${e.message}: ${await agent.metrics()}; ${agent.output()}`));
  for (const l of seen) assert.match(l, new RegExp(`port="(${PORT}|${closed})"`), l);
  assert.ok(
    seen.some((l) => l.includes(`port="${closed}"`) && l.includes('reason="NO_SOCKET"')),
    seen.join('\n'),
  );
});
