// NFQUEUE (issue 27): a queue rule hands the server's MySQL traffic to a program. Without one listening, the SYN
// is dropped where the kernel could not queue it; with a listener that accepts, the journey goes on through the
// queue; with one that drops, the listener's verdict is named; a full queue, and a listener gone with packets
// waiting, likewise. Each with the rule, the queue, the listener (pathtrace-nfq, built with the addon) and the
// advice, in JSON and in text.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import {
  needsRoot,
  sleep,
  SLOWDOWN,
  startPlain,
  traceLab,
  unexpectedDrops,
  type LabTrace,
  type Packet,
} from '../helpers/pathtrace.js';
import { ROOT } from '../helpers/paths.js';

const PORT = 3306;
const NFQ = path.join(ROOT, 'build', 'pathtrace-nfq');
const RULE = ['INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'NFQUEUE', '--queue-num', '0'];

/** The queue rule in the server's namespace (ip6tables for IPv6); false, with the test skipped, where this kernel
 *  has no NFQUEUE target. */
function queueRule(t: TestContext, lab: Lab, family: 4 | 6): boolean {
  try {
    lab.exec(lab.server.netns, family === 4 ? 'iptables' : 'ip6tables', ['-A', ...RULE]);
    return true;
  } catch (e) {
    t.skip(`this kernel has no NFQUEUE target (xt_NFQUEUE): ${(e as Error).message.split('\n')[0]}`);
    return false;
  }
}

/** pathtrace-nfq on queue 0 in the server's namespace, once it is bound; killed with the lab. */
async function listener(lab: Lab, verdict: 'accept' | 'drop' | 'hold', ...options: string[]) {
  const child = spawn('ip', ['netns', 'exec', lab.server.netns, NFQ, '0', verdict, ...options], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  lab.onDestroy(() => child.kill('SIGKILL'));
  let out = '',
    err = '';
  child.stderr!.on('data', (d) => (err += d));
  const bound = await new Promise<{ queue: number; portid: number; pid: number }>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      out += d;
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(JSON.parse(out.slice(0, nl)));
    });
    child.on('exit', (code) => reject(new Error(`pathtrace-nfq exited (${code}): ${err.trim()}`)));
  });
  return { child, ...bound, verdicts: () => out.split('\n').filter((l) => l.includes('"verdict"')).length };
}

type Listener = Awaited<ReturnType<typeof listener>>;

/** A lab's setup for these tests: the queue rule, pathtrace-nfq giving this verdict (none: no listener), the
 *  server listening; made.ok false (the test skipped) where this kernel has no NFQUEUE target. */
function queueLab(t: TestContext, family: 4 | 6, verdict?: 'accept' | 'drop' | 'hold', ...options: string[]) {
  const made: { ok: boolean; nfq?: Listener } = { ok: true };
  const setup = async (lab: Lab) => {
    made.ok = queueRule(t, lab, family);
    if (made.ok && verdict) made.nfq = await listener(lab, verdict, ...options);
    await lab.listen('tcp', PORT);
  };
  return { made, setup };
}

/** traceLab on the server (--port PORT) of a lab queueLab prepares; check runs where the rule could be added. */
function traceQueue<T>(
  q: ReturnType<typeof queueLab>,
  traffic: (lab: Lab) => Promise<T>,
  check: (r: LabTrace<T>) => void,
): Promise<void> {
  return traceLab(
    { traced: (lab) => lab.server.netns, setup: q.setup, args: ['--port', String(PORT)], traffic },
    (r) => (q.made.ok ? check(r) : undefined),
  );
}

const connect = (lab: Lab, ms = 1500, family: 4 | 6 = 4) =>
  lab.connect('tcp', family === 4 ? lab.server.v4 : lab.server.v6, PORT, ms);
const partition = <T>(xs: T[], pred: (x: T) => boolean): [T[], T[]] => [xs.filter(pred), xs.filter((x) => !pred(x))];
const queueDrops = (ps: Packet[]) => ps.filter((p) => p.fate === 'dropped' && p.drop.nfqueue !== undefined);
const removeRule = (lab: Lab, family: 4 | 6 = 4) =>
  `ip netns exec ${lab.server.netns} ${family === 4 ? 'iptables' : 'ip6tables'} -D INPUT 1`;

