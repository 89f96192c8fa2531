// NFQUEUE drops, without the kernel: a queue rule's target as iptables and nft write it, the queues' proc
// files, what a drop at each freeing place amounts to, the rule behind it, and the words and advice.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { render } from 'ink-testing-library';
import { createElement } from 'react';
import type { Journey } from '../../src/correlate/journey.js';
import { attributeDrop, attributedRule, type DropContext } from '../../src/rules/attribute.js';
import { needsAttribution, RuleAttributor } from '../../src/rules/attribution.js';
import { parseQueueTarget } from '../../src/rules/iptables.js';
import { ruleKey, type Ruleset } from '../../src/rules/model.js';
import {
  nfqueueFree,
  parseNetlinkSockets,
  parseQueueProc,
  queueFacts,
  type QueueListener,
} from '../../src/rules/nfqueue.js';
import { parseNftJson } from '../../src/rules/nft.js';
import { assemble, RulesetReader } from '../../src/rules/read.js';
import { RuleTrace } from '../../src/rules/ruletrace.js';
import { queueFactsLine } from '../../src/report/nfqueue.js';
import { dropAdvice, explainDrop } from '../../src/report/reasons.js';
import { nfqueueRecord } from '../../src/output/json.js';
import { formatJourney, ruleLines, PLAIN } from '../../src/output/text.js';
import { packetLine, PacketDetail } from '../../src/tui/App.js';
import { FIXTURES } from '../helpers/paths.js';
import { loadEvents, replay } from '../helpers/replay.js';

const fixture = (name: string) => readFileSync(path.join(FIXTURES, 'rulesets', name), 'utf8');
// An IPS's shape, loaded with iptables-nft in a namespace: INPUT sends MySQL to queue 0, DNS to queues 2-3
// (bypass, cpu fanout), drops SMTP; FORWARD queues all to 1 (bypass); ip6tables queues MySQL to queue 0.
const ips = () =>
  assemble(
    fixture('nfqueue-ips.json'),
    fixture('nfqueue-ips.listing'),
    fixture('nfqueue-ips.rules'),
    fixture('nfqueue-ips.rules6'),
    '',
    '',
  );
const input = (rs: Ruleset, family = 'ip') => rs.chains.find((c) => c.family === family && c.name === 'INPUT')!;

// /proc/net/netfilter/nfnetlink_queue and /proc/net/netlink as this machine's kernel (6.18) wrote them, with
// pathtrace-nfq bound to queue 0.
const PROC_QUEUES = '    0  10945     1 1     0     2     0        1  1\n';
const PROC_NETLINK = `sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode
00000000732a361d 0   0          00000000 0        0        0     2        0        4
0000000066e00718 12  10945      00000000 0        0        0     2        0        27451
000000009b63a7ff 12  0          00000000 0        0        0     2        0        18469
0000000012345678 16  10945      00000000 0        0        0     2        0        27452
`;
const listener = (over: Partial<QueueListener> = {}): QueueListener => ({
  ...parseQueueProc(PROC_QUEUES)[0]!,
  pid: 10945,
  comm: 'suricata',
  ...over,
});

