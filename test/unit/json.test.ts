// The NDJSON writer: the summary's drops by cause carry their rule flat, as packets' drops do.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dropRecord, summaryRecord } from '../../src/output/json.js';
import { Tally } from '../../src/report/tally.js';
import type { RuleAttribution } from '../../src/rules/attribute.js';
import { loadEvents, replay } from '../helpers/replay.js';

const RULE: RuleAttribution = {
  table: 'filter',
  chain: 'INPUT',
  family: 'ip',
  source: 'iptables-nft',
  rule: { text: 'iptables -A INPUT -p tcp -m tcp --dport 3306 -j DROP', handle: 2, position: 1, found: 'counters' },
  inspect: 'iptables -L INPUT -v -n --line-numbers',
  remove: 'iptables -D INPUT 1',
};

test("summary.drops: the rule's fields flat as in a packet's drop; attribution kept beside them (deprecated)", () => {
  const { journeys, correlator } = replay(loadEvents('local-in'));
  const tally = new Tally();
  for (const j of journeys) {
    j.drop!.attribution = RULE;
    tally.add(j);
    j.drop!.advice = ["ss -tlnp 'sport = :3306'"]; // a packet's own, set as it is written
  }
  const s = tally.summary(correlator, {
    lostEvents: 0,
    events: 0,
    durationNs: 1e9,
    stoppedBy: 'signal',
    unavailable: [],
    counters: null,
  });
  const [cause] = summaryRecord(s).drops;
  const { advice, tcp_state, ...packetDrop } = dropRecord(journeys[0]!.drop!);
  assert.deepEqual(advice, ["ss -tlnp 'sport = :3306'"]);
  assert.equal(tcp_state, undefined);
  assert.deepEqual(cause, { ...packetDrop, count: journeys.length, attribution: RULE });
  assert.equal(cause!.chain, 'INPUT');
  assert.equal(cause!.rule!.text, RULE.rule!.text);
  assert.equal('advice' in cause!, false, "a packet's advice is its own");
});

test('summary.drops: a TCP drop keeps the words it was grouped by, its state told, though the group keeps no state', () => {
  const { journeys, correlator } = replay(loadEvents('local-in'));
  const j = journeys[0]!;
  j.drop = {
    layer: 'tcp',
    hook: null,
    reason: 'TCP_ABORT_ON_DATA',
    location: 'tcp_rcv_state_process',
    tcpState: { state: 'FIN_WAIT2', from: 'FIN_WAIT1', then: ['CLOSE'] },
  };
  const tally = new Tally();
  tally.add(j);
  const s = tally.summary(correlator, {
    lostEvents: 0,
    events: 0,
    durationNs: 1e9,
    stoppedBy: 'signal',
    unavailable: [],
    counters: null,
  });
  const [cause] = summaryRecord(s).drops;
  assert.equal(cause!.explanation, dropRecord(j.drop).explanation);
  assert.match(cause!.explanation, /FIN_WAIT2/);
});