/** `pathtrace --plain` on the server of a new lab, which setup prepares, around traffic; its output. */
async function plainTrace(
  setup: (lab: Lab) => unknown,
  args: string[],
  traffic: (lab: Lab) => Promise<unknown>,
): Promise<string> {
  const lab = new Lab();
  try {
    await setup(lab);
    const pt = await startPlain(['--netns', lab.server.netns, ...args]);
    await traffic(lab);
    await sleep(400 * SLOWDOWN);
    pt.child.kill('SIGINT');
    assert.equal(await pt.exit, 0, pt.err());
    return pt.out();
  } finally {
    lab.destroy();
  }
}

for (const family of [4, 6] as const) {
  test(`IPv${family}, no program listens on queue 0: the SYN dropped where it could not be queued, the rule, the queue, the advice`, async (t) => {
    if (!needsRoot(t)) return;
    await traceQueue(
      queueLab(t, family),
      (lab) => connect(lab, 1500, family),
      ({ lab, packets, result }) => {
        assert.equal(result.ok, false, 'the client never connects');
        const drops = queueDrops(packets);
        assert.ok(
          drops.length >= 2,
          `the SYN and its retransmission dropped: ${JSON.stringify(packets.map((p) => p.drop))}`,
        );
        const cmd = family === 4 ? 'iptables' : 'ip6tables';
        for (const { drop, tcp } of drops) {
          assert.deepEqual([drop.layer, drop.hook, drop.location], ['netfilter', 'LOCAL_IN', 'nf_queue']);
          assert.equal(drop.reason, 'NOT_SPECIFIED');
          assert.deepEqual(
            [drop.nfqueue.cause, drop.nfqueue.queue, drop.nfqueue.queue_last, drop.nfqueue.bypass],
            ['no-listener', 0, 0, false],
          );
          assert.deepEqual(drop.nfqueue.listeners, [], 'no line for queue 0 in /proc/net/netfilter/nfnetlink_queue');
          assert.equal(
            drop.explanation,
            'an NFQUEUE rule sent it to queue 0, where no program listens: the kernel drops what it cannot queue unless the rule says bypass (--queue-bypass) (nf_queue)',
          );
          assert.deepEqual(
            [drop.table, drop.chain, drop.rule.text, drop.guess],
            ['filter', 'INPUT', `${cmd} -A INPUT -p tcp -m tcp --dport 3306 -j NFQUEUE --queue-num 0`, undefined],
          );
          // The first by its counter; a later one's count may have come in the reading made for the one before.
          assert.match(drop.rule.found, drop === drops[0]!.drop ? /^counters\+match$/ : /^(counters\+)?match$/);
          assert.equal(drop.remove, removeRule(lab, family));
          assert.equal(drop.exact, undefined, 'the rule is known: nothing to advise for it');
          assert.deepEqual(drop.advice.slice(0, 2), [
            'start the program that reads queue 0 (an IPS such as suricata -q 0)',
            `ip netns exec ${lab.server.netns} ${cmd} -R INPUT 1 -p tcp -m tcp --dport 3306 -j NFQUEUE --queue-num 0 --queue-bypass (fail-open: packets pass while no program listens)`,
          ]);
          assert.equal(tcp.saw, false);
        }
      },
    );
  });
}