test("a queue rule's target: iptables' options, iptables-nft's xt target read from iptables-save, nft's JSON", () => {
  assert.deepEqual(parseQueueTarget([]), { first: 0, last: 0, bypass: false, fanout: false });
  assert.deepEqual(parseQueueTarget(['--queue-num', '7', '--queue-bypass']), {
    first: 7,
    last: 7,
    bypass: true,
    fanout: false,
  });
  const rs = ips();
  const [lo, ssh, mysql, dns, smtp] = input(rs).rules;
  assert.deepEqual(
    [lo, ssh, smtp].map((r) => [r!.verdict, r!.queue]),
    [
      ['accept', undefined],
      ['accept', undefined],
      ['drop', undefined],
    ],
  );
  // nft's JSON has the xt target, opaque; iptables-save's words give the verdict and the queue.
  assert.equal(mysql!.verdict, 'queue');
  assert.deepEqual(mysql!.queue, { first: 0, last: 0, bypass: false, fanout: false });
  assert.equal(mysql!.text, 'iptables -A INPUT -p tcp -m tcp --dport 3306 -j NFQUEUE --queue-num 0');
  assert.deepEqual(dns!.queue, { first: 2, last: 3, bypass: true, fanout: true });
  assert.deepEqual(rs.chains.find((c) => c.name === 'FORWARD')!.rules[0]!.queue, {
    first: 1,
    last: 1,
    bypass: true,
    fanout: false,
  });
  // ip6tables-save writes --queue-num 0 for a bare -j NFQUEUE.
  assert.deepEqual(input(rs, 'ip6').rules[0]!.queue, { first: 0, last: 0, bypass: false, fanout: false });
  // Native nft (libnftables-json(5): "queue": {"num": EXPRESSION, "flags": FLAGS}): a number, a range, flags as
  // one string or a list; a number nft computes is beyond the model.
  const nft = (queue: unknown) =>
    parseNftJson(
      JSON.stringify({
        nftables: [
          { chain: { family: 'inet', table: 'ips', name: 'in', hook: 'input', prio: 0, policy: 'accept' } },
          { rule: { family: 'inet', table: 'ips', chain: 'in', handle: 4, expr: [{ queue }] } },
        ],
      }),
    ).chains[0]!.rules[0]!;
  assert.deepEqual(nft({ num: 5 }).queue, { first: 5, last: 5, bypass: false, fanout: false });
  assert.deepEqual(nft({ num: { range: [2, 3] }, flags: ['bypass', 'fanout'] }).queue, {
    first: 2,
    last: 3,
    bypass: true,
    fanout: true,
  });
  assert.deepEqual(nft({ flags: 'bypass' }).queue, { first: 0, last: 0, bypass: true, fanout: false });
  const hashed = nft({ num: { jhash: { expr: { payload: { protocol: 'ip', field: 'saddr' } }, mod: 2 } } });
  assert.deepEqual([hashed.verdict, hashed.queue], ['queue', undefined]);
});

test('the proc files: one line per bound queue; the listener socket of each port id in NETLINK_NETFILTER', () => {
  assert.deepEqual(parseQueueProc(PROC_QUEUES), [
    { queue: 0, portid: 10945, total: 1, copyMode: 1, copyRange: 0, dropped: 2, userDropped: 0, idSequence: 1 },
  ]);
  assert.deepEqual(parseQueueProc(''), [], 'no queue bound (or nfnetlink_queue not loaded: no file, read as "")');
  // Port 10945 has a socket of another protocol (16, generic netlink) too; only nfnetlink's counts.
  assert.deepEqual(
    [...parseNetlinkSockets(PROC_NETLINK, 12)],
    [
      [10945, 27451],
      [0, 18469],
    ],
  );
});

test('where the kernel freed it: nf_queue could not queue it; nf_reinject (nfqnl_reinject, inlined, 6.9+) after', () => {
  assert.equal(nfqueueFree('nf_queue'), 'unqueued');
  for (const at of ['nf_reinject', 'nfqnl_reinject', 'nfqnl_flush', 'nfqnl_recv_verdict'])
    assert.equal(nfqueueFree(at), 'after-queue', at);
  // A GSO packet whose segments were queued is freed here: not a drop of the queue's.
  for (const at of ['nfqnl_enqueue_packet', 'nft_do_chain', 'nf_hook_slow', 'tcp_v4_rcv'])
    assert.equal(nfqueueFree(at), null, at);
});

