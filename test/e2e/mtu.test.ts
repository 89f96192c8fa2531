// Too big for the way out: a router whose link toward the server is narrower (MTU 1280) than the client's, and a
// client whose marked packets take a narrower route than its socket's. TCP data of 1400 bytes, traced where it is
// refused: the drop with the MTU, the size, the out device and the route, the ICMP error sent back with its MTU, who
// was told, the black hole when the sender never hears it, and advice that works (MSS clamping, applied, ends it).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import { BIG_DATA, dropTooBigIcmp, NARROW_MTU, narrowTowardServer, rerouteMarked } from '../helpers/mtu.js';
import { BIN } from '../helpers/paths.js';
import { needsRoot, Pathtrace, SLOWDOWN, sleep, type Packet } from '../helpers/pathtrace.js';

const PORT = 3306;

/** Per family: the server's address, the route the router has toward it, the ICMP error that says too big. */
const FAMILIES = {
  4: { server: (l: Lab) => l.server.v4, route: '198.18.2.0/24 dev eth-srv', icmp: [3, 4], forward: 'ip_forward' },
  6: { server: (l: Lab) => l.server.v6, route: 'fd00:198:18:2::/64 dev eth-srv', icmp: [2, 0], forward: 'ip6_forward' },
} as const;

/** A router lab narrowed toward the server (setup: more), pathtrace in the namespace `at` picks, one connection
 *  sending BIG_DATA; the packets once the drop and its ICMP error are in (or the wait ran out). */
async function traceBig(
  family: 4 | 6,
  at: (lab: Lab) => string,
  setup: (lab: Lab) => void,
  connectMs = 1500,
): Promise<{ lab: Lab; packets: Packet[] }> {
  const lab = new Lab({ router: true });
  try {
    setup(lab);
    await lab.listen('tcp', PORT);
    const pt = await Pathtrace.start(['--netns', at(lab), '--port', String(PORT)]);
    await lab.connect('tcp', FAMILIES[family].server(lab), PORT, connectMs * SLOWDOWN, lab.client, '--send', BIG_DATA);
    await pt.waitFor((p) => p.icmp?.mtu !== undefined);
    await sleep(300 * SLOWDOWN);
    const { code, stderr, records } = await pt.stop();
    assert.equal(code, 0, stderr);
    return { lab, packets: records.filter((r): r is Packet => r.type === 'packet') };
  } catch (e) {
    lab.destroy();
    throw e;
  }
}

const tooBigDrops = (packets: Packet[]) => packets.filter((p) => p.drop?.reason === 'PKT_TOO_BIG');
/** The ICMP errors this host sent that say too big, with the MTU they carry. */
const tooBigErrors = (packets: Packet[], family: 4 | 6) =>
  packets.filter(
    (p) => p.icmp && p.direction === 'out' && [p.icmp.type, p.icmp.code].join() === FAMILIES[family].icmp.join(),
  );
/** The IP length of the 1400 bytes of data: its IP and TCP headers (options included) and the data. */
const ipLength = (family: 4 | 6, tcpHeader: number) => (family === 4 ? 20 : 40) + tcpHeader + BIG_DATA.length;

for (const family of [4, 6] as const) {
  test(`IPv${family} forwarded: the router refuses the data; MTU, size, out device, route; the sender told, with the MTU`, async (t) => {
    if (!needsRoot(t)) return;
    const { lab, packets } = await traceBig(family, (l) => l.router!.netns, narrowTowardServer);
    try {
      const drops = tooBigDrops(packets);
      assert.equal(drops.length, 1, JSON.stringify(packets.map((p) => [p.tcp_flags, p.len, p.fate, p.drop])));
      const d = drops[0]!;
      assert.deepEqual([d.len, d.drop.layer, d.drop.location], [BIG_DATA.length, 'ip', FAMILIES[family].forward]);
      const t = d.drop.too_big;
      // Its IP length, as the kernel held it against the MTU: above 1400 bytes by headers of 40 to 100.
      assert.ok(t.size >= ipLength(family, 20) && t.size <= ipLength(family, 60), `size ${t.size}`);
      assert.deepEqual(
        { mtu: t.mtu, source: t.mtu_source, dev: t.dev, route: t.route, told: t.told, resent: t.resent_after_told },
        { mtu: NARROW_MTU, source: 'icmp', dev: 'eth-srv', route: FAMILIES[family].route, told: true, resent: 0 },
      );
      assert.equal(t.route_differs, undefined);
      assert.equal(
        d.drop.explanation,
        `too big for the way out: ${t.size} bytes, MTU 1280 on eth-srv (route ${FAMILIES[family].route}); this host told the sender (ICMP packet too big, MTU 1280)`,
      );
      const rtr = `ip netns exec ${lab.router!.netns} `;
      const dst = FAMILIES[family].server(lab);
      assert.deepEqual(d.drop.advice.slice(0, 3), [
        `${rtr}ip ${family === 6 ? '-6 ' : ''}route get ${dst}`,
        `${rtr}ip link show dev eth-srv`,
        `${rtr}tracepath -n ${dst}`,
      ]);
      assert.match(d.drop.advice[3]!, /^MSS clamping: .*--clamp-mss-to-pmtu \(nft, in a forward chain: .*rt mtu\)$/);
      // The ICMP error it sent back: the kernel's, in the packet's flow, with the MTU.
      const errors = tooBigErrors(packets, family);
      assert.equal(errors.length, 1, JSON.stringify(packets.map((p) => p.icmp)));
      assert.deepEqual([errors[0]!.icmp.mtu, errors[0]!.flow, errors[0]!.origin], [NARROW_MTU, d.flow, 'stack']);
      // The sender learnt it: the same data again, in segments that fit, went through.
      const again = packets.find((p) => p.seq === d.seq && p.len === d.len && p.fate === 'forwarded');
      assert.ok(again, JSON.stringify(packets.map((p) => [p.seq, p.len, p.fate])));
    } finally {
      lab.destroy();
    }
  });
}