test('no listener, in text: the why, the queue line, the advice and the rule; --rule-trace names it and is not advised', async (t) => {
  if (!needsRoot(t)) return;
  const q = queueLab(t, 4);
  let ns = '';
  const out = await plainTrace(
    (lab) => ((ns = lab.server.netns), q.setup(lab)),
    ['--port', String(PORT), '--rule-trace'],
    (lab) => connect(lab, 400),
  );
  if (!q.made.ok) return;
  const block = out.split(/\n(?=\d)/).find((b) => / in +SYN /.test(b) && b.includes('dropped'));
  assert.ok(block, out);
  for (const line of [
    'NOT_SPECIFIED at nf_queue (netfilter, hook LOCAL_IN) · silently: no answer was sent',
    'why: an NFQUEUE rule sent it to queue 0, where no program listens: the kernel drops what it cannot queue unless the rule says bypass (--queue-bypass) (nf_queue)',
    'nfqueue: queue 0: no program listens · bypass off',
    `next: start the program that reads queue 0 (an IPS such as suricata -q 0) · ip netns exec ${ns} iptables -R INPUT 1 -p tcp -m tcp --dport 3306 -j NFQUEUE --queue-num 0 --queue-bypass (fail-open: packets pass while no program listens) · ip netns exec ${ns} cat /proc/net/netfilter/nfnetlink_queue`,
    // nftables' trace names the rule (its verdict: queue).
    'table ip filter chain INPUT (iptables-nft): iptables -A INPUT -p tcp -m tcp --dport 3306 -j NFQUEUE --queue-num 0 [found by trace]',
    `inspect: ip netns exec ${ns} iptables -L INPUT -v -n --line-numbers · remove: ip netns exec ${ns} iptables -D INPUT 1`,
  ])
    assert.ok(block.includes(line), `${line}\nnot in:\n${block}`);
  assert.ok(!/pathtrace --rule-trace/.test(out), `--rule-trace is on: never advised\n${out}`);
  assert.match(out, /\d+ × an NFQUEUE rule sent it to queue 0, where no program listens/);
});

test('a listener that accepts: the SYN goes on through the queue to TCP, and the connection is made', async (t) => {
  if (!needsRoot(t)) return;
  const q = queueLab(t, 4, 'accept');
  await traceQueue(
    q,
    (lab) => connect(lab, 400),
    ({ packets, result }) => {
      assert.equal(result.ok, true, JSON.stringify(result));
      assert.ok(q.made.nfq!.verdicts() >= 1, 'the listener gave verdicts');
      assert.deepEqual(unexpectedDrops(packets), []);
      const syn = packets.find((p) => p.direction === 'in' && p.tcp_flags === 'S');
      assert.ok(syn, JSON.stringify(packets));
      assert.deepEqual([syn.fate, syn.tcp.saw, syn.tcp.reply], ['delivered', true, 'SA']);
      // It left LOCAL_IN after the queue: the hook's exit probe saw it come back.
      assert.ok(
        syn.steps.some((s) => s.hook === 'LOCAL_IN' && s.at === 'exit'),
        JSON.stringify(syn.steps),
      );
    },
  );
});

test('a listener that drops: its drop verdict, named with the program, in JSON and in text', async (t) => {
  if (!needsRoot(t)) return;
  const q = queueLab(t, 4, 'drop');
  const said = () =>
    `the program listening on queue 0 (pathtrace-nfq[${q.made.nfq!.pid}]) returned a drop verdict for it`;
  await traceQueue(
    q,
    (lab) => connect(lab, 400),
    ({ packets }) => {
      const nfq = q.made.nfq!;
      const [d] = queueDrops(packets);
      assert.ok(d, JSON.stringify(packets.map((p) => p.drop)));
      assert.match(d.drop.location, /^(nfqnl_reinject|nf_reinject)$/);
      assert.equal(d.drop.reason, 'NOT_SPECIFIED');
      assert.equal(d.drop.explanation, `${said()} (${d.drop.location})`);
      assert.equal(d.drop.nfqueue.cause, 'drop-verdict');
      const [l] = d.drop.nfqueue.listeners;
      assert.deepEqual(
        [l?.queue, l?.portid, l?.pid, l?.comm, l?.copy_mode],
        [0, nfq.portid, nfq.pid, 'pathtrace-nfq', 1],
      );
      assert.ok(l!.id_sequence >= 1);
      assert.deepEqual(
        [d.drop.rule.text, d.drop.rule.found],
        ['iptables -A INPUT -p tcp -m tcp --dport 3306 -j NFQUEUE --queue-num 0', 'counters+match'],
      );
      assert.ok(d.drop.advice.includes(`ps -o pid,comm,args -p ${nfq.pid}`), d.drop.advice.join('\n'));
      assert.ok(!d.drop.advice.some((a) => a.includes('bypass')), 'a listener is there: no bypass advised');
    },
  );
  if (!q.made.ok) return;
  const out = await plainTrace(q.setup, ['--port', String(PORT)], (lab) => connect(lab, 400));
  const nfq = q.made.nfq!; // the second lab's
  assert.match(out, new RegExp(`why: ${said().replace(/[[\]()]/g, '\\$&')} \\((nfqnl_reinject|nf_reinject)\\)`));
  assert.ok(
    out.includes(
      `nfqueue: queue 0: pathtrace-nfq[${nfq.pid}] listens (netlink port ${nfq.portid}) · 0 waiting · copies meta`,
    ),
    out,
  );
  assert.ok(out.includes(`ps -o pid,comm,args -p ${nfq.pid}`), out);
});

