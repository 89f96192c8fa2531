// The human output, from the recorded experiments: the facts a tcpdump user needs are there.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatJourney, formatSummary, pathLine, PLAIN, ruleLines, tcpdumpFlags } from '../../src/output/text.js';
import { Tally } from '../../src/report/tally.js';
import { clock } from '../../src/report/clock.js';
import { loadEvents, replay } from '../helpers/replay.js';

const devices = { name: (i: number) => (i === 2 ? 'eth0' : `if${i}`) };

function run(name: string) {
  const { journeys, correlator } = replay(loadEvents(name));
  const tally = new Tally();
  journeys.forEach((j) => tally.add(j));
  const summary = tally.summary(correlator, {
    lostEvents: 0,
    events: 0,
    durationNs: 4e9,
    stoppedBy: 'signal',
    unavailable: [],
    counters: null,
  });
  return { journeys, summary };
}

test('tcpdump flag notation', () => {
  assert.equal(tcpdumpFlags(0x02), 'S');
  assert.equal(tcpdumpFlags(0x12), 'S.');
  assert.equal(tcpdumpFlags(0x18), 'P.');
  assert.equal(tcpdumpFlags(0x11), 'F.');
  assert.equal(tcpdumpFlags(0x04), 'R');
});

test("clock: tcpdump's HH:MM:SS.uuuuuu in local time, a fraction of a µs cut off", () => {
  const us = new Date(2024, 0, 2, 13, 42, 48).getTime() * 1000 + 672669.75;
  assert.equal(clock(us), '13:42:48.672669');
  assert.equal(clock(us - 672669.75 + 5), '13:42:48.000005');
  assert.equal(clock(us + 327330.5), '13:42:49.000000');
});

test('local-in: the path shows tcpdump saw it and LOCAL_IN dropped it; the summary explains', () => {
  const { journeys, summary } = run('local-in');
  assert.equal(
    pathLine(journeys[0], devices, PLAIN),
    'rx eth0 ─ tcpdump ✓ ─ PRE_ROUTING ✓ ─ route: local ─ LOCAL_IN ✗ dropped',
  );
  const block = formatJourney(journeys[1], devices, 0, PLAIN);
  assert.match(
    block,
    /^\d\d:\d\d:\d\d\.\d{6} in {2}SYN 198\.18\.0\.1:\d+ → 198\.18\.0\.2:3306 \[S\] seq \d+ len 0 \(retransmission 1\)$/m,
  );
  assert.match(
    block,
    /NETFILTER_DROP at nft_do_chain \(netfilter, hook LOCAL_IN\) · silently: no answer was sent · TCP never saw it/,
  );
  const text = formatSummary(summary);
  assert.match(text, new RegExp(`── ${journeys.length} packets: ${journeys.length} dropped · 0 events lost`));
  assert.match(
    text,
    /tcpdump shows \d+ SYN arriving: it captures them at the device, before netfilter\. They were dropped afterwards, at LOCAL_IN/,
  );
});

test('local-out: SYN delivered and answered, SYN-ACK dropped before the tap', () => {
  const { journeys, summary } = run('local-out');
  const synack = journeys.find((j) => j.direction === 'out')!;
  assert.equal(
    pathLine(synack, devices, PLAIN),
    "TCP socket ─ LOCAL_OUT ✗ dropped · tcpdump ✗ (never reached a device's capture point)",
  );
  assert.match(
    formatJourney(journeys[0], devices, 0, PLAIN),
    /route: local ─ LOCAL_IN ✓ ─ TCP socket ─ delivered\n {2}freed by tcp_rcv_state_process · TCP answered SYN-ACK/,
  );
  const text = formatSummary(summary);
  assert.match(text, /TCP received every one: it answered each with a SYN-ACK from a request socket in SYN_RECV/);
  assert.match(text, /tcpdump shows none of the \d+ SYN-ACK sent by this host: they were dropped at LOCAL_OUT/);
});

test('a connection that works explains nothing away: no drop, no warnings', () => {
  const { journeys, summary } = run('connect-ok');
  assert.match(
    pathLine(journeys[1], devices, PLAIN),
    /^TCP socket ─ LOCAL_OUT ✓ ─ POST_ROUTING ✓ ─ tcpdump ✓ ─ tx eth0 ─ sent$/,
  );
  const text = formatSummary(summary);
  assert.doesNotMatch(text, /dropped|What tcpdump shows/);
  assert.match(text, /^ {2}SYN reached TCP \(SYN_RECV\); socket LISTEN→SYN_RECV→ESTABLISHED→FIN_WAIT1→FIN_WAIT2$/m);
});

test('a trace ended by its namespace going away says so', () => {
  const { summary } = run('connect-ok');
  assert.doesNotMatch(formatSummary(summary), /namespace is gone/);
  assert.match(
    formatSummary({ ...summary, stoppedBy: 'netns-gone' }),
    /stopped: the traced network namespace is gone \(deleted, or its last process exited\)/,
  );
});

test("a match's own drop (hotdrop) is told as the match's, not the rule's verdict", () => {
  const rule = 'iptables -A INPUT -p tcp -m tcp --dport 3306 -m connlimit --connlimit-above 100 -j REJECT';
  const base = { table: 'filter', chain: 'INPUT', family: 'ip', source: 'iptables-nft' as const };
  const [sure] = ruleLines(
    { ...base, rule: { text: rule, position: 1, found: 'hotdrop' }, hotdrop: { match: 'connlimit', rule, sure: true } },
    PLAIN,
  );
  assert.equal(
    sure,
    `table ip filter chain INPUT (iptables-nft): the connlimit match of ${rule} dropped it itself ` +
      "(hotdrop: it could not count the connection), not the rule's verdict",
  );
  const maybe = ruleLines(
    {
      ...base,
      rule: null,
      guess: true,
      candidates: ['policy drop of ip filter INPUT', rule],
      hotdrop: { match: 'connlimit', rule, sure: false },
    },
    PLAIN,
  );
  assert.match(maybe[0]!, /which rule is a guess; candidates: policy drop of ip filter INPUT \| iptables -A INPUT/);
  assert.equal(
    maybe[1],
    `the connlimit match of ${rule} may have dropped it itself (hotdrop: it could not count the connection), ` +
      "whatever the rule's verdict",
  );
});