test('the text: the drop in words with its advice, the ICMP error as packet too big with its MTU', async (t) => {
  if (!needsRoot(t)) return;
  const lab = new Lab({ router: true });
  try {
    narrowTowardServer(lab);
    await lab.listen('tcp', PORT);
    const child = spawn(process.execPath, [BIN, '--plain', '--netns', lab.router!.netns, '--port', String(PORT)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    const exited = new Promise((r) => child.on('exit', r));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        err += d;
        if (err.includes('Ctrl-C to stop')) resolve();
      });
      child.on('exit', (code) => reject(new Error(`pathtrace exited (${code}): ${err}`)));
    });
    await lab.connect('tcp', lab.server.v4, PORT, 1500 * SLOWDOWN, lab.client, '--send', BIG_DATA);
    await sleep(500 * SLOWDOWN);
    child.kill('SIGINT');
    await exited;
    const lines = out.split('\n');
    const at = lines.findIndex((l) => / PSH-ACK 198\.18\.1\.1:\d+ → 198\.18\.2\.2:3306 .* len 1400$/.test(l));
    assert.ok(at >= 0, out);
    const block = lines.slice(at, at + 5).join('\n');
    assert.match(block, /\n {2}PKT_TOO_BIG at ip_forward \(ip\)\n/);
    assert.match(
      block,
      /\n {2}why: too big for the way out: \d+ bytes, MTU 1280 on eth-srv \(route 198\.18\.2\.0\/24 dev eth-srv\); this host told the sender \(ICMP packet too big, MTU 1280\)\n/,
    );
    assert.match(
      block,
      /\n {2}next: .*ip route get 198\.18\.2\.2 · .*ip link show dev eth-srv · .*tracepath -n 198\.18\.2\.2 · MSS clamping: /,
    );
    assert.match(
      out,
      /\d out ICMP packet too big, MTU 1280 198\.18\.1\.254 → 198\.18\.1\.1 about tcp 198\.18\.1\.1:\d+ → 198\.18\.2\.2:3306\n/,
    );
    assert.match(out, /Drops by cause:\n {2}1 × too big for the way out: \d+ bytes, MTU 1280 on eth-srv/);
  } finally {
    lab.destroy();
  }
});

