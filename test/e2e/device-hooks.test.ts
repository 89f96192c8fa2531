// Drops at a device's own hooks, below netfilter: an XDP program (generic mode, and native on veth) and tc filters
// (a cls_bpf program on clsact ingress and egress, a tcx program), built from test/fixtures/bpf and attached as an
// operator would. pathtrace must name the program, say the packet came in, that TCP never saw it, and whether
// tcpdump did: a real tcpdump on the device is held to its word.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import { Lab } from '../../src/lab/lab.js';
import {
  addTcDrop,
  attachTcx,
  bpfObject,
  missingForPrograms,
  removeBpfObjects,
  tcBpfFilters,
  tcpdumpBeside,
  xdpProgramId,
} from '../helpers/device-programs.js';
import { needsRoot, Pathtrace, sleep, SLOWDOWN, startPlain, type Packet } from '../helpers/pathtrace.js';

const PORT = 3306;

test.after(removeBpfObjects);

function ready(t: TestContext): boolean {
  if (!needsRoot(t)) return false;
  const missing = missingForPrograms();
  if (missing) t.skip(missing);
  return !missing;
}

/** Traces the server while the client tries PORT once over family, with tcpdump on the server's eth0 beside it:
 *  the trace's packets of that port, and how many tcpdump captured. */
async function traceTry(lab: Lab, family: 4 | 6, direction: 'in' | 'out' = 'in') {
  const pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(PORT)]);
  const dump = await tcpdumpBeside(lab.server.netns, 'eth0', [
    'tcp',
    direction === 'in' ? 'dst' : 'src',
    'port',
    String(PORT),
  ]);
  const addr = family === 4 ? lab.server.v4 : lab.server.v6;
  await lab.connect('tcp', addr, PORT, 1500 * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  const captured = await dump.stop();
  const { code, records, stderr } = await pt.stop();
  assert.equal(code, 0, stderr);
  const packets = records.filter((r): r is Packet => r.type === 'packet');
  return { packets, captured };
}

const syns = (packets: Packet[]) => packets.filter((p) => p.tcp_flags === 'S' && p.dport === PORT);

for (const mode of ['generic', 'native'] as const) {
  for (const family of [4, 6] as const) {
    test(`XDP in ${mode} mode (IPv${family}): the program is named, the SYN came in, tcpdump and TCP never saw it`, async (t) => {
      if (!ready(t)) return;
      const lab = new Lab();
      t.after(() => lab.destroy());
      await lab.listen('tcp', PORT);
      const flag = mode === 'generic' ? 'xdpgeneric' : 'xdpdrv';
      lab.ip(lab.server.netns, 'link', 'set', 'dev', 'eth0', flag, 'obj', bpfObject('xdp_drop'), 'sec', 'xdp');
      const id = xdpProgramId(lab, lab.server.netns, 'eth0');
      assert.ok(id > 0, 'the program is attached');

      const { packets, captured } = await traceTry(lab, family);
      assert.equal(captured, 0, 'tcpdump on eth0 captured none: XDP runs before its capture point');
      const dropped = syns(packets);
      assert.ok(dropped.length >= 1, `the SYN and its retransmissions are traced: ${JSON.stringify(packets)}`);
      for (const p of dropped) {
        assert.equal(p.direction, 'in', 'it came in (it was told as sent by a local socket)');
        assert.equal(p.origin, undefined);
        assert.equal(p.fate, 'dropped');
        assert.equal(p.drop.layer, 'xdp');
        assert.equal(p.drop.location, mode === 'generic' ? 'do_xdp_generic' : 'veth_xdp_rcv_skb');
        assert.equal(p.tcpdump, false, 'tcpdump did not see it, and pathtrace says so');
        assert.deepEqual(p.tcp, { saw: false, reply: null }, 'TCP never saw it');
        assert.equal(p.delivery, undefined, 'no socket was involved');
        assert.deepEqual(p.drop.device, {
          hook: 'xdp',
          dev: 'eth0',
          direction: 'ingress',
          program: {
            mode,
            name: 'xdp_drop_3306',
            id,
            tag: p.drop.device.program.tag,
            found: 'only',
            remove: `ip netns exec ${lab.server.netns} ip link set dev eth0 ${flag} off`,
          },
        });
        assert.match(p.drop.device.program.tag, /^[0-9a-f]{16}$/);
        assert.match(p.drop.explanation, new RegExp(`^the XDP program xdp_drop_3306 on eth0 dropped it`));
        assert.ok(p.drop.advice.includes(`bpftool prog show id ${id}`), p.drop.advice.join(' | '));
      }
      // The command given to remove it does.
      execFileSync('sh', ['-c', dropped[0]!.drop.device.program.remove]);
      assert.equal(xdpProgramId(lab, lab.server.netns, 'eth0'), 0);
    });
  }
}

