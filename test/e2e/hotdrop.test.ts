// Matches that drop a packet by themselves ("hotdrop"), with no verdict of their rule: connlimit when it cannot
// count the connection (here: the client's reset after the server closed, which this kernel's connlimit drops), and
// hashlimit when its table has no room. The rule's counter does not move (the counter comes after the match): only
// the match can have dropped the packet, and pathtrace says so instead of guessing at the rule.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Lab } from '../../src/lab/lab.js';
import { moved, readCounters } from '../helpers/kernel-counters.js';
import { needsRoot, sleep, traceLab, type Packet } from '../helpers/pathtrace.js';

const PORT = 3306;
const netfilterDrops = (ps: Packet[]) => ps.filter((p) => p.fate === 'dropped' && p.drop.layer === 'netfilter');

/** A rule the match is in, and the traffic that meets its hotdrop; what the kernel's counters saw. */
async function traced(
  rule: string[],
  traffic: (lab: Lab) => Promise<unknown>,
  check: (drops: Packet[], moved: string[], lab: Lab) => void,
): Promise<void> {
  await traceLab(
    {
      traced: (lab) => lab.server.netns,
      setup: async (lab) => {
        lab.exec(lab.server.netns, 'iptables', ['-A', 'INPUT', '-p', 'tcp', '--dport', String(PORT), ...rule]);
        await lab.listen('tcp', PORT);
      },
      args: ['--port', String(PORT)],
      traffic: async (lab) => {
        const before = readCounters(lab, lab.server.netns);
        await traffic(lab);
        await sleep(200);
        return moved(before, readCounters(lab, lab.server.netns));
      },
    },
    ({ packets, result, lab }) => check(netfilterDrops(packets), result, lab),
  );
}

/** The drop is the match's own, named as such with its rule, and not guessed. */
function hotdropped(d: Packet, match: string, rule: RegExp): void {
  assert.equal(d.drop.answered, false, 'a hotdrop answers nothing');
  assert.equal(d.drop.guess, undefined, JSON.stringify(d.drop));
  assert.deepEqual([d.drop.hotdrop.match, d.drop.hotdrop.sure, d.drop.rule.found], [match, true, 'hotdrop']);
  assert.match(d.drop.rule.text, rule);
  assert.equal(d.drop.hotdrop.rule, d.drop.rule.text);
}

test("connlimit drops the client's reset by itself: named as the match's drop, not the REJECT's", async (t) => {
  if (!needsRoot(t)) return;
  const rule = ['-m', 'connlimit', '--connlimit-above', '100', '-j', 'REJECT'];
  await traced(
    rule,
    // The server writes and closes; the client answers its FIN with a reset. This kernel's connlimit drops most
    // such resets, not every one (it depends on when its list of the connections was last cleaned): three of them.
    async (lab) => {
      for (let i = 0; i < 3; i++) await lab.connect('tcp', lab.server.v4, PORT, 1000, lab.client, '--reset');
    },
    (drops, counted, lab) => {
      if (!drops.length) return t.skip("this kernel's connlimit counted the resets: no hotdrop to name");
      assert.deepEqual(counted, [], `no rule or policy counted it: ${counted}`);
      for (const d of drops) {
        assert.match(d.tcp_flags, /^RA?$/, "a reset: the client's, then its answers to the FIN the server sends again");
        hotdropped(d, 'connlimit', /-m connlimit --connlimit-above 100 .*-j REJECT/);
        assert.equal(d.drop.remove, `ip netns exec ${lab.server.netns} iptables -D INPUT 1`);
      }
    },
  );
});

test('hashlimit with no room in its table drops a new source by itself, though its rule would accept', async (t) => {
  if (!needsRoot(t)) return;
  const rule = [
    ...['-m', 'hashlimit', '--hashlimit-upto', '100/sec', '--hashlimit-mode', 'srcip', '--hashlimit-name', 'conns'],
    ...['--hashlimit-htable-size', '1', '--hashlimit-htable-max', '1', '-j', 'ACCEPT'],
  ];
  const second = '198.18.0.99';
  await traced(
    rule,
    // The client's address takes the table's one entry; a SYN from its second address finds no room.
    async (lab) => {
      lab.ip(lab.client.netns, 'addr', 'add', `${second}/24`, 'dev', lab.client.ifname);
      assert.equal((await lab.connect('tcp', lab.server.v4, PORT, 400)).ok, true);
      assert.equal((await lab.connect('tcp', lab.server.v4, PORT, 400, lab.client, '--from', second)).ok, false);
    },
    (drops) => {
      assert.ok(drops.length >= 1, 'the SYN from the second address was dropped');
      for (const d of drops) {
        assert.deepEqual([d.tcp_flags, d.src], ['S', second]);
        hotdropped(d, 'hashlimit', /-m hashlimit .*--hashlimit-htable-max 1 -j ACCEPT$/);
      }
    },
  );
});
