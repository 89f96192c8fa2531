// Which table, chain and rule dropped a packet (issue "Name the table, chain
// and rule..."): read-only from probes between chains, rule counters and
// matches, for iptables-nft, iptables-legacy and native nft; a ruleset
// changed while tracing; --rule-trace's exact answer and its cleanup.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { Lab } from '../../src/lab/lab.js';
import {
  isType,
  needsRoot,
  nftMonitors,
  Pathtrace,
  pathtraceLinks,
  SLOWDOWN,
  sleep,
  traceLab,
  type Packet,
  type Ready,
} from '../helpers/pathtrace.js';
import { BIN } from '../helpers/paths.js';

const PORT = 3306;
const nft = (lab: Lab, ruleset: string) => lab.exec(lab.server.netns, 'nft', ['-f', '-'], ruleset);
const ipt = (lab: Lab, cmd: string, ...args: string[]) => lab.exec(lab.server.netns, cmd, args);
const drops = (ps: Packet[]) => ps.filter((p) => p.fate === 'dropped' && p.drop.layer === 'netfilter');
const connect = (lab: Lab) => lab.connect('tcp', lab.server.v4, PORT, 400);

test('iptables-nft with raw, mangle, filter and an nft table on one hook: filter INPUT rule 2, by its counter', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        ipt(lab, 'iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'tcp', '--dport', String(PORT), '-j', 'ACCEPT');
        ipt(lab, 'iptables', '-t', 'mangle', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT');
        ipt(lab, 'iptables', '-A', 'INPUT', '-p', 'udp', '--dport', '53', '-j', 'DROP');
        ipt(lab, 'iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP');
        nft(
          lab,
          'table inet extra {\nchain c {\ntype filter hook input priority 10\ntcp dport 22 counter accept\n}\n}\n',
        );
        await lab.listen('tcp', PORT);
      },
      args: ['--port', String(PORT)],
      traffic: connect,
    },
    ({ lab, packets, records }) => {
      const ready = records[0] as Ready;
      const input = ready.netfilter.find((p) => p.family === 'ipv4' && p.hook === 'LOCAL_IN')!;
      assert.deepEqual(
        input.between_priorities,
        [-149, 1],
        'a probe after mangle (-150) and after filter (0), below the nft table (10)',
      );
      const [d] = drops(packets);
      assert.ok(d, 'the SYN was dropped');
      assert.deepEqual(
        { table: d.drop.table, chain: d.drop.chain, family: d.drop.family, source: d.drop.source },
        { table: 'filter', chain: 'INPUT', family: 'ip', source: 'iptables-nft' },
      );
      assert.equal(d.drop.rule.text, 'iptables -A INPUT -p tcp -m tcp --dport 3306 -j DROP');
      assert.equal(d.drop.rule.position, 2);
      assert.match(d.drop.rule.found, /^counters/);
      assert.equal(d.drop.remove, `ip netns exec ${lab.server.netns} iptables -D INPUT 2`);
      assert.equal(d.drop.guess, undefined);
      // The steps show the probes it passed in LOCAL_IN: the entry and the one after mangle, not the one after filter.
      assert.deepEqual(
        d.steps.filter((s) => s.hook === 'LOCAL_IN').map((s) => [s.at, s.priority]),
        [
          ['entry', input.entry_priority],
          ['between', -149],
        ],
      );
    },
  );
});