test('what a queue drop amounts to, from the queues before and after it', () => {
  const q0 = { first: 0, last: 0, bypass: false, fanout: false };
  // Nothing bound on the rule's queue (another queue's listener does not count).
  assert.equal(queueFacts('unqueued', q0, [], [listener({ queue: 4 })]).cause, 'no-listener');
  assert.equal(queueFacts('unqueued', q0, null, []).cause, 'no-listener');
  // With bypass an absent listener lets it pass: not why it was dropped.
  assert.equal(queueFacts('unqueued', { ...q0, bypass: true }, [], []).cause, 'not-queued');
  // The same listener's counters grew since the reading before: its queue, or its socket, overflowed.
  const full = queueFacts('unqueued', q0, [listener({ dropped: 0 })], [listener({ dropped: 2 })]);
  assert.deepEqual([full.cause, full.grew], ['queue-full', { queue: 0, dropped: 2, userDropped: 0 }]);
  const sock = queueFacts('unqueued', q0, [listener({ dropped: 2 })], [listener({ dropped: 2, userDropped: 5 })]);
  assert.equal(sock.cause, 'socket-full');
  // A listener bound since (another port id), or counters that did not move: not told why.
  const since = queueFacts('unqueued', q0, [listener({ portid: 1, dropped: 0 })], [listener({ dropped: 9 })]);
  assert.equal(since.cause, 'not-queued');
  assert.equal(queueFacts('unqueued', q0, [listener()], [listener()]).cause, 'not-queued');
  // The queues could not be read: nothing claimed.
  assert.deepEqual(
    [queueFacts('unqueued', q0, null, null).cause, queueFacts('after-queue', q0, null, null).cause],
    ['not-queued', 'after-queue'],
  );
  // After the queue: a listener there gave the drop verdict; none there now, it went away with the packet.
  assert.equal(queueFacts('after-queue', q0, [listener()], [listener()]).cause, 'drop-verdict');
  assert.equal(queueFacts('after-queue', q0, [listener()], []).cause, 'listener-gone');
  // A range: one of its queues unbound is enough for the hash to pick it.
  const range = { first: 2, last: 3, bypass: false, fanout: false };
  const half = queueFacts('unqueued', range, [], [listener({ queue: 2 })]);
  assert.deepEqual([half.cause, half.listeners!.map((l) => l.queue)], ['no-listener', [2]]);
});

const ctx = (over: Partial<DropContext>): DropContext => ({
  family: 4,
  hook: 'LOCAL_IN',
  after: -Infinity,
  before: Infinity,
  location: 'nf_queue',
  packet: { family: 4, proto: 'tcp', src: '198.18.0.1', dst: '198.18.0.2', sport: 40000, dport: 3306, iif: 'eth0' },
  counterDeltas: new Map(),
  prefix: 'ip netns exec srv ',
  ...over,
});

test('the rule behind a queue drop: the queue rule whose counter moved, never the drop rules or the policy', () => {
  const rs = ips();
  const chain = input(rs);
  const mysql = chain.rules[2]!;
  const moved = new Map([[ruleKey(chain, mysql), 1]]);
  const a = attributeDrop(rs, ctx({ queued: 'unqueued', counterDeltas: moved, countersTrusted: true }))!;
  assert.deepEqual(
    [a.rule?.text, a.rule?.found, a.remove],
    [mysql.text, 'counters+match', 'ip netns exec srv iptables -D INPUT 3'],
  );
  assert.equal(attributedRule(rs, a), mysql, "the rule itself, with its target's options");
  // By its match alone as well; for SMTP, which only a DROP rule matches, no queue rule: a guess, not the DROP.
  assert.equal(attributeDrop(rs, ctx({ queued: 'unqueued' }))!.rule?.text, mysql.text);
  const smtp = attributeDrop(rs, ctx({ queued: 'unqueued', packet: { ...ctx({}).packet, dport: 25 } }))!;
  assert.deepEqual([smtp.rule, smtp.guess], [null, true]);
  // A drop elsewhere never names a queue rule.
  const plain = attributeDrop(rs, ctx({ location: 'nft_do_chain' }))!;
  assert.notEqual(plain.rule?.text, mysql.text);
});

test('--rule-trace is advised where the evidence leaves a guess, and never when it is on', () => {
  const rs = ips();
  const guess = attributeDrop(rs, ctx({ queued: 'unqueued', packet: { ...ctx({}).packet, dport: 25 } }))!;
  assert.match(guess.exact!, /^pathtrace --rule-trace/);
  assert.ok(ruleLines(guess, PLAIN).some((l) => l.includes('--rule-trace')));
  const on = attributeDrop(rs, ctx({ queued: 'unqueued', packet: { ...ctx({}).packet, dport: 25 }, ruleTrace: true }))!;
  assert.equal(on.guess, true);
  assert.equal(on.exact, undefined);
  assert.ok(!ruleLines(on, PLAIN).some((l) => l.includes('--rule-trace')), ruleLines(on, PLAIN).join('\n'));
});

