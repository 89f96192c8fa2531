// The real binary on a real terminal (tmux): the UI during a lab scenario,
// keys sent as a person would, the screen read back.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { BIN } from '../helpers/paths.js';
import { needsRoot, sleep } from '../helpers/pathtrace.js';

function hasTmux(t: TestContext): boolean {
  if (spawnSync('tmux', ['-V']).status === 0) return true;
  t.skip('needs tmux (scripts/setup.sh installs it)');
  return false;
}

/** A pathtrace command in a detached tmux session of the given size. */
class Terminal {
  readonly name = `pt${process.pid}${Math.floor(Math.random() * 1e6)}`;
  private readonly dir = mkdtempSync(path.join(tmpdir(), 'pathtrace-tmux-'));

  constructor(args: string[], columns: number, rows: number, env: Record<string, string> = {}) {
    const exports = Object.entries(env)
      .map(([k, v]) => `${k}=${v} `)
      .join('');
    const cmd = `${exports}${process.execPath} ${BIN} ${args.join(' ')}; echo $? > ${this.dir}/rc; sleep 600`;
    execFileSync('tmux', ['new-session', '-d', '-s', this.name, '-x', String(columns), '-y', String(rows), cmd]);
  }

  screen(): string {
    return execFileSync('tmux', ['capture-pane', '-p', '-t', this.name], { encoding: 'utf8' });
  }

  async waitFor(re: RegExp, ms = 15000): Promise<string> {
    const until = Date.now() + ms;
    let s = '';
    while (Date.now() < until) {
      s = this.screen();
      if (re.test(s)) return s;
      await sleep(100);
    }
    // Blank lines left out: a long report would otherwise cut the screen's text off.
    throw new Error(
      `screen never showed ${re}:\n${
        s
          .split('\n')
          .filter((l) => l.trim())
          .join('\n') || '(blank)'
      }`,
    );
  }

  async keys(...keys: string[]): Promise<void> {
    execFileSync('tmux', ['send-keys', '-t', this.name, ...keys]);
    await sleep(400);
  }

  exitCode(): number | null {
    try {
      return Number(readFileSync(path.join(this.dir, 'rc'), 'utf8'));
    } catch {
      return null;
    }
  }