test('a chain policy that drops, beside a counting DROP rule that did not: the policy, not the rule', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        // ufw's shape: a broad DROP rule pathtrace cannot match (ctstate), and the policy that really drops.
        ipt(lab, 'iptables', '-A', 'INPUT', '-m', 'conntrack', '--ctstate', 'INVALID', '-j', 'DROP');
        ipt(lab, 'iptables', '-P', 'INPUT', 'DROP');
      },
      args: ['--port', String(PORT)],
      traffic: connect,
    },
    ({ packets }) => {
      const ds = drops(packets);
      assert.ok(ds.length >= 1, 'the SYN was dropped');
      // Every drop after the counters' first reading is named by the policy; one before it may only be a guess.
      const named = ds.filter((d) => d.drop.rule?.found === 'policy');
      assert.ok(named.length >= 1, JSON.stringify(ds.map((d) => d.drop)));
      for (const d of ds) {
        assert.ok(
          d.drop.rule?.found === 'policy' || d.drop.guess === true,
          `never a confident wrong rule: ${JSON.stringify(d.drop)}`,
        );
        assert.notEqual(d.drop.rule?.text, 'iptables -A INPUT -m conntrack --ctstate INVALID -j DROP');
      }
      assert.deepEqual([named[0].drop.table, named[0].drop.chain], ['filter', 'INPUT']);
    },
  );
});

test('native nft without counters, at a custom priority: the rule by its match, with its handle', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        ipt(lab, 'iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'DROP'); // filter at 0: another chain on the hook
        nft(
          lab,
          'table inet fw {\nchain input {\ntype filter hook input priority -10\nudp dport 53 drop\ntcp dport 3306 drop\n}\n}\n',
        );
        await lab.listen('tcp', PORT);
      },
      args: ['--port', String(PORT)],
      traffic: connect,
    },
    ({ lab, packets }) => {
      const [d] = drops(packets);
      assert.deepEqual([d.drop.table, d.drop.chain, d.drop.family, d.drop.source], ['fw', 'input', 'inet', 'nft']);
      assert.equal(d.drop.rule.text, 'tcp dport 3306 drop');
      assert.equal(d.drop.rule.found, 'match');
      const handle = d.drop.rule.handle;
      assert.ok(Number.isInteger(handle));
      assert.equal(d.drop.remove, `ip netns exec ${lab.server.netns} nft delete rule inet fw input handle ${handle}`);
      assert.equal(d.drop.inspect, `ip netns exec ${lab.server.netns} nft -a list chain inet fw input`);
    },
  );
});

test('a PRE_ROUTING nft chain between raw and conntrack, with a counter', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        ipt(lab, 'iptables', '-t', 'raw', '-A', 'PREROUTING', '-p', 'tcp', '--dport', String(PORT), '-j', 'ACCEPT');
        nft(
          lab,
          'table ip early {\nchain c {\ntype filter hook prerouting priority -250\nip saddr 198.18.0.0/24 tcp dport 3306 counter drop\n}\n}\n',
        );
        await lab.listen('tcp', PORT);
      },
      args: ['--port', String(PORT)],
      traffic: connect,
    },
    ({ packets }) => {
      const [d] = drops(packets);
      assert.deepEqual([d.drop.hook, d.drop.table, d.drop.chain], ['PRE_ROUTING', 'early', 'c']);
      assert.equal(d.drop.rule.text, 'ip saddr 198.18.0.0/24 tcp dport 3306 counter drop');
      assert.equal(d.drop.rule.found, 'counters+match');
    },
  );
});

test('iptables-legacy: freed in nf_hook_slow, named from iptables-legacy-save', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        ipt(lab, 'iptables-legacy', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT');
        ipt(lab, 'iptables-legacy', '-A', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP');
        nft(lab, 'table inet other {\nchain c {\ntype filter hook input priority 0\ntcp dport 22 accept\n}\n}\n');
        await lab.listen('tcp', PORT);
      },
      args: ['--port', String(PORT)],
      traffic: connect,
    },
    ({ lab, packets }) => {
      const [d] = drops(packets);
      assert.equal(d.drop.location, 'nf_hook_slow');
      assert.deepEqual([d.drop.table, d.drop.chain, d.drop.source], ['filter', 'INPUT', 'iptables-legacy']);
      assert.equal(d.drop.rule.text, 'iptables-legacy -A INPUT -p tcp -m tcp --dport 3306 -j DROP');
      assert.equal(d.drop.rule.position, 2);
      assert.equal(d.drop.remove, `ip netns exec ${lab.server.netns} iptables-legacy -D INPUT 2`);
    },
  );
});

