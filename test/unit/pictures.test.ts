// The pictures' models and their text: a connection's ladder and a packet's path through the stack, from the
// records of demo local-out (test/fixtures/pictures: its SYN delivered, its SYN-ACKs dropped at LOCAL_OUT).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { PacketRecord } from '../../src/output/records.js';
import { BEYOND, ladder, ladderLines, rungLabel } from '../../src/pictures/ladder.js';
import { packetPath, pathLines, type PacketPath } from '../../src/pictures/path.js';
import { parseCommandLine } from '../../src/commands/options.js';
import { reportHtml } from '../../src/report/html.js';
import { FIXTURES } from '../helpers/paths.js';

const records = readFileSync(path.join(FIXTURES, 'pictures/local-out.ndjson'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l) as PacketRecord);

/** A path's stages as "label:state". */
const states = (p: PacketPath): string[] => p.stages.map((s) => `${s.label}:${s.state}`);

test("a packet's path: its direction's stages, passed, the one it died at, those it never reached", () => {
  const syn = packetPath(records[0]!);
  assert.equal(syn.death, null);
  assert.deepEqual(states(syn), [
    'device RX:passed',
    'PRE_ROUTING:passed',
    'routing:passed',
    'LOCAL_IN:passed',
    'TCP:passed',
    'socket:passed',
    'application:unreached',
  ]);
  const synAck = packetPath(records[1]!);
  assert.deepEqual(states(synAck), [
    'socket:passed',
    'LOCAL_OUT:died',
    'POST_ROUTING:unreached',
    'neighbour:unreached',
    'qdisc:unreached',
    'device TX:unreached',
  ]);
  assert.deepEqual(synAck.death, {
    stage: 'LOCAL_OUT',
    by: 'filter OUTPUT: iptables -A OUTPUT -p tcp -m tcp --sport 3306 -j DROP',
    reason: 'NETFILTER_DROP',
  });
  assert.deepEqual(pathLines(synAck, 60), [
    'socket → ✗ LOCAL_OUT ┄ (POST_ROUTING) ┄ (neighbour)',
    '  ┄ (qdisc) ┄ (device TX)',
    '✗ dropped at LOCAL_OUT by filter OUTPUT: iptables -A OUTPUT',
    '   -p tcp -m tcp --sport 3306 -j DROP (NETFILTER_DROP)',
  ]);
});

test('a ladder: the client the first sender, arrows as far as each packet went, retransmissions told', () => {
  const l = ladder(records);
  assert.match(l.client, /^198\.18\.0\.1:\d+$/);
  assert.equal(l.server, '198.18.0.2:3306');
  assert.deepEqual(
    l.rungs.map((r) => [r.dir, r.label, r.died, r.retransmit]),
    [
      ['right', '[S]', false, 0],
      ['left', '[SA]', true, 0],
      ['left', '[SA]', true, 1],
      ['right', '[S]', false, 1],
    ],
  );
  assert.ok(l.rungs[1]!.reach > 0 && l.rungs[1]!.reach < 0.5, 'LOCAL_OUT is near the server on the way out');
  const lines = ladderLines(l, 80);
  for (const line of lines) assert.ok([...line].length <= 80, line);
  assert.match(lines[2]!, /^\+0\.000s +│─ \[S\] ─+▶│$/);
  assert.match(lines[3]!, /^\+0\.\d{3}s +│ +LOCAL_OUT ✗─+ \[SA\] ─│$/);
  // What dropped it, wrapped in the lane.
  assert.match(lines[4]!, /│ ✗ filter OUTPUT: iptables -A OUTPUT -p tcp -m tcp --sport 3306 (-j)? +│/);
  assert.match(lines[5]!, /│ +(-j )?DROP +│/);
  assert.match(lines[6]!, /LOCAL_OUT +\[SA\] retransmit 1 ✗─+│$/);
  assert.equal(lines.filter((x) => x.includes('✗ filter OUTPUT')).length, 1, 'the rule said once for the run');
  // Traced on the client: its SYN left this host, and what became of it beyond is not this trace's to say.
  const sent: PacketRecord = { ...records[0]!, direction: 'out', fate: 'sent', steps: [], delivery: undefined };
  const [rung] = ladder([sent]).rungs;
  assert.deepEqual([rung!.beyond, rung!.reach, rung!.died], [true, BEYOND, false]);
  assert.match(ladderLines(ladder([sent]), 80)[2]!, /─▷ +│$/);
});