test("--rule-trace: a queue rule's verdict names the rule of a packet the queue could not take", () => {
  const trace = new RuleTrace('');
  const hear = (line: string) => (trace as unknown as { onLine(l: string): void }).onLine(line);
  // As `nft -a monitor trace` printed them here for iptables-nft's -j NFQUEUE --queue-num 0.
  hear(
    'trace id f906aa2b ip filter INPUT packet: iif "eth0" ip saddr 198.18.0.1 ip daddr 198.18.0.2 ip id 57526 ip length 60 tcp sport 47284 tcp dport 3306 tcp flags == syn',
  );
  hear(
    'trace id f906aa2b ip filter INPUT rule tcp dport 3306 counter packets 4 bytes 240 queue num 0 # handle 4 (verdict queue)',
  );
  const j = { family: 4, src: '198.18.0.1', dst: '198.18.0.2', sport: 47284, dport: 3306, ipId: 57526 } as Journey;
  assert.equal(trace.take(j), undefined, 'a drop elsewhere takes no queue verdict');
  const v = trace.take(j, 'unqueued')!;
  assert.deepEqual([v.verdict, v.handle, v.rule], ['queue', 4, 'tcp dport 3306 counter queue num 0']);
});

test('the words: the cause, the queue, the listener; advice that fits, and never a flag that is on', () => {
  const rs = ips();
  const a = attributeDrop(rs, ctx({ queued: 'unqueued' }))!;
  const target = attributedRule(rs, a)!.queue!;
  const drop = (location: string, cause: ReturnType<typeof queueFacts>) => ({
    reason: 'NOT_SPECIFIED',
    location,
    layer: 'netfilter' as const,
    attribution: a,
    nfqueue: cause,
  });
  const advice = (d: ReturnType<typeof drop>) =>
    dropAdvice(d, { proto: 'tcp', src: '', dst: '', sport: 0, dport: 3306, dev: 'eth0', prefix: 'ip netns exec srv ' });

  const none = drop('nf_queue', queueFacts('unqueued', target, [], []));
  assert.equal(
    explainDrop(none),
    'an NFQUEUE rule sent it to queue 0, where no program listens: the kernel drops what it cannot queue unless the rule says bypass (--queue-bypass) (nf_queue)',
  );
  assert.equal(queueFactsLine(none.nfqueue), 'queue 0: no program listens · bypass off');
  assert.deepEqual(advice(none).slice(0, 2), [
    'start the program that reads queue 0 (an IPS such as suricata -q 0)',
    'ip netns exec srv iptables -R INPUT 3 -p tcp -m tcp --dport 3306 -j NFQUEUE --queue-num 0 --queue-bypass (fail-open: packets pass while no program listens)',
  ]);
  assert.match(advice(none)[2]!, /^ip netns exec srv cat \/proc\/net\/netfilter\/nfnetlink_queue/);
  // A rule that has bypass already is not told to add it.
  const bypassing = drop('nfqnl_reinject', queueFacts('after-queue', { ...target, bypass: true }, [], []));
  assert.match(explainDrop(bypassing), /^it waited in queue 0 for a verdict, and no program listens there now/);
  assert.ok(!advice(bypassing).some((x) => x.includes('bypass')), advice(bypassing).join('\n'));

  const verdict = drop('nfqnl_reinject', queueFacts('after-queue', target, [listener()], [listener()]));
  assert.equal(
    explainDrop(verdict),
    'the program listening on queue 0 (suricata[10945]) returned a drop verdict for it (nfqnl_reinject)',
  );
  assert.ok(advice(verdict).includes('ps -o pid,comm,args -p 10945'));

  const full = drop('nf_queue', queueFacts('unqueued', target, [listener({ dropped: 0 })], [listener()]));
  assert.match(explainDrop(full), /whose queue was full: suricata\[10945\] gives verdicts too slowly/);
  assert.equal(
    queueFactsLine(full.nfqueue),
    'queue 0: suricata[10945] listens (netlink port 10945) · 1 waiting · copies meta · 2 dropped when full (+2) · 0 dropped by its socket · bypass off',
  );
  // A listener pathtrace cannot find a process for is named by its netlink port.
  const hidden = drop('nfqnl_reinject', queueFacts('after-queue', target, [], [listener({ pid: null, comm: null })]));
  assert.match(explainDrop(hidden), /\(netlink port 10945\) returned a drop verdict/);
  // JSON: the proc file's names.
  assert.deepEqual(nfqueueRecord(full.nfqueue), {
    cause: 'queue-full',
    queue: 0,
    queue_last: 0,
    bypass: false,
    fanout: false,
    listeners: [
      {
        queue: 0,
        portid: 10945,
        pid: 10945,
        comm: 'suricata',
        queue_total: 1,
        copy_mode: 1,
        copy_range: 0,
        queue_dropped: 2,
        user_dropped: 0,
        id_sequence: 1,
      },
    ],
    grew: { queue: 0, queue_dropped: 2, user_dropped: 0 },
  });
  // Without the rule (nothing to read it from), the place alone: on 5.10 the kernel names no reason either.
  assert.match(
    explainDrop({ reason: null, location: 'nf_queue', layer: 'netfilter' }),
    /^a queue rule \(NFQUEUE\) sent it to a program's queue that could not take it \(nf_queue\)/,
  );
  assert.match(
    explainDrop({ reason: 'NOT_SPECIFIED', location: 'nf_reinject', layer: 'netfilter' }),
    /dropped after \(nf_reinject\): the program's drop verdict/,
  );
});