test('a rule in a chain named by its owner (DOCKER-USER), reached by a jump', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        ipt(lab, 'iptables', '-N', 'DOCKER-USER');
        ipt(lab, 'iptables', '-A', 'INPUT', '-j', 'DOCKER-USER');
        ipt(lab, 'iptables', '-A', 'DOCKER-USER', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP');
        await lab.listen('tcp', PORT);
      },
      args: ['--port', String(PORT)],
      traffic: connect,
    },
    ({ packets }) => {
      const [d] = drops(packets);
      assert.deepEqual([d.drop.chain, d.drop.owner], ['DOCKER-USER', 'docker']);
      assert.equal(d.drop.rule.text, 'iptables -A DOCKER-USER -p tcp -m tcp --dport 3306 -j DROP');
    },
  );
});

test('when the evidence does not single out a rule: candidates, marked as a guess', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        // A condition pathtrace cannot check (ct state) before one it can: either rule may have dropped the SYN.
        nft(
          lab,
          'table inet fw {\nchain input {\ntype filter hook input priority 0\nct state new drop\nip saddr 198.18.0.1 drop\n}\n}\n',
        );
        await lab.listen('tcp', PORT);
      },
      args: ['--port', String(PORT)],
      traffic: connect,
    },
    ({ packets }) => {
      const [d] = drops(packets);
      assert.deepEqual([d.drop.table, d.drop.chain, d.drop.rule, d.drop.guess], ['fw', 'input', null, true]);
      assert.deepEqual(d.drop.candidates, ['ct state new drop', 'ip saddr 198.18.0.1 drop']);
    },
  );
});

test('a ruleset changed while tracing: probes re-placed, said so, and the new chain named', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        ipt(lab, 'iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT');
        await lab.listen('tcp', PORT);
      },
      args: ['--port', String(PORT)],
      traffic: async (lab) => {
        await connect(lab); // works: nothing drops yet
        nft(
          lab,
          'table inet late {\nchain c {\ntype filter hook input priority 5\ntcp dport 3306 counter drop\n}\n}\n',
        );
        await sleep(1500); // the ruleset is read every second
        return connect(lab);
      },
    },
    ({ records, packets }) => {
      const note = records.find((r) => r.type === 'note');
      assert.ok(note, 'a note on the change');
      assert.match(
        note.message,
        /ruleset changed: \+inet late c \(LOCAL_IN, priority 5\); \d+ probes between chains re-placed/,
      );
      const noteAt = records.indexOf(note);
      const [d] = drops(packets);
      assert.ok(records.indexOf(d) > noteAt);
      assert.deepEqual([d.drop.table, d.drop.chain, d.drop.rule.text], ['late', 'c', 'tcp dport 3306 counter drop']);
      const ready = records[0] as Ready;
      assert.equal(ready.ruleset_changes, 'notified', 'heard from nftables, not polled');
      assert.deepEqual(
        ready.netfilter.find((p) => p.family === 'ipv4' && p.hook === 'LOCAL_IN')!.between_priorities,
        [],
        'one chain: no gap at the start',
      );
      assert.ok(
        d.steps.some((s) => s.hook === 'LOCAL_IN' && s.at === 'between' && s.priority === 1),
        'the new probe between filter (0) and late (5)',
      );
    },
  );
});