test("a rung's label in pathtrace's flag letters, its size where it carries data", () => {
  const base = records[0]!;
  assert.equal(rungLabel({ ...base, tcp_flags: 'PA', len: 120 }), '[PA] 120B');
  assert.equal(rungLabel({ ...base, proto: 'udp', tcp_flags: null, len: 60 }), 'UDP 60B');
  assert.equal(
    rungLabel({ ...base, proto: 'icmp', tcp_flags: null, icmp: { type: 3, code: 4, about: null } }),
    'ICMP 3/4',
  );
});

test('the report page: self-contained, each drop linked from the summary, text escaped', () => {
  const html = reportHtml([{ name: 'srv <1>', packets: records, ready: null, summary: null }], null, 'a & b');
  assert.match(html, /<title>a &amp; b<\/title>/);
  assert.match(html, /<h2>srv &lt;1&gt;<\/h2>/);
  assert.match(html, /<a href="#drop-1">✗ LOCAL_OUT — filter OUTPUT: iptables -A OUTPUT/);
  assert.match(html, /<section class="drop" id="drop-1">/);
  assert.doesNotMatch(html, /\b(src|href)=["']?(https?:)?\/\//i);
  // The path in rows of five on a wide page, of three on a phone's, one shown at a time by the page's width.
  const widths = [...html.matchAll(/<div class="fig (wide|narrow)"><svg [^>]*viewBox="0 0 (\d+) /g)];
  assert.deepEqual(
    widths.map((m) => [m[1], Number(m[2])]),
    [
      ['wide', 5 * 128 + 4 * 24 + 4],
      ['narrow', 3 * 128 + 2 * 24 + 4],
    ],
  );
  // A ladder's labels start at their sender's lifeline (x 150 and 690), clear of it and of the times.
  const labels = [...html.matchAll(/<text x="([\d.]+)" y="[\d.]+" text-anchor="(start|end)" class="rung-label">/g)];
  assert.ok(labels.length >= records.length);
  for (const m of labels) assert.ok(m[2] === 'start' ? m[1] === '158' : m[1] === '682', m[0]);
  assert.doesNotMatch(html, /keeps no steps/);
});

test('a --write trace (no steps): its pictures drawn from where each packet ended, and the page says so', () => {
  // As the loader gives them (asReport): the record type says steps, the file has none.
  const written = records.map((r) => ({ ...r, steps: undefined }) as unknown as PacketRecord);
  const html = reportHtml([{ name: 'w', packets: written, ready: null, summary: null }], null, 'w');
  assert.match(html, /This trace keeps no steps \(a --write file\)/);
  assert.deepEqual(states(packetPath(written[1]!)), states(packetPath(records[1]!)));
});

test('report options: one or two traces and -o; anything else refused in a line', () => {
  assert.deepEqual(parseCommandLine(['report', 'a.ndjson', '-o', 'a.html']), {
    kind: 'report',
    traces: ['a.ndjson'],
    output: 'a.html',
  });
  assert.deepEqual(parseCommandLine(['report', 'c=a', 's=b', '--output', 'x.html']).kind, 'report');
  assert.throws(() => parseCommandLine(['report', 'a.ndjson']), /report needs -o FILE\.html/);
  assert.throws(() => parseCommandLine(['report', '-o', 'x.html']), /one or two traces/);
  assert.throws(() => parseCommandLine(['report', 'a', 'b', 'c', '-o', 'x.html']), /one or two traces/);
  assert.throws(() => parseCommandLine(['report', 'a', '-o', 'x.html', '--json']), {
    message: "unknown option '--json'",
  });
  // --report on a trace: taken, but not with two namespaces at once (each has its own trace).
  const live = parseCommandLine(['-p', '3306', '--report', 'r.html']);
  assert.equal(live.kind === 'trace' && live.options.report, 'r.html');
  assert.throws(() => parseCommandLine(['-n', 'a', '-n', 'b', '--report', 'r.html']), /--report with two namespaces/);
});
