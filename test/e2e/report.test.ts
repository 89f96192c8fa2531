// pathtrace report on real traces, drawn by headless Chromium (network off): demo local-in's trace (the SYNs dropped
// by a DROP rule at LOCAL_IN), and two hosts' traces through a router whose FORWARD rule drops them (lost on the
// path). The page is self-contained, names the hook and the rule, links each drop from the summary, and is drawn
// (not blank) at a desktop's width and a phone's.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import { needsRoot, Pathtrace, runCli, SLOWDOWN, sleep } from '../helpers/pathtrace.js';
import { chromiumMissing, pngStats, screenshot } from '../helpers/screenshot.js';

const RULE = 'iptables -A INPUT -p tcp -m tcp --dport 3306 -j DROP';

function ready(t: TestContext): string | null {
  if (!needsRoot(t)) return null;
  const missing = chromiumMissing();
  if (missing) {
    t.skip(`needs ${missing}`);
    return null;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-report-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** What every page must be: one file that fetches nothing, drawn at two widths. */
function checkPage(html: string, file: string, dir: string): void {
  assert.match(html, /^<!doctype html>/);
  assert.doesNotMatch(html, /\b(src|href)=["']?(https?:)?\/\//i, 'nothing fetched from the network');
  assert.doesNotMatch(html, /<link\b|@import|url\((?!#)/i, 'no style sheet or image from elsewhere');
  for (const [name, w, h] of [
    ['desktop', 1000, 1600],
    ['phone', 390, 1600],
  ] as const) {
    const png = path.join(dir, `${path.basename(file, '.html')}-${name}.png`);
    screenshot(file, png, w, h);
    const s = pngStats(png);
    assert.deepEqual([s.width, s.height], [w, h]);
    assert.ok(s.colours > 50 && s.drawn > 0.05, `${name}: drawn, not blank: ${JSON.stringify(s)}`);
    // Kept for a person to look at (PATHTRACE_KEEP_SCREENSHOTS=DIR).
    const keep = process.env.PATHTRACE_KEEP_SCREENSHOTS;
    if (keep) writeFileSync(path.join(keep, path.basename(png)), readFileSync(png));
  }
}

test('report of demo local-in: the drop at LOCAL_IN with its rule, its path and ladder, linked from the summary', async (t) => {
  const dir = ready(t);
  if (!dir) return;
  const demo = runCli(['demo', 'local-in', '--json'], { timeout: 120_000 * SLOWDOWN });
  assert.equal(demo.code, 0, demo.stderr);
  const trace = path.join(dir, 'server.ndjson');
  writeFileSync(trace, demo.stdout);
  const page = path.join(dir, 'local-in.html');
  const r = runCli(['report', `server=${trace}`, '-o', page]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^wrote .*local-in\.html: \d+ packets, \d+ dropped\n$/);
  const html = readFileSync(page, 'utf8');
  // The summary links to the drop; the drop names the hook, the rule, the reason; the path's stages drawn.
  const link = /<a href="#(drop-1)">✗ LOCAL_IN — filter INPUT: (.*?)<\/a>/.exec(html);
  assert.ok(link, 'the summary links to the drop');
  assert.equal(link[2]!.replace(/&#39;/g, "'"), RULE);
  assert.match(html, new RegExp(`<section class="drop" id="${link[1]}">`));
  assert.match(html, /NETFILTER_DROP/);
  assert.match(html, /class="stage died"[^>]*\/><text[^>]*>✗ LOCAL_IN<\/text>/);
  assert.match(html, /<title>ladder of 198\.18\.0\.1:\d+ and 198\.18\.0\.2:3306<\/title>/);
  assert.match(html, /retransmit 1/);
  checkPage(html, page, dir);
});

// The other demos: each drop's hook and rule linked from the summary, its path drawn with the stage it died at,
// drawn at both widths. (local-in is above, across is the two-host test below.)
const DEMOS = [
  ['local-out', 'LOCAL_OUT', 'filter OUTPUT: iptables -A OUTPUT -p tcp -m tcp --sport 3306 -j DROP'],
  [
    'app-response',
    'LOCAL_OUT',
    'filter OUTPUT: iptables -A OUTPUT -p tcp -m tcp --sport 80 --tcp-flags SYN NONE -j DROP',
  ],
  ['forward', 'FORWARD', 'filter FORWARD: iptables -A FORWARD -p tcp -m tcp --sport 8080 -j DROP'],
] as const;

for (const [demo, hook, rule] of DEMOS)
  test(`report of demo ${demo}: the drop at ${hook} with its rule and path`, async (t) => {
    const dir = ready(t);
    if (!dir) return;
    const run = runCli(['demo', demo, '--json'], { timeout: 120_000 * SLOWDOWN });
    if (run.code !== 0 && /needs .*nginx/.test(run.stderr)) return t.skip(run.stderr.trim());
    assert.equal(run.code, 0, run.stderr);
    const trace = path.join(dir, `${demo}.ndjson`);
    writeFileSync(trace, run.stdout);
    const page = path.join(dir, `${demo}.html`);
    const r = runCli(['report', trace, '-o', page]);
    assert.equal(r.code, 0, r.stderr);
    const html = readFileSync(page, 'utf8').replace(/&#39;/g, "'");
    const link = new RegExp(`<a href="#(drop-\\d+)">✗ ${hook} — (.*?)</a>`).exec(html);
    assert.ok(link, `the summary links to the drop at ${hook}`);
    assert.equal(link[2], rule);
    assert.match(html, new RegExp(`<section class="drop" id="${link[1]}">\\n<h3>✗ ${hook}:`));
    assert.match(html, new RegExp(`class="stage died"[^>]*/><text[^>]*>✗ ${hook}</text>`));
    if (hook === 'FORWARD') {
      assert.doesNotMatch(html, />LOCAL_OUT</, 'a forwarded packet goes from FORWARD to POST_ROUTING');
      // The replies matched the filter only after NAT (first seen at PRE_ROUTING): still counted as received.
      const count = (stage: string) => new RegExp(`>in ${stage}</text>.*?>(\\d+)`).exec(html)?.[1];
      assert.equal(count('device RX'), count('PRE_ROUTING'));
    }
    checkPage(html, page, dir);
  });

test('report of two hosts through a router that drops: the trips drawn, lost on the path', async (t) => {
  const dir = ready(t);
  if (!dir) return;
  const lab = new Lab({ router: true });
  t.after(() => lab.destroy());
  lab.exec(lab.router!.netns, 'iptables', ['-A', 'FORWARD', '-p', 'tcp', '--dport', '3306', '-j', 'DROP']);
  await lab.listen('tcp', 3306);
  const client = await Pathtrace.start(['--netns', lab.client.netns, '--port', '3306']);
  const server = await Pathtrace.start(['--netns', lab.server.netns, '--port', '3306']);
  await lab.connect('tcp', lab.server.v4, 3306, 2500 * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  const files = ['client', 'server'].map((n) => path.join(dir, `${n}.ndjson`));
  const done = [await client.stop(), await server.stop()];
  done.forEach((d, i) => writeFileSync(files[i]!, d.stdout));
  const page = path.join(dir, 'across.html');
  const r = runCli(['report', `client=${files[0]}`, `server=${files[1]}`, '-o', page]);
  assert.equal(r.code, 0, r.stderr);
  const html = readFileSync(page, 'utf8');
  assert.match(html, /<h2>Between client and server<\/h2>/);
  assert.match(html, /<title>trips between client and server<\/title>/);
  assert.match(html, /✗ \d+ lost on the path/);
  // The summary links to the connection whose packets were lost.
  assert.match(html, /<a href="#trips-1">✗ lost on the path between client and server: tcp /);
  assert.match(html, /<details open id="trips-1">/);
  assert.match(html, />lost on path<\/text>/);
  // Each host's own section: the client's SYNs left its device; the server's trace saw none of them.
  assert.match(html, /<h2>client · pt\w+-cli<\/h2>/);
  assert.match(html, /<h2>server · pt\w+-srv<\/h2>\n<p>0 packets/);
  checkPage(html, page, dir);
});

test('--report FILE.html on a live trace: the page written at its end, beside the usual output', async (t) => {
  const dir = ready(t);
  if (!dir) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', '3306', '-j', 'DROP']);
  const page = path.join(dir, 'live.html');
  const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', '3306', '--report', page]);
  await lab.connect('tcp', lab.server.v4, 3306, 1500 * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  const done = await pt.stop();
  assert.equal(done.code, 0, done.stderr);
  assert.match(done.stderr, new RegExp(`^pathtrace: report written to ${page.replace(/[.]/g, '\\.')}$`, 'm'));
  assert.ok(
    done.records.some((r) => r.type === 'packet'),
    'the usual output too',
  );
  const html = readFileSync(page, 'utf8');
  assert.match(
    html,
    /<a href="#drop-1">✗ LOCAL_IN — filter INPUT: iptables -A INPUT -p tcp -m tcp --dport 3306 -j DROP<\/a>/,
  );
  assert.match(html, new RegExp(`<h2>${lab.server.netns}</h2>`));
  checkPage(html, page, dir);
});