test('no chains in a family: its hooks keep their entry probe only (passed); the first chain brings the exits back', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: (lab) => lab.listen('tcp', PORT),
      args: ['--port', String(PORT)],
      traffic: async (lab) => {
        await connect(lab); // nothing in the ruleset: delivered through entry probes alone
        nft(lab, 'table ip late {\nchain c {\ntype filter hook input priority 5\ntcp dport 3306 counter drop\n}\n}\n');
        await sleep(1500);
        return connect(lab);
      },
    },
    ({ records, packets }) => {
      const ready = records[0] as Ready;
      for (const p of ready.netfilter) {
        assert.ok(p.entry_priority !== null, `${p.family} ${p.hook} has its entry probe`);
        assert.deepEqual(
          [p.exit_priority, p.bracketed],
          [null, false],
          `${p.family} ${p.hook}: no exit probe without chains`,
        );
      }
      const syn = packets.find((p) => p.tcp_flags === 'S' && p.fate === 'delivered')!;
      assert.ok(syn, 'the first SYN was delivered');
      const hooks = syn.steps.filter((s) => s.point === 'netfilter');
      assert.deepEqual(
        hooks.map((s) => [s.hook, s.at, s.passed]),
        [
          ['PRE_ROUTING', 'entry', true],
          ['LOCAL_IN', 'entry', true],
        ],
      );
      assert.equal(syn.delivery.socket, true);
      // The chain came: IPv4's hooks are bracketed again, and the drop is placed in its hook and chain.
      const [d] = drops(packets);
      assert.deepEqual([d.drop.hook, d.drop.table, d.drop.chain], ['LOCAL_IN', 'late', 'c']);
      assert.deepEqual(
        d.steps.filter((s) => s.point === 'netfilter').map((s) => `${s.hook} ${s.at}${s.passed ? ' passed' : ''}`),
        ['PRE_ROUTING entry', 'PRE_ROUTING exit', 'LOCAL_IN entry'],
      );
    },
  );
});

const tableList = (lab: Lab) => lab.exec(lab.server.netns, 'nft', ['list', 'tables']);

test('--rule-trace names the exact rule where matches cannot, and says what it added', async (t) => {
  if (!needsRoot(t)) return;
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        // A condition pathtrace cannot check (ct state) before one it can: either rule may have dropped the SYN.
        nft(
          lab,
          'table inet fw {\nchain input {\ntype filter hook input priority 0\nct state new drop\nip saddr 198.18.0.1 drop\n}\n}\n',
        );
        await lab.listen('tcp', PORT);
      },
      args: ['--port', String(PORT), '--rule-trace'],
      traffic: async (lab) => {
        assert.match(tableList(lab), /table inet pathtrace_\d+/, 'the trace table is there while tracing');
        return connect(lab);
      },
    },
    ({ lab, records, packets }) => {
      const note = records.find((r) => r.type === 'note' && /added table inet pathtrace_\d+/.test(r.message));
      assert.ok(note);
      const [d] = drops(packets);
      // nftables' own trace settles what the matches could not: the ct state rule.
      assert.deepEqual([d.drop.chain, d.drop.rule.text, d.drop.rule.found], ['input', 'ct state new drop', 'trace']);
      assert.doesNotMatch(tableList(lab), /pathtrace_/, 'removed on exit');
    },
  );
});

for (const how of ['SIGINT', 'SIGTERM', 'SIGKILL'] as const) {
  test(`--rule-trace leaves nothing in the ruleset after ${how}${how === 'SIGKILL' ? ' and a new run' : ''}`, async (t) => {
    if (!needsRoot(t)) return;
    const { Lab } = await import('../../src/lab/lab.js');
    const lab = new Lab();
    try {
      const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(PORT), '--rule-trace']);
      assert.match(tableList(lab), /pathtrace_/);
      await pt.stop(how);
      if (how !== 'SIGKILL') {
        assert.doesNotMatch(tableList(lab), /pathtrace_/);
        return;
      }
      const left = /table inet (pathtrace_\d+)/.exec(tableList(lab))?.[1];
      assert.ok(left, 'SIGKILL leaves the table behind');
      await sleep(300);
      assert.deepEqual(nftMonitors(), [], 'but not its nft monitor: killed with pathtrace');
      const again = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(PORT), '--rule-trace']);
      await sleep(100);
      const { records } = await again.stop();
      assert.ok(
        records.some(
          (r) => r.type === 'note' && r.message.includes(`removed what a killed pathtrace left: table inet ${left}`),
        ),
      );
      assert.doesNotMatch(tableList(lab), /pathtrace_/);
    } finally {
      lab.destroy();
    }
  });
}