  close(): void {
    spawnSync('tmux', ['kill-session', '-t', this.name]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

test("the UI in demo local-in at 80×24: the drop at LOCAL_IN, a packet's details, q quits cleanly", async (t) => {
  if (!needsRoot(t) || !hasTmux(t)) return;
  // CI set, as on a CI runner: the UI still draws live (ink would otherwise wait for the exit).
  const term = new Terminal(['demo', 'local-in'], 80, 24, { CI: 'true' });
  t.after(() => term.close());
  let s = await term.waitFor(/LOCAL_IN \d+ ✗\d+ died/);
  assert.match(s, /^pathtrace · tcp port 3306 · netns pt\w+-srv/m);
  assert.match(s, /device RX (\d+) › tcpdump \1 › PRE_ROUTING \1 › routing \1 › LOCAL_IN \1 ✗\1 died/);
  assert.match(s, /transport 0/);
  s = await term.waitFor(/› tcp 198\.18\.0\.1:\d+ ↔ 198\.18\.0\.2:3306 · \d+ pkt ✗\d+ dropped · SYN/);
  await term.keys('Enter');
  s = await term.waitFor(/› #\d+/);
  assert.match(s, /in\s+\[S\]\s+0B ✗ LOCAL_IN NETFILTER_DROP · tcpdump ✓/);
  await term.keys('Enter');
  s = await term.waitFor(/steps/);
  assert.match(s, /in {2}SYN 198\.18\.0\.1:\d+ → 198\.18\.0\.2:3306/);
  assert.match(s, /rx eth0 ─ tcpdump ✓ ─ PRE_ROUTING ✓ ─ route: local ─ LOCAL_IN ✗ dropped/);
  assert.match(s, /NETFILTER_DROP at nft_do_chain \(netfilter, hook LOCAL_IN\)/);
  assert.match(s, /table ip filter chain INPUT \(iptables-nft\): iptables -A INPUT/);
  assert.match(s, /kfree_skb\s+eth0 nft_do_chain NETFILTER_DROP/);
  assert.match(s, /tcpdump: ✓ captured on eth0/);
  for (const line of s.split('\n')) assert.ok([...line].length <= 80);
  await term.keys('Escape');
  await term.waitFor(/› #\d+/);
  await term.keys('q');
  s = await term.waitFor(/── \d+ packets: \d+ dropped/);
  assert.match(s, /What tcpdump shows, and why:/);
  for (let i = 0; i < 50 && term.exitCode() === null; i++) await sleep(100);
  assert.equal(term.exitCode(), 0);
  const names = [...new Set([...s.matchAll(/netns (pt[0-9a-f]+-(?:cli|srv))/g)].map((m) => m[1]))];
  assert.equal(names.length, 2, 'the demo named its namespaces');
  const left = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const n of names) assert.ok(!left.includes(n), `${n} is gone`);
});

test('the UI in demo app-response at 160×48: the application stage, LOCAL_OUT deaths; NO_COLOR honoured', async (t) => {
  if (!needsRoot(t) || !hasTmux(t)) return;
  const term = new Terminal(['demo', 'app-response'], 160, 48, { NO_COLOR: '1' });
  t.after(() => term.close());
  const s = await term.waitFor(/TcpExtTCPAbortOnTimeout|the client is done/, 20000);
  assert.match(s, /application [1-9]\d* ›/);
  assert.match(s, /LOCAL_OUT \d+ ✗\d+ died/);
  assert.match(s, /request read by nginx\[\d+\]/);
  const raw = execFileSync('tmux', ['capture-pane', '-p', '-e', '-t', term.name], { encoding: 'utf8' });
  assert.doesNotMatch(raw, /\x1b\[3[0-7]m/, 'no colours with NO_COLOR');
  await term.keys('q');
  await term.waitFor(/── \d+ packets/);
});

test("the UI in pictures (g): a connection as a ladder, a packet's path through the stack, at 80×24", async (t) => {
  if (!needsRoot(t) || !hasTmux(t)) return;
  const term = new Terminal(['demo', 'local-in'], 80, 24, { CI: 'true', NO_COLOR: '1' });
  t.after(() => term.close());
  await term.waitFor(/› tcp 198\.18\.0\.1:\d+ ↔ 198\.18\.0\.2:3306 · [2-9]\d* pkt/, 20000);
  await term.keys('Enter');
  await term.waitFor(/› #\d+/);
  await term.keys('g');
  // Client and server at either end, this host between; each SYN's arrow stops at LOCAL_IN, its
  // retransmissions told, the rule that dropped them said once.
  let s = await term.waitFor(/retransmit 1/);
  assert.match(s, /198\.18\.0\.1:\d+ +198\.18\.0\.2:3306/);
  assert.match(s, /│ +this host +│/);
  assert.match(s, /^\+0\.000s +│─ \[S\] ─+✗ LOCAL_IN +│$/m);
  assert.match(s, /^\+1\.\d{3}s +│─ \[S\] retransmit 1 ─+✗ LOCAL_IN +│$/m);
  // The rule, wrapped in the lane, once for the SYN and its retransmissions.
  assert.equal(s.match(/✗ filter INPUT: iptables -A INPUT -p tcp -m tcp --dport 3306/g)?.length, 1, s);
  assert.match(s, /│ +(-j )?DROP +│/);
  assert.doesNotMatch(s, /retransmit 1 ─+✗ LOCAL_IN +│\n +│ ✗ filter/, 'said once');
  assert.match(s, /g text/);
  for (const line of s.split('\n')) assert.ok([...line].length <= 80, line);
  await term.keys('Enter');
  s = await term.waitFor(/path through the stack/);
  assert.match(s, /device RX → PRE_ROUTING → routing → ✗ LOCAL_IN ┄ \(TCP\) ┄ \(socket\)/);
  // What dropped it, wrapped at the screen's width.
  assert.match(
    s,
    /✗ dropped at LOCAL_IN by filter INPUT: iptables -A INPUT -p tcp -m tcp --dport\s+3306 -j DROP \(NETFILTER_DROP\)/,
  );
  await term.keys('g');
  await term.waitFor(/kfree_skb/);
  await term.keys('q');
  await term.waitFor(/── \d+ packets/);
});