test('a path MTU black hole: the client drops the ICMP errors, sends the same segment again, refused again', async (t) => {
  if (!needsRoot(t)) return;
  const { lab, packets } = await traceBig(
    6,
    (l) => l.router!.netns,
    (l) => {
      narrowTowardServer(l);
      dropTooBigIcmp(l, 6);
    },
  );
  try {
    const drops = tooBigDrops(packets);
    assert.ok(drops.length >= 2, `retransmitted and refused again: ${drops.length}`);
    const [first, ...rest] = drops;
    assert.deepEqual([first!.retransmit, first!.drop.too_big.resent_after_told], [0, 0]);
    for (const d of rest) {
      assert.deepEqual([d.seq, d.drop.too_big.size], [first!.seq, first!.drop.too_big.size], 'the same segment');
      assert.ok(d.retransmit > 0 && d.drop.too_big.resent_after_told > 0, JSON.stringify(d.drop.too_big));
      assert.match(
        d.drop.explanation,
        /; the sender sent this same segment again after this host had told it the MTU: the ICMP errors do not reach it, or it ignores them \(a path MTU black hole/,
      );
    }
    assert.ok(tooBigErrors(packets, 6).length >= 2, 'each refusal was told, as far as the rate limit lets it');
    assert.equal(
      packets.filter((p) => p.len === BIG_DATA.length && p.fate === 'forwarded').length,
      0,
      'it never got through',
    );
  } finally {
    lab.destroy();
  }
});

test("MSS clamping as advised, on the router: the server's SYN-ACK announces what fits, nothing is too big", async (t) => {
  if (!needsRoot(t)) return;
  const before = await traceBig(4, (l) => l.router!.netns, narrowTowardServer);
  const advice = tooBigDrops(before.packets)[0]?.drop.advice.find((a) => a.startsWith('MSS clamping: '));
  before.lab.destroy();
  assert.ok(advice, 'the drop advised MSS clamping');
  const command = advice
    .replace(/^MSS clamping: /, '')
    .replace(/ \(nft.*$/, '')
    .split(' ');
  const lab = new Lab({ router: true });
  try {
    narrowTowardServer(lab);
    // The same command in this lab's router.
    command.splice(0, 4, 'ip', 'netns', 'exec', lab.router!.netns);
    lab.exec(lab.router!.netns, command[4]!, command.slice(5));
    await lab.listen('tcp', PORT);
    const pt = await Pathtrace.start(['--netns', lab.router!.netns, '--port', String(PORT)]);
    const client = await lab.connect('tcp', lab.server.v4, PORT, 1500 * SLOWDOWN, lab.client, '--send', BIG_DATA);
    await sleep(500 * SLOWDOWN);
    const { records } = await pt.stop();
    const packets = records.filter((r): r is Packet => r.type === 'packet');
    assert.equal(client.ok, true, JSON.stringify(client));
    assert.deepEqual(tooBigDrops(packets), []);
    // Sent at once in segments that fit (one GSO packet on the veth, cut at eth-srv), no ICMP error needed.
    const data = packets.find((p) => p.len === BIG_DATA.length && p.src === lab.client.v4);
    assert.deepEqual(
      [data?.retransmit, data?.fate],
      [0, 'forwarded'],
      JSON.stringify(packets.map((p) => [p.len, p.fate])),
    );
    assert.deepEqual(tooBigErrors(packets, 4), []);
  } finally {
    lab.destroy();
  }
});

for (const family of [4, 6] as const) {
  test(`IPv${family} sent by this host: marked, rerouted by a narrower route than its socket's, refused before the device`, async (t) => {
    if (!needsRoot(t)) return;
    const { lab, packets } = await traceBig(
      family,
      (l) => l.client.netns,
      (l) => rerouteMarked(l, family, PORT),
    );
    try {
      const drops = tooBigDrops(packets);
      assert.equal(drops.length, 1, JSON.stringify(packets.map((p) => [p.tcp_flags, p.len, p.fate, p.drop])));
      const d = drops[0]!;
      // Fragmentation refused it naming no reason; the ICMP error the kernel sent its own socket tells it.
      assert.deepEqual([d.direction, d.drop.location], ['out', family === 4 ? 'ip_fragment' : 'ip6_fragment']);
      assert.match(
        d.drop.inferred,
        /^this host sent ICMP (fragmentation needed|packet too big) \(MTU 1280\) from ip6?_fragment/,
      );
      const tb = d.drop.too_big;
      assert.deepEqual([tb.mtu, tb.dev, tb.told, tb.route_differs], [NARROW_MTU, 'eth0', true, true]);
      // A lookup now takes the main table's route, not table 100's that the mark chose: said, not passed off as it.
      const gw = family === 4 ? lab.router!.toClient.v4 : lab.router!.toClient.v6;
      assert.equal(tb.route, `default via ${gw} dev eth0`);
      assert.match(
        d.drop.explanation,
        /MTU 1280 \(its route's mtu\) on eth0 \(a route lookup now answers "default via .* dev eth0", not the way it took: policy routing \(ip rule\), or a change since\); this host sent it, and told its own socket \(ICMP packet too big, MTU 1280\)/,
      );
      assert.match(
        d.drop.advice.at(-1)!,
        /ip rule \(a mark or a rule can route it elsewhere than its socket's route\)$/,
      );
      const error = tooBigErrors(packets, family)[0];
      assert.deepEqual([error?.icmp.mtu, error?.dst, error?.flow], [NARROW_MTU, d.src, d.flow]);
    } finally {
      lab.destroy();
    }
  });
}