test('--rule-trace: a signal at any moment of the start leaves no table, monitor or probe behind', async (t) => {
  if (!needsRoot(t)) return;
  const { Lab } = await import('../../src/lab/lab.js');
  const lab = new Lab();
  try {
    // From before the BPF load to after the table is added (the start takes ~0.5–1 s here).
    for (const ms of [50, 300, 600, 900, 1200]) {
      const child = spawn(
        process.execPath,
        [BIN, '--json', '--netns', lab.server.netns, '--port', String(PORT), '--rule-trace'],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr!.on('data', (d) => {
        stderr += d;
      });
      await sleep(ms);
      child.kill('SIGINT');
      const code = await new Promise((r) => child.on('exit', (c, sig) => r(c ?? sig)));
      // Before pathtrace's own code runs (node's start), SIGINT's default action ends it: nothing was added yet.
      assert.ok(code === 0 || code === 'SIGINT', `SIGINT after ${ms} ms: ${code} ${stderr}`);
      assert.doesNotMatch(tableList(lab), /pathtrace_/, `SIGINT after ${ms} ms left the table`);
      assert.deepEqual(pathtraceLinks(), [], `SIGINT after ${ms} ms left probes`);
      assert.deepEqual(nftMonitors(), [], `SIGINT after ${ms} ms left nft monitor`);
    }
  } finally {
    lab.destroy();
  }
});

test('without --rule-trace the ruleset is left exactly as it was', async (t) => {
  if (!needsRoot(t)) return;
  const { Lab } = await import('../../src/lab/lab.js');
  const lab = new Lab();
  try {
    ipt(lab, 'iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP');
    const before = lab.exec(lab.server.netns, 'nft', ['list', 'ruleset']);
    const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(PORT)]);
    await connect(lab);
    await pt.stop();
    const after = lab.exec(lab.server.netns, 'nft', ['list', 'ruleset']).replace(/packets \d+ bytes \d+/g, '');
    assert.equal(after, before.replace(/packets \d+ bytes \d+/g, ''));
  } finally {
    lab.destroy();
  }
});

test('nft failing is no empty ruleset: said once with its error, and the drop says its rule could not be read', async (t) => {
  if (!needsRoot(t)) return;
  // An nft that fails as a real one does where it may not read the ruleset (a seccomp'd container, a kernel
  // module missing): first on PATH; iptables' save tools run as they are.
  const bin = mkdtempSync(path.join(os.tmpdir(), 'pathtrace-nft-'));
  const failing = path.join(bin, 'nft');
  writeFileSync(
    failing,
    '#!/bin/sh\necho "netlink: Error: cache initialization failed: Operation not permitted" >&2\nexit 1\n',
  );
  chmodSync(failing, 0o755);
  const { Lab } = await import('../../src/lab/lab.js');
  const lab = new Lab();
  try {
    ipt(lab, 'iptables', '-A', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP');
    const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(PORT)], {
      PATH: `${bin}:${process.env.PATH}`,
    });
    await connect(lab);
    await sleep(300 * SLOWDOWN);
    const { code, records, stderr } = await pt.stop();
    assert.equal(code, 0, stderr);
    const notes = records.filter(isType('note')).map((n) => n.message);
    const failure = notes.filter((n) => n.includes('`nft -j list ruleset` failed'));
    assert.deepEqual(
      failure,
      [
        'ruleset not read: `nft -j list ruleset` failed: netlink: Error: cache initialization failed: Operation not ' +
          'permitted; rules are not named while it fails',
      ],
      notes.join('\n'),
    );
    const [d] = drops(records.filter(isType('packet')));
    assert.ok(d, 'the SYN was dropped');
    assert.equal(d.drop.hook, 'LOCAL_IN');
    assert.equal(d.drop.rule, undefined, 'no rule named from a ruleset not read');
    assert.match(d.drop.rules_unread, /`nft -a list (ruleset|table ip filter)` failed: netlink: Error: cache/);
  } finally {
    lab.destroy();
    rmSync(bin, { recursive: true, force: true });
  }
});