test('a queue that overflows: the listener holds one packet, the next are dropped as its queue is full; with fail-open they pass', async (t) => {
  if (!needsRoot(t)) return;
  for (const failOpen of [false, true]) {
    const q = queueLab(t, 4, 'hold', 'maxlen', '1', ...(failOpen ? ['fail-open'] : []));
    await traceQueue(
      q,
      (lab) => connect(lab, 2500),
      ({ packets }) => {
        const nfq = q.made.nfq!;
        const syns = packets.filter((p) => p.direction === 'in' && p.tcp_flags === 'S');
        if (failOpen) {
          // The first waits in the queue (never answered); the queue full, the next passes to TCP.
          assert.deepEqual(queueDrops(packets), []);
          assert.ok(
            syns.some((s) => s.fate === 'delivered' && s.tcp.saw),
            JSON.stringify(syns),
          );
          return;
        }
        const drops = queueDrops(packets);
        assert.ok(drops.length >= 1, JSON.stringify(syns.map((s) => [s.fate, s.drop])));
        for (const { drop } of drops) {
          assert.deepEqual([drop.location, drop.nfqueue.cause], ['nf_queue', 'queue-full']);
          assert.ok(drop.nfqueue.grew.queue_dropped >= 1);
          const [l] = drop.nfqueue.listeners;
          assert.deepEqual([l?.pid, l?.queue_total], [nfq.pid, 1], 'one packet waits, held');
          assert.ok(l!.queue_dropped >= 1);
          assert.match(
            drop.explanation,
            new RegExp(
              `^an NFQUEUE rule sent it to queue 0, whose queue was full: pathtrace-nfq\\[${nfq.pid}\\] gives verdicts too slowly`,
            ),
          );
          assert.match(drop.advice[0]!, /answers too slowly: more queues and threads \(--queue-balance\)/);
        }
        // The one it holds is not a drop: it waits, unfinished.
        assert.ok(
          syns.some((s) => s.fate === 'unfinished'),
          JSON.stringify(syns.map((s) => s.fate)),
        );
      },
    );
  }
});

test('a listener that goes away with packets waiting: the kernel drops them, and says the listener is gone', async (t) => {
  if (!needsRoot(t)) return;
  const q = queueLab(t, 4, 'hold');
  await traceQueue(
    q,
    async (lab) => {
      const client = connect(lab, 1500);
      await sleep(1300 * SLOWDOWN); // the SYN and its retransmission wait in the queue
      q.made.nfq?.child.kill('SIGKILL');
      return client;
    },
    ({ packets }) => {
      // Those that waited, freed as the queue went with its listener; any that came after, not queued at all.
      const [waited, after] = partition(queueDrops(packets), (p) => p.drop.location !== 'nf_queue');
      assert.ok(waited.length >= 1, JSON.stringify(packets.map((p) => [p.fate, p.drop])));
      for (const { drop } of waited) {
        assert.match(drop.location, /^(nfqnl_reinject|nf_reinject|nfqnl_flush)$/);
        assert.deepEqual([drop.nfqueue.cause, drop.nfqueue.listeners], ['listener-gone', []]);
        assert.match(drop.explanation, /^it waited in queue 0 for a verdict, and no program listens there now/);
        assert.equal(drop.advice[0], 'start the program that reads queue 0 again');
      }
      for (const { drop } of after) assert.equal(drop.nfqueue.cause, 'no-listener');
    },
  );
});
