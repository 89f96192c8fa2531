// fail2ban, the real one: its server in the server's namespace bans the client with each of its usual actions
// (iptables-multiport: a chain f2b-JAIL; iptables-ipset: an ipset f2b-JAIL matched from INPUT; nftables: a set
// in table inet f2b-table). The client's SYNs meet the ban: pathtrace names fail2ban, the jail, and the commands
// that show and lift the ban of that address.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fail2banMissing, JAIL, startFail2ban } from '../helpers/fail2ban.js';
import { moved, readCounters } from '../helpers/kernel-counters.js';
import { needsRoot, sleep, traceLab } from '../helpers/pathtrace.js';

const PORT = 3306;

/** The rule each action makes for the ban, as pathtrace (iptables-nft, nft -a list) writes it. */
const RULES: Record<string, RegExp> = {
  'iptables-multiport':
    /^iptables -A f2b-mysqld-auth -s 198\.18\.0\.1\/32 -j REJECT --reject-with icmp-port-unreachable$/,
  'iptables-ipset':
    /^iptables -A INPUT .*-m set --match-set f2b-mysqld-auth src -j REJECT --reject-with icmp-port-unreachable$/,
  nftables: /^tcp dport 3306 ip saddr @addr-set-mysqld-auth reject with icmp port-unreachable$/,
};

for (const banaction of Object.keys(RULES)) {
  test(`fail2ban (${banaction}) bans the client: the drop is fail2ban's, with its jail and the unban of that address`, async (t) => {
    if (!needsRoot(t)) return;
    const missing = fail2banMissing(banaction);
    if (missing) return t.skip(missing);
    await traceLab(
      {
        traced: (lab) => lab.server.netns,
        setup: (lab) => {
          const client = startFail2ban(lab, lab.server.netns, banaction, PORT);
          client('set', JAIL, 'banip', lab.client.v4);
        },
        args: ['--port', String(PORT)],
        traffic: async (lab) => {
          const before = readCounters(lab, lab.server.netns);
          const result = await lab.connect('tcp', lab.server.v4, PORT, 400);
          await sleep(200);
          return { result, moved: moved(before, readCounters(lab, lab.server.netns)) };
        },
      },
      ({ result, packets, lab }) => {
        assert.equal(result.result.ok, false, 'the ban refused the connection');
        const drops = packets.filter((p) => p.fate === 'dropped' && p.drop.layer === 'netfilter');
        assert.ok(drops.length >= 1, 'the SYN was dropped');
        const prefix = `ip netns exec ${lab.server.netns} `;
        for (const d of drops) {
          assert.equal(d.drop.owner, 'fail2ban', JSON.stringify(d.drop));
          assert.equal(d.drop.answered, true, 'the REJECT answered');
          assert.equal(
            d.drop.hint,
            `a fail2ban ban (jail ${JAIL}): ${prefix}fail2ban-client status ${JAIL}, ` +
              `and ${prefix}fail2ban-client set ${JAIL} unbanip ${lab.client.v4}`,
          );
          if (d.drop.guess)
            assert.ok(
              d.drop.candidates.some((c) => RULES[banaction]!.test(c)),
              JSON.stringify(d.drop),
            );
          else assert.match(d.drop.rule.text, RULES[banaction]!);
        }
        assert.ok(
          drops.some((d) => !d.drop.guess),
          `named for sure at least once: ${JSON.stringify(drops.map((d) => d.drop))}`,
        );
        // The kernel counted that rule where it counts (iptables-nft); nft's rules here have no counter.
        if (banaction !== 'nftables')
          assert.ok(
            result.moved.some((k) => RULES[banaction]!.test(k)),
            `the kernel counted the ban: ${result.moved}`,
          );
        assert.ok(
          packets.some((p) => p.direction === 'out' && p.proto === 'icmp' && p.origin === 'netfilter'),
          'the ICMP port unreachable, sent by netfilter',
        );
      },
    );
  });
}