/** The journeys of a recorded trace (this machine's kernel, iptables-nft's -j NFQUEUE --queue-num 0 on the
 *  server), attributed against the IPS ruleset whose queue rule counted them, with these queue readings before
 *  and after. */
function attributed(fixture: string, before: QueueListener[], after: QueueListener[]): Journey[] {
  const { journeys } = replay(loadEvents(fixture));
  const initial = ips();
  const now = ips();
  const chain = input(now);
  chain.rules[2]!.counter!.packets += journeys.length;
  let reading = before;
  const a = new RuleAttributor(
    new RulesetReader(''),
    null,
    { name: () => 'eth0' },
    'ip netns exec srv ',
    initial,
    null,
    () => 0,
    () => reading,
  );
  a.take(initial, false); // the baseline, with the queues before
  reading = after;
  const dropped = journeys.filter(needsAttribution);
  a.attribute(now, dropped);
  return dropped;
}

test('recorded: nf_queue frees the SYN inside LOCAL_IN; attributed, it is the queue rule with no listener', () => {
  const js = attributed('nfqueue-no-listener', [], []);
  assert.equal(js.length, 2, 'the SYN and its retransmission');
  for (const j of js) {
    assert.deepEqual(
      [j.fate, j.drop!.layer, j.drop!.hook, j.drop!.reason, j.drop!.location],
      ['dropped', 'netfilter', 'LOCAL_IN', 'NOT_SPECIFIED', 'nf_queue'],
    );
    assert.equal(j.drop!.attribution!.rule!.text, input(ips()).rules[2]!.text);
    assert.equal(j.drop!.nfqueue!.cause, 'no-listener');
  }
  const text = formatJourney(js[0]!, { name: () => 'eth0' }, 0);
  assert.match(text, /LOCAL_IN ✗ dropped/);
  assert.match(text, /\n  nfqueue: queue 0: no program listens · bypass off\n/);
  // The UI: the list of a connection's packets, and the journey opened.
  assert.match(packetLine(js[0]!), /✗ LOCAL_IN NOT_SPECIFIED \(queue 0: no listener\) · tcpdump ✓/);
  const detail = render(createElement(PacketDetail, { j: js[0]!, devices: { name: () => 'eth0' }, startedAt: 0 }));
  try {
    assert.match(detail.lastFrame() ?? '', /why: an NFQUEUE rule sent it to queue 0, where no program listens/);
    assert.match(detail.lastFrame() ?? '', /nfqueue: queue 0: no program listens · bypass off/);
  } finally {
    detail.unmount();
  }
});

test("recorded: the listener's drop verdict frees it in nfqnl_reinject, after it waited in the queue", () => {
  const l = listener({ comm: 'pathtrace-nfq', total: 0, dropped: 0 });
  const js = attributed('nfqueue-drop-verdict', [l], [{ ...l, idSequence: 2 }]);
  assert.equal(js.length, 2);
  for (const j of js) {
    assert.deepEqual([j.drop!.hook, j.drop!.location], ['LOCAL_IN', 'nfqnl_reinject']);
    assert.equal(j.drop!.nfqueue!.cause, 'drop-verdict');
    assert.equal(
      explainDrop(j.drop!),
      'the program listening on queue 0 (pathtrace-nfq[10945]) returned a drop verdict for it (nfqnl_reinject)',
    );
  }
});