test('XDP, told in text beside tcpdump: the program named, tcpdump ✗ and why, the capture agrees', async (t) => {
  if (!ready(t)) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  await lab.listen('tcp', PORT);
  lab.ip(lab.server.netns, 'link', 'set', 'dev', 'eth0', 'xdpgeneric', 'obj', bpfObject('xdp_drop'), 'sec', 'xdp');
  const pt = await startPlain(['--netns', lab.server.netns, '--port', String(PORT), '--with-tcpdump', 'eth0']);
  await lab.connect('tcp', lab.server.v4, PORT, 1200 * SLOWDOWN);
  await sleep(300 * SLOWDOWN);
  pt.child.kill('SIGINT');
  assert.equal(await pt.exit, 0, pt.err());
  const r = { stdout: pt.out() };
  assert.match(r.stdout, /rx eth0 ─ XDP xdp_drop_3306 ✗ dropped · tcpdump ✗ \(XDP runs before the capture point\)/);
  assert.match(r.stdout, /NOT_SPECIFIED at do_xdp_generic \(xdp\) · TCP never saw it/);
  assert.match(r.stdout, /XDP on eth0: xdp_drop_3306 \(id \d+, tag [0-9a-f]+, generic\) \[the only XDP program there/);
  assert.doesNotMatch(r.stdout, /TCP received it|tcpdump ✓/);
  // tcpdump beside it captured none of them, and the comparison says why, not that the capture missed them.
  const cmp = r.stdout.slice(r.stdout.indexOf('── compared with tcpdump -i eth0'));
  const syns = (r.stdout.match(/^[\d:.]+ in +SYN 198/gm) ?? []).length;
  assert.match(cmp, new RegExp(`^── compared with tcpdump -i eth0\\n0 frames in tcpdump -i eth0, ${syns} packets`));
  assert.equal((cmp.match(/; XDP on eth0 dropped it before the capture point/g) ?? []).length, syns, cmp);
  assert.doesNotMatch(cmp, /would have seen it/);
});

test('tc ingress, a cls_bpf program on clsact: the filter is named; tcpdump saw the SYN, TCP did not', async (t) => {
  if (!ready(t)) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  await lab.listen('tcp', PORT);
  addTcDrop(lab, lab.server.netns, 'ingress');
  const [filter] = tcBpfFilters(lab, lab.server.netns, 'eth0', 'ingress');
  assert.ok(filter, 'the filter is there');

  const { packets, captured } = await traceTry(lab, 4);
  const dropped = syns(packets);
  assert.ok(dropped.length >= 1);
  assert.equal(captured, dropped.length, 'tcpdump captured each SYN: tc ingress runs after its capture point');
  for (const p of dropped) {
    assert.deepEqual([p.direction, p.fate, p.drop.layer, p.drop.reason], ['in', 'dropped', 'tc', 'TC_INGRESS']);
    assert.equal(p.tcpdump, true);
    assert.deepEqual(p.tcp, { saw: false, reply: null });
    assert.deepEqual(p.drop.device, {
      hook: 'tc',
      dev: 'eth0',
      direction: 'ingress',
      program: {
        mode: `bpf filter pref ${filter.pref} direct-action`,
        name: 'tc_drop_in',
        id: filter.id,
        tag: p.drop.device.program.tag,
        found: 'only',
        remove: `ip netns exec ${lab.server.netns} tc filter del dev eth0 ingress pref ${filter.pref}`,
      },
    });
    assert.match(p.drop.explanation, /^the tc ingress filter tc_drop_in on eth0 dropped it: after tcpdump/);
    assert.equal(p.drop.advice[0], `ip netns exec ${lab.server.netns} tc -s filter show dev eth0 ingress`);
  }
  execFileSync('sh', ['-c', dropped[0]!.drop.device.program.remove]);
  assert.deepEqual(tcBpfFilters(lab, lab.server.netns, 'eth0', 'ingress'), [], 'the command given removes it');
});

test('tc egress, a cls_bpf program dropping the SYN-ACK: TCP answered, the answer died before tcpdump', async (t) => {
  if (!ready(t)) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  await lab.listen('tcp', PORT);
  addTcDrop(lab, lab.server.netns, 'egress');
  const { packets, captured } = await traceTry(lab, 4, 'out');
  assert.equal(captured, 0, 'tcpdump captured no SYN-ACK: tc egress runs before its capture point');
  const answers = packets.filter((p) => p.tcp_flags === 'SA');
  assert.ok(answers.length >= 1, JSON.stringify(packets));
  for (const p of answers) {
    assert.deepEqual(
      [p.direction, p.origin, p.fate, p.drop.layer, p.drop.reason],
      ['out', 'socket', 'dropped', 'tc', 'TC_EGRESS'],
    );
    assert.equal(p.tcpdump, false);
    assert.equal(p.drop.device.direction, 'egress');
    assert.equal(p.drop.device.program.name, 'tc_drop_out');
  }
  // TCP saw the SYN and answered it: the SYN-ACK is its answer.
  for (const p of syns(packets)) assert.deepEqual(p.tcp, { saw: true, reply: 'SA' });
});

test('tc ingress, a tcx program (Linux 6.6+): named by its id as bpftool shows it', async (t) => {
  if (!ready(t)) return;
  const lab = new Lab();
  t.after(() => lab.destroy());
  await lab.listen('tcp', PORT);
  const id = attachTcx(`/run/netns/${lab.server.netns}`, bpfObject('tc_drop_in'), 'eth0', 'ingress');
  if (id === null) {
    t.skip('this kernel has no tcx (Linux 6.6+)');
    return;
  }
  const { packets } = await traceTry(lab, 6);
  const dropped = syns(packets);
  assert.ok(dropped.length >= 1);
  for (const p of dropped) {
    assert.deepEqual([p.drop.layer, p.drop.reason, p.tcpdump, p.tcp.saw], ['tc', 'TC_INGRESS', true, false]);
    assert.deepEqual(p.drop.device.program, {
      mode: 'tcx',
      name: 'tc_drop_in',
      id,
      tag: p.drop.device.program.tag,
      found: 'only',
      remove: `ip netns exec ${lab.server.netns} bpftool net detach tcx_ingress dev eth0`,
    });
  }
});

for (const [object, name, point, verdict, words] of [
  [
    'xdp_abort',
    'xdp_abort_3306',
    'xdp_exception',
    'XDP_ABORTED',
    'returned XDP_ABORTED \\(an error path in the program\\)',
  ],
  [
    'xdp_redirect_nowhere',
    'xdp_redir_3306',
    'xdp_redirect_err',
    'XDP_REDIRECT',
    'returned XDP_REDIRECT, and the redirect failed \\(E[A-Z]+\\)',
  ],
] as const) {
  test(`${verdict} in generic mode: the kernel reports it (${point}), and pathtrace names the program and what failed`, async (t) => {
    if (!ready(t)) return;
    const lab = new Lab();
    t.after(() => lab.destroy());
    await lab.listen('tcp', PORT);
    lab.ip(lab.server.netns, 'link', 'set', 'dev', 'eth0', 'xdpgeneric', 'obj', bpfObject(object), 'sec', 'xdp');
    const id = xdpProgramId(lab, lab.server.netns, 'eth0');
    const { packets, captured } = await traceTry(lab, 4);
    assert.equal(captured, 0, 'tcpdump captured none: XDP runs before its capture point');
    const dropped = syns(packets);
    assert.ok(dropped.length >= 1, JSON.stringify(packets));
    for (const p of dropped) {
      assert.deepEqual([p.direction, p.fate, p.drop.layer, p.tcpdump], ['in', 'dropped', 'xdp', false]);
      assert.deepEqual(p.tcp, { saw: false, reply: null });
      const step = p.steps.find((s) => s.point === point);
      assert.equal(step?.dev, 'eth0', JSON.stringify(p.steps));
      assert.deepEqual([step.program.id, step.program.name, step.program.verdict], [id, name, verdict]);
      const { error, ...program } = p.drop.device.program;
      assert.deepEqual(program, {
        mode: 'generic',
        name,
        id,
        tag: p.drop.device.program.tag,
        found: 'verdict',
        verdict,
        remove: `ip netns exec ${lab.server.netns} ip link set dev eth0 xdpgeneric off`,
      });
      if (verdict === 'XDP_REDIRECT') assert.match(error, /^E[A-Z]+$/, "the redirect's error, by name");
      else assert.equal(error, undefined);
      assert.match(p.drop.explanation, new RegExp(`^the XDP program ${name} on eth0 ${words}, in generic mode`));
    }
  });
}
