// The kernel matrix's scenarios: `npm run test:kernels` runs this file inside
// VMs of Debian's own kernels (test/kernels/matrix.ts), and `npm test` runs it
// on this machine's kernel. Each must hold on every kernel pathtrace supports,
// whichever mechanism traces netfilter there (links on 6.4+, trampolines
// before) and whether or not kfree_skb has drop reasons (5.17+).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Lab } from '../../src/lab/lab.js';
import { parseIp } from '../../src/capture/packet.js';
import { readCapture, type Frame } from '../../src/capture/read.js';
import {
  needsRoot,
  Pathtrace,
  runCli,
  SLOWDOWN,
  unexpectedDrops,
  type Packet,
  type Ready,
  type Summary,
} from '../helpers/pathtrace.js';
import { FIXTURES } from '../helpers/paths.js';
import { BIG_DATA, NARROW_MTU, narrowTowardServer } from '../helpers/mtu.js';
import { corpusDisagreements } from '../helpers/packets.js';
import { native } from '../../src/trace/native.js';
import {
  addTcDrop,
  bpfObject,
  missingForPrograms,
  removeBpfObjects,
  xdpProgramId,
} from '../helpers/device-programs.js';
import { spawnSync } from 'node:child_process';
import { VERDICTS_READ_MS } from '../../src/trace/verdicts.js';

const PORT = 3306;

test.after(removeBpfObjects);

interface Traced {
  ready: Ready;
  packets: Packet[];
  summary: Summary;
  client: { ok: boolean; error?: string };
}

/** A lab with a listening server, setup's rules, pathtrace in `at`'s namespace, one client try. */
async function trace(opts: {
  router?: boolean;
  bridge?: boolean;
  proto?: 'tcp' | 'udp';
  listen?: boolean;
  setup?: (lab: Lab) => void;
  at: (lab: Lab) => string;
  until?: (p: Packet) => boolean;
  /** pathtrace's own options, beyond --netns, --port and --proto. */
  args?: string[] | ((lab: Lab) => string[]);
  /** Options of the server's listener and of the client's try (lab/peer.ts): '--close'; '--ttl', '1'. */
  listenOptions?: string[];
  clientOptions?: string[];
}): Promise<Traced> {
  const lab = new Lab({ router: opts.router, bridge: opts.bridge });
  let pt: Pathtrace | undefined;
  try {
    const proto = opts.proto ?? 'tcp';
    opts.setup?.(lab);
    if (opts.listen !== false) await lab.listen(proto, PORT, lab.server, ...(opts.listenOptions ?? []));
    pt = await Pathtrace.start([
      '--netns',
      opts.at(lab),
      '--port',
      String(PORT),
      '--proto',
      proto === 'udp' ? 'all' : 'tcp',
      ...(typeof opts.args === 'function' ? opts.args(lab) : (opts.args ?? [])),
    ]);
    const client = await lab.connect(
      proto,
      lab.server.v4,
      PORT,
      1500 * SLOWDOWN,
      lab.client,
      ...(opts.clientOptions ?? []),
    );
    if (opts.until) await pt.waitFor(opts.until);
    await new Promise((r) => setTimeout(r, 300 * SLOWDOWN));
    const { code, records, stderr } = await pt.stop();
    assert.equal(code, 0, stderr);
    return {
      ready: records.find((r) => r.type === 'ready')!,
      packets: records.filter((r) => r.type === 'packet'),
      summary: records.find((r) => r.type === 'summary')!,
      client,
    };
  } finally {
    await pt?.stop();
    lab.destroy();
  }
}

/** The drop reason this kernel reports for a netfilter drop: none before 5.17. */
function netfilterReason(ready: Ready): string | null {
  return ready.unavailable.some((u) => u.point === 'drop reasons') ? null : 'NETFILTER_DROP';
}

/** A drop the kernel named no reason for (before 5.17) says what told pathtrace its reason; one it named does not. */
function assertInferredWithoutReasons(p: Packet, ready: Ready, evidence: RegExp): void {
  if (netfilterReason(ready) === null) assert.match(p.drop.inferred ?? '', evidence, JSON.stringify(p.drop));
  else assert.equal(p.drop.inferred, undefined);
}

function assertTraced(ready: Ready): void {
  const expected = process.env.PATHTRACE_EXPECT_NETFILTER;
  if (expected) assert.equal(ready.netfilter_mechanism, expected);
  assert.ok(
    ['links', 'trampolines', 'kprobes'].includes(ready.netfilter_mechanism),
    `netfilter must be traced on every kernel of the matrix: ${JSON.stringify(ready.unavailable)}`,
  );
}

function assertNetfilterDrop(p: Packet, ready: Ready, hook: string, table: string, chain: string): void {
  assert.deepEqual(
    { layer: p.drop.layer, hook: p.drop.hook, reason: p.drop.reason, table: p.drop.table, chain: p.drop.chain },
    { layer: 'netfilter', hook, reason: netfilterReason(ready), table, chain },
    JSON.stringify(p.drop),
  );
  // In words on every kernel, with drop reasons or without.
  assert.match(p.drop.explanation, /^a netfilter rule \(iptables or nftables\) dropped it/, JSON.stringify(p.drop));
  // Where a trampoline or kretprobe on the table's evaluator is attached, it saw the chain return the drop.
  const evaluator = p.drop.source === 'iptables-legacy' ? 'ipt_do_table' : 'nft_do_chain';
  const kind = ready.netfilter_mechanism === 'kprobes' ? 'kretprobe' : 'fexit';
  if (ready.points.includes(`${kind}/${evaluator}`)) {
    const chainStep = p.steps.find((s) => s.at === 'chain');
    assert.ok(
      chainStep && chainStep.hook === hook && chainStep.table === table,
      `${kind}/${evaluator}: ${JSON.stringify(p.steps)}`,
    );
  }
  const at = p.steps.filter((s) => s.hook === hook && s.at !== 'chain').map((s) => s.at);
  assert.equal(at[0], 'entry', `it entered ${hook}: ${JSON.stringify(p.steps)}`);
  assert.ok(!at.includes('exit'), `and never left it: ${at.join(' ')}`);
}

const ipt = (lab: Lab, ns: string, cmd: string, rule: string) => lab.exec(ns, cmd, rule.split(' '));

/** Traces the drop setup's rule makes, in the server's namespace (the router's with router): netfilter must be traced. */
async function traceDrop(
  setup: (lab: Lab) => void,
  router = false,
  args: string[] | ((lab: Lab) => string[]) = [],
): Promise<Traced> {
  const r = await trace({
    router,
    setup,
    args,
    at: (lab) => (router ? lab.router!.netns : lab.server.netns),
    until: (p) => p.fate === 'dropped',
  });
  assertTraced(r.ready);
  return r;
}

/** The packets with these TCP flags (dropped ones only with dropped): at least one. */
function withFlags(r: Traced, flags: string, dropped = false): Packet[] {
  const ps = r.packets.filter((p) => p.tcp_flags === flags && (!dropped || p.fate === 'dropped'));
  assert.ok(ps.length >= 1, JSON.stringify(r.packets));
  return ps;
}

test('pathtrace doctor says what a trace finds on this kernel: how the hooks are traced, drop reasons, what is missing', (t) => {
  if (!needsRoot(t)) return;
  // A trace that takes nothing (TCP port 9, which nothing here serves), for its ready record.
  const tr = runCli(['--json', '--duration', '1', '--proto', 'tcp', '--port', '9'], { timeout: 120_000 * SLOWDOWN });
  assert.equal(tr.code, 0, tr.stderr);
  const ready = JSON.parse(tr.stdout.split('\n')[0]!) as Ready;
  const r = runCli(['doctor', '--json'], { timeout: 120_000 * SLOWDOWN });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const checks = (JSON.parse(r.stdout) as { checks: { name: string; ok: boolean | null; found: string }[] }).checks;
  const check = (n: string) => checks.find((c) => c.name === n);
  const hooks = { links: /BPF netfilter links/, trampolines: /by trampolines on nf_hook_slow/, kprobes: /by kprobes/ };
  assert.match(check('netfilter')!.found, hooks[ready.netfilter_mechanism as keyof typeof hooks]);
  assert.equal(check('drop reasons')!.ok, netfilterReason(ready) !== null);
  // The tracepoints this kernel lacks: the same in both, each with what it costs.
  const tracepoints = ['sock_recv_length', 'qdisc_enqueue', 'napi_gro_receive_entry', 'netif_rx'];
  assert.deepEqual(
    checks
      .filter((c) => tracepoints.includes(c.name))
      .map((c) => c.name)
      .sort(),
    ready.unavailable
      .filter((u) => tracepoints.includes(u.point))
      .map((u) => u.point)
      .sort(),
  );
});

test('SYN dropped by an INPUT rule: LOCAL_IN, seen by tcpdump, table filter chain INPUT', async (t) => {
  if (!needsRoot(t)) return;
  const r = await traceDrop((lab) => ipt(lab, lab.server.netns, 'iptables', `-A INPUT -p tcp --dport ${PORT} -j DROP`));
  assert.equal(r.client.ok, false);
  for (const p of withFlags(r, 'S')) {
    assert.equal(p.fate, 'dropped');
    assertNetfilterDrop(p, r.ready, 'LOCAL_IN', 'filter', 'INPUT');
    assert.equal(p.tcpdump, true);
    assert.equal(p.tcp.saw, false, 'TCP never saw it');
  }
  assert.equal(r.summary.lost_events, 0);
});

test('--host: the same drop with a host filter, every packet to or from that host', async (t) => {
  if (!needsRoot(t)) return;
  // The host filter's address loop is code of its own in every BPF program (6.1's verifier once refused it).
  let client = '';
  const r = await traceDrop(
    (lab) => ipt(lab, lab.server.netns, 'iptables', `-A INPUT -p tcp --dport ${PORT} -j DROP`),
    false,
    (lab) => ['--host', (client = lab.client.v4)],
  );
  for (const p of withFlags(r, 'S')) assertNetfilterDrop(p, r.ready, 'LOCAL_IN', 'filter', 'INPUT');
  assert.deepEqual(
    r.packets.filter((p) => p.src !== client && p.dst !== client),
    [],
  );
});

test('SYN-ACK dropped by an OUTPUT rule: LOCAL_OUT, not seen by tcpdump, table filter chain OUTPUT; --write keeps its bytes', async (t) => {
  if (!needsRoot(t)) return;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pathtrace-kernels-'));
  const file = path.join(dir, 'trace.pcapng');
  let r: Traced;
  let frames: Frame[];
  try {
    r = await traceDrop(
      (lab) => ipt(lab, lab.server.netns, 'iptables', `-A OUTPUT -p tcp --sport ${PORT} -j DROP`),
      false,
      ['--write', file],
    );
    frames = readCapture(readFileSync(file), file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const synacks = withFlags(r, 'SA');
  for (const p of synacks) {
    assert.equal(p.direction, 'out');
    assertNetfilterDrop(p, r.ready, 'LOCAL_OUT', 'filter', 'OUTPUT');
    assert.equal(p.tcpdump, false);
  }
  // The bytes of each dropped SYN-ACK were taken at its LOCAL_OUT entry, the only point it reached.
  const written = frames.filter((f) => f.data && parseIp(f.data)?.flags === 0x12 && parseIp(f.data)?.sport === PORT);
  assert.equal(written.length, synacks.length, JSON.stringify(frames.map((f) => f.comments)));
  const [syn] = withFlags(r, 'S');
  assert.equal(syn.fate, 'delivered', JSON.stringify(syn));
  assert.equal(syn.tcpdump, true);
});

test('forwarded SYN dropped by a FORWARD rule on a router: FORWARD, table filter chain FORWARD', async (t) => {
  if (!needsRoot(t)) return;
  const r = await traceDrop(
    (lab) => ipt(lab, lab.router!.netns, 'iptables', `-A FORWARD -p tcp --dport ${PORT} -j DROP`),
    true,
  );
  for (const p of withFlags(r, 'S')) {
    assert.equal(p.direction, 'forward');
    assertNetfilterDrop(p, r.ready, 'FORWARD', 'filter', 'FORWARD');
    assert.equal(p.tcpdump, true);
  }
});

test('native nft: a drop in table inet t chain c (input) is named by table and chain', async (t) => {
  if (!needsRoot(t)) return;
  const r = await traceDrop((lab) =>
    lab.exec(
      lab.server.netns,
      'nft',
      ['-f', '-'],
      `table inet t {\nchain c {\ntype filter hook input priority filter + 5\ntcp dport ${PORT} drop\n}\n}\n`,
    ),
  );
  const [syn] = withFlags(r, 'S', true);
  assertNetfilterDrop(syn, r.ready, 'LOCAL_IN', 't', 'c');
  assert.equal(syn.drop.source, 'nft');
});

test('iptables-legacy: a drop in the legacy filter table is named, with its source', async (t) => {
  if (!needsRoot(t)) return;
  const r = await traceDrop((lab) =>
    ipt(lab, lab.server.netns, 'iptables-legacy', `-A INPUT -p tcp --dport ${PORT} -j DROP`),
  );
  const [syn] = withFlags(r, 'S', true);
  assertNetfilterDrop(syn, r.ready, 'LOCAL_IN', 'filter', 'INPUT');
  assert.equal(syn.drop.source, 'iptables-legacy');
});

test('NFQUEUE with no program listening: the SYN dropped in nf_queue, named by its rule, its queue and no listener', async (t) => {
  if (!needsRoot(t)) return;
  const r = await traceDrop((lab) =>
    ipt(lab, lab.server.netns, 'iptables', `-A INPUT -p tcp --dport ${PORT} -j NFQUEUE --queue-num 0`),
  );
  assert.equal(r.client.ok, false);
  // nf_queue frees what __nf_queue could not queue with kfree_skb: no reason named (none at all before 5.17).
  const reason = netfilterReason(r.ready) === null ? null : 'NOT_SPECIFIED';
  for (const p of withFlags(r, 'S', true)) {
    const d = p.drop;
    assert.deepEqual(
      [d.layer, d.hook, d.location, d.reason, d.table, d.chain],
      ['netfilter', 'LOCAL_IN', 'nf_queue', reason, 'filter', 'INPUT'],
      JSON.stringify(d),
    );
    assert.equal(d.rule.text, `iptables -A INPUT -p tcp -m tcp --dport ${PORT} -j NFQUEUE --queue-num 0`);
    assert.match(d.rule.found, /^(counters\+)?match$/);
    assert.deepEqual(
      [d.nfqueue.cause, d.nfqueue.queue, d.nfqueue.bypass, d.nfqueue.listeners],
      ['no-listener', 0, false, []],
    );
    assert.match(d.explanation, /^an NFQUEUE rule sent it to queue 0, where no program listens/);
    assert.ok(d.advice.some((a) => a.endsWith('--queue-bypass (fail-open: packets pass while no program listens)')));
    assert.equal(p.tcp.saw, false, 'TCP never saw it');
    assert.equal(p.tcpdump, true);
  }
});

test('a closed UDP port: the datagram is dropped by the stack and the ICMP port unreachable follows', async (t) => {
  if (!needsRoot(t)) return;
  const r = await trace({
    proto: 'udp',
    listen: false,
    at: (lab) => lab.server.netns,
    until: (p) => p.proto === 'icmp',
  });
  const dgram = r.packets.find((p) => p.proto === 'udp' && p.direction === 'in');
  assert.ok(dgram, JSON.stringify(r.packets));
  assert.equal(dgram.fate, 'dropped', JSON.stringify(dgram));
  assert.equal(dgram.drop.hook, null);
  // With drop reasons: NO_SOCKET; without, told by the port unreachable (only UDP's no-socket path sends it).
  assert.deepEqual([dgram.drop.layer, dgram.drop.reason], ['socket', 'NO_SOCKET'], JSON.stringify(dgram.drop));
  assert.match(dgram.drop.explanation, /^no socket was bound to its destination port/);
  assertInferredWithoutReasons(dgram, r.ready, /^this host answered with ICMP port unreachable/);
  const icmp = r.packets.find((p) => p.proto === 'icmp' && p.direction === 'out');
  assert.ok(icmp, 'the port unreachable');
  assert.deepEqual([icmp.icmp.type, icmp.icmp.code], [3, 3]);
  assert.equal(icmp.flow, dgram.flow, "in the datagram's flow");
});

test("a closed TCP port: the SYN dropped as NO_SOCKET and the stack's reset in its flow", async (t) => {
  if (!needsRoot(t)) return;
  const r = await trace({
    listen: false,
    at: (lab) => lab.server.netns,
    until: (p) => p.direction === 'out' && p.tcp_flags === 'RA',
  });
  assert.equal(r.client.error, 'ECONNREFUSED');
  const syn = withFlags(r, 'S')[0]!;
  assert.deepEqual(
    [syn.fate, syn.drop.layer, syn.drop.reason],
    ['dropped', 'socket', 'NO_SOCKET'],
    JSON.stringify(syn),
  );
  assert.match(syn.drop.location, /^tcp_v4_rcv$/);
  assert.match(syn.drop.explanation, /^no socket was bound to its destination port/);
  assertInferredWithoutReasons(syn, r.ready, /^TCP answered the SYN with a reset from tcp_v4_rcv/);
  const rst = r.packets.find((p) => p.direction === 'out' && p.tcp_flags === 'RA');
  // The kernel's own answer, on every kernel (before 6.10 tcp_send_reset does not announce it: no full socket).
  assert.deepEqual([rst?.flow, rst?.origin], [syn.flow, 'stack']);
});

test("data after the server closed: the TIME_WAIT socket's reset, the segment a drop in TCP with the state", async (t) => {
  if (!needsRoot(t)) return;
  const r = await trace({
    listenOptions: ['--close'],
    clientOptions: ['--after-fin', 'late request'],
    at: (lab) => lab.server.netns,
    until: (p) => p.direction === 'out' && p.tcp_flags === 'R',
  });
  assert.equal(r.client.ok, true, r.client.error);
  // Freed in tcp_v4_rcv with no reason (NOT_SPECIFIED; none before 5.17) after the time-wait socket's reset, which
  // tcp_send_reset reports only from 6.10 on: the reset begun in the flow tells it was refused, on every kernel.
  const drops = r.packets.filter((p) => p.fate === 'dropped');
  assert.equal(drops.length, 1, JSON.stringify(r.packets.map((p) => [p.tcp_flags, p.fate, p.drop])));
  const d = drops[0]!;
  assert.deepEqual(
    [d.direction, d.tcp_flags, d.drop.layer, d.drop.location],
    ['in', 'PA', 'tcp', 'tcp_v4_rcv'],
    JSON.stringify({ drop: d.drop, points: d.steps.map((s) => s.point) }),
  );
  assert.ok(d.drop.reason === 'NOT_SPECIFIED' || d.drop.reason === null, `reason ${d.drop.reason}`);
  assert.equal(d.drop.inferred, undefined, 'a segment other than a SYN is not told NO_SOCKET');
  assert.deepEqual(d.drop.tcp_state, { state: 'CLOSE', from: 'FIN_WAIT2', then: [] });
  assert.match(d.drop.explanation, /a time-wait socket takes no data$/);
  const rst = r.packets.find((p) => p.direction === 'out' && p.tcp_flags === 'R');
  assert.deepEqual([rst?.flow, rst?.origin], [d.flow, 'stack']);
});

test('a TTL that runs out on a router: the datagram dropped in ip_forward, told by its time exceeded', async (t) => {
  if (!needsRoot(t)) return;
  const r = await trace({
    router: true,
    proto: 'udp',
    at: (lab) => lab.router!.netns,
    clientOptions: ['--ttl', '1'],
    until: (p) => p.proto === 'icmp',
  });
  const dgram = r.packets.find((p) => p.proto === 'udp');
  assert.ok(dgram, JSON.stringify(r.packets));
  assert.deepEqual(
    [dgram.fate, dgram.drop.layer, dgram.drop.reason, dgram.drop.location],
    ['dropped', 'ip', 'IP_INHDR', 'ip_forward'],
  );
  // Routed to be forwarded, dropped before its FORWARD hook: a forwarded packet, never this host's TCP or UDP's.
  assert.deepEqual([dgram.direction, dgram.route.decision, dgram.tcp], ['forward', 'forward', undefined]);
  assert.equal(
    dgram.drop.explanation,
    'its TTL (hop limit) ran out while it was forwarded: this host answers with ICMP time exceeded',
  );
  assertInferredWithoutReasons(dgram, r.ready, /^this host answered with ICMP time exceeded/);
  const icmp = r.packets.find((p) => p.proto === 'icmp');
  assert.deepEqual([icmp!.icmp.type, icmp!.flow], [11, dgram.flow]);
});

test("data too big for a router's way to the server: PKT_TOO_BIG at ip_forward (told by frag needed before 5.18), its MTU and device", async (t) => {
  if (!needsRoot(t)) return;
  const r = await trace({
    router: true,
    setup: narrowTowardServer,
    at: (lab) => lab.router!.netns,
    clientOptions: ['--send', BIG_DATA],
    until: (p) => p.proto === 'icmp',
  });
  const drops = r.packets.filter((p) => p.len === BIG_DATA.length && p.fate === 'dropped');
  assert.ok(drops.length, JSON.stringify(r.packets.map((p) => [p.tcp_flags, p.len, p.fate, p.drop])));
  // The kernel sends ICMP errors at most once a second to a destination (icmp_ratelimit): a segment resent sooner
  // was dropped untold, its MTU the device's, read at the drop. Whichever, the same MTU and device.
  for (const d of drops) {
    assert.deepEqual(
      [d.drop.layer, d.drop.location, d.drop.too_big.mtu, d.drop.too_big.dev],
      ['ip', 'ip_forward', NARROW_MTU, 'eth-srv'],
    );
    assert.equal(d.drop.too_big.mtu_source, d.drop.too_big.told ? 'icmp' : 'device', JSON.stringify(d.drop));
  }
  const d = drops.find((p) => p.drop.too_big.told);
  assert.ok(d, `one of them told the sender: ${JSON.stringify(r.packets)}`);
  assert.equal(d.drop.reason, 'PKT_TOO_BIG');
  assertInferredWithoutReasons(d, r.ready, /^this host sent ICMP fragmentation needed \(MTU 1280\) from ip_forward/);
  // The device and the length read at the drop, the MTU the ICMP error carries: the same on every kernel.
  const tb = d.drop.too_big;
  assert.ok(tb.size > NARROW_MTU && tb.size < BIG_DATA.length + 100, `size ${tb.size}`);
  assert.equal(tb.route, '198.18.2.0/24 dev eth-srv');
  const icmp = r.packets.find((p) => p.proto === 'icmp');
  assert.deepEqual([icmp!.icmp.type, icmp!.icmp.code, icmp!.icmp.mtu, icmp!.flow], [3, 4, NARROW_MTU, d.flow]);
});

test('a graceful exchange with a filter table in place: delivered both ways, no drop', async (t) => {
  if (!needsRoot(t)) return;
  const r = await trace({
    // An ACCEPT rule: the hooks are in use (trampolines see nf_hook_slow), and nothing is dropped.
    setup: (lab) => ipt(lab, lab.server.netns, 'iptables', `-A INPUT -p tcp --dport ${PORT} -j ACCEPT`),
    at: (lab) => lab.server.netns,
    until: (p) => p.tcp_flags?.includes('F') && p.direction === 'in',
  });
  assertTraced(r.ready);
  assert.equal(r.client.ok, true, JSON.stringify(r.client));
  assert.deepEqual(unexpectedDrops(r.packets), []);
  const syn = r.packets.find((p) => p.tcp_flags === 'S')!;
  assert.equal(syn.fate, 'delivered');
  assert.ok(
    syn.steps.some((s) => s.hook === 'LOCAL_IN' && s.at === 'exit'),
    JSON.stringify(syn.steps),
  );
  const synack = r.packets.find((p) => p.tcp_flags === 'SA')!;
  assert.equal(synack.fate, 'sent');
  assert.equal(synack.tcpdump, true);
  assert.equal(
    r.summary.dropped,
    r.packets.filter((p) => p.fate === 'dropped').length,
    'the summary counts the drops reported',
  );
});

/** A Docker host: the router with Docker's ruleset, the server a container on its bridge. br_netfilter is
 *  loaded in a VM of the matrix (PATHTRACE_KERNEL), never on this machine; without it the bridge has no IP hooks. */
function dockerHost(lab: Lab): boolean {
  const brnf = '/proc/sys/net/bridge/bridge-nf-call-iptables';
  if (process.env.PATHTRACE_KERNEL && !existsSync(brnf)) execFileSync('modprobe', ['br_netfilter']);
  const rtr = lab.router!.netns;
  lab.exec(rtr, 'iptables-restore', [], readFileSync(path.join(FIXTURES, 'rulesets', 'docker.rules'), 'utf8'));
  if (!existsSync(brnf)) return false;
  lab.sysctl(rtr, 'net.bridge.bridge-nf-call-iptables', '1');
  return true;
}

test("a container behind a Docker host's bridge: each packet one journey through the bridge, no drop", async (t) => {
  if (!needsRoot(t)) return;
  let bridgeNf = false;
  const r = await trace({
    bridge: true,
    setup: (lab) => {
      bridgeNf = dockerHost(lab);
    },
    at: (lab) => lab.router!.netns,
  });
  assertTraced(r.ready);
  assert.equal(r.client.ok, true, JSON.stringify(r.client));
  assert.deepEqual(unexpectedDrops(r.packets), []);
  assert.deepEqual(
    r.packets
      .filter((p) => p.fate !== 'forwarded')
      .map(
        (p) =>
          `${p.id} ${p.tcp_flags} ${p.fate} ${p.ending}: ${p.steps.map((s) => `${s.point}${s.hook ? `/${s.hook}.${s.at}` : ''}${s.dev ? `@${s.dev}` : ''}`).join(' ')}`,
      ),
    [],
    `every packet forwarded (lost events ${r.summary.lost_events}): ${JSON.stringify(r.packets)}`,
  );
  assert.equal(r.summary.cut_by_timeout, 0);
  const [synAck] = withFlags(r, 'SA');
  // Up from the container's port to the bridge, routed out; br_netfilter's pass on the port first, when loaded.
  assert.deepEqual(
    synAck.steps.filter((s) => s.point === 'netif_receive_skb').map((s) => s.dev),
    ['veth-srv', 'br0'],
  );
  assert.equal(
    synAck.steps.some((s) => s.bridge && s.hook === 'PRE_ROUTING'),
    bridgeNf,
  );
  const [syn] = withFlags(r, 'S');
  assert.deepEqual(
    syn.steps.filter((s) => s.point === 'net_dev_start_xmit').map((s) => s.dev),
    ['br0', 'veth-srv'],
  );
});

test('a DOCKER-USER rule on a Docker host drops the SYN at FORWARD: named by table and chain', async (t) => {
  if (!needsRoot(t)) return;
  const r = await trace({
    bridge: true,
    setup: (lab) => {
      dockerHost(lab);
      ipt(lab, lab.router!.netns, 'iptables', `-I DOCKER-USER -p tcp --dport ${PORT} -j DROP`);
    },
    at: (lab) => lab.router!.netns,
    until: (p) => p.fate === 'dropped',
  });
  assertTraced(r.ready);
  const [syn] = withFlags(r, 'S', true);
  assertNetfilterDrop(syn, r.ready, 'FORWARD', 'filter', 'DOCKER-USER');
  assert.equal(syn.drop.owner, 'docker');
});

/** Whether this kernel runs filter expressions (bpf_loop, 5.17+); where not, pathtrace must say so. */
function expressionsRun(t: import('node:test').TestContext): boolean {
  if ('BPF_FUNC_loop' in native().kernelEnum('bpf_func_id')) return true;
  const r = runCli(['--duration', '1', 'tcp port 3306']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /^pathtrace: filter expressions need the bpf_loop helper \(Linux 5\.17 or later\), which this kernel \(\S+\) lacks: filter with --port, --host and --proto\n$/,
  );
  t.skip('this kernel has no bpf_loop, which the expression interpreter needs: checked that pathtrace says so');
  return false;
}

test('tcpdump expressions: the kernel interpreter takes exactly the packets tcpdump takes, on the whole corpus', (t) => {
  if (!needsRoot(t) || !expressionsRun(t)) return;
  if (spawnSync('tcpdump', ['--version']).status !== 0) return t.skip('needs tcpdump: apt install tcpdump');
  assert.deepEqual(corpusDisagreements(native()).slice(0, 10), []);
});

test('a tcpdump expression beside --port: only SYNs, the dropped one named by its rule', async (t) => {
  if (!needsRoot(t) || !expressionsRun(t)) return;
  const r = await traceDrop(
    (lab) => ipt(lab, lab.server.netns, 'iptables', `-A INPUT -p tcp --dport ${PORT} -j DROP`),
    false,
    ['tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst host 198.18.0.2'],
  );
  assert.equal(r.ready.filter.expression.text, 'tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst host 198.18.0.2');
  assert.ok(r.packets.length >= 1);
  for (const p of r.packets) {
    assert.equal(p.tcp_flags, 'S', JSON.stringify(r.packets.map((x) => x.tcp_flags)));
    assertNetfilterDrop(p, r.ready, 'LOCAL_IN', 'filter', 'INPUT');
  }
});

// Drops at a device's own hooks. Older kernels name no reason for them (5.10) or only NOT_SPECIFIED (6.1): the
// freeing function tells the layer, and what is attached to the device names the program. Where the kernel has BPF
// trampolines (Debian's do; the kprobes variant pretends they are refused), an fexit program on the XDP or tc program
// sees its verdict: the program is then known by its own answer, else as the only one there.
const TRAMPOLINES =
  process.env.PATHTRACE_KERNEL !== undefined &&
  !(process.env.PATHTRACE_PRETEND_KERNEL_LACKS ?? '').split(',').includes('trampolines');

/** How a device hook's drop names its program: by the verdict it returned where ready shows the fexit point (which
 *  the kernels of the matrix with trampolines must show), else as the only program there. */
function assertFound(p: Packet, ready: Ready, point: 'xdp_verdict' | 'tc_verdict', verdict: string): void {
  const traced = ready.points.includes(point);
  if (process.env.PATHTRACE_KERNEL !== undefined)
    assert.equal(traced, TRAMPOLINES, `${point} attached: ${JSON.stringify(ready.unavailable)}`);
  const program = p.drop.device?.program;
  if (traced) assert.deepEqual([program?.found, program?.verdict], ['verdict', verdict], JSON.stringify(p));
  else assert.equal(program?.found, verdict === 'XDP_ABORTED' ? 'verdict' : 'only', JSON.stringify(p));
}

for (const [mode, object, verdict] of [
  ['generic', 'xdp_drop', 'XDP_DROP'],
  ['native', 'xdp_drop', 'XDP_DROP'],
  ['generic', 'xdp_abort', 'XDP_ABORTED'],
] as const) {
  test(`an XDP program in ${mode} mode returns ${verdict} for the SYN: named, it came in, neither tcpdump nor TCP saw it`, async (t) => {
    if (!needsRoot(t)) return;
    const missing = missingForPrograms();
    if (missing) return t.skip(missing);
    let id = 0;
    const r = await traceDrop((lab) => {
      lab.ip(
        lab.server.netns,
        'link',
        'set',
        'dev',
        'eth0',
        `xdp${mode === 'generic' ? 'generic' : 'drv'}`,
        'obj',
        bpfObject(object),
        'sec',
        'xdp',
      );
      id = xdpProgramId(lab, lab.server.netns, 'eth0');
    });
    for (const p of withFlags(r, 'S', true)) {
      assert.deepEqual(
        [p.direction, p.drop.layer, p.tcpdump, p.tcp?.saw, p.delivery],
        ['in', 'xdp', false, false, undefined],
        JSON.stringify(p),
      );
      assert.deepEqual(
        [p.drop.device?.program?.name, p.drop.device?.program?.id, p.drop.device?.program?.mode],
        [`${object}_3306`, id, mode],
        JSON.stringify(p),
      );
      // XDP_ABORTED is reported by the kernel (xdp_exception) on every kernel.
      assertFound(p, r.ready, 'xdp_verdict', verdict);
      if (verdict === 'XDP_ABORTED')
        assert.ok(
          p.steps.some((s) => s.point === 'xdp_exception' && s.program?.verdict === verdict),
          JSON.stringify(p.steps),
        );
    }
  });
}

test('an XDP program attached after the start: the devices, read again, have its verdicts traced too', async (t) => {
  if (!needsRoot(t)) return;
  const missing = missingForPrograms();
  if (missing) return t.skip(missing);
  if (!TRAMPOLINES) return t.skip('needs BPF trampolines (a kernel of the matrix, but for its kprobes variant)');
  const lab = new Lab();
  let pt: Pathtrace | undefined;
  try {
    await lab.listen('tcp', PORT);
    pt = await Pathtrace.start(['--netns', lab.server.netns, '--port', String(PORT)]);
    assert.ok(!pt.ready.points.includes('xdp_verdict'), 'no XDP program yet');
    lab.ip(lab.server.netns, 'link', 'set', 'dev', 'eth0', 'xdpgeneric', 'obj', bpfObject('xdp_drop'), 'sec', 'xdp');
    const id = xdpProgramId(lab, lab.server.netns, 'eth0');
    // A try at a time until a drop is known by its verdict: the devices are read every VERDICTS_READ_MS.
    const known = (p: Packet) => p.drop?.device?.program?.found === 'verdict';
    for (let i = 0; i < 20 && !pt.packets().some(known); i++) {
      await lab.connect('tcp', lab.server.v4, PORT, 500 * SLOWDOWN);
      await pt.waitFor(known, VERDICTS_READ_MS / 2);
    }
    const p = pt.packets().find(known);
    assert.ok(p, JSON.stringify(pt.packets()));
    assert.deepEqual([p.drop.device.program.id, p.drop.device.program.verdict], [id, 'XDP_DROP']);
  } finally {
    await pt?.stop();
    lab.destroy();
  }
});

test('a tc cls_bpf filter on ingress drops the SYN: named; tcpdump saw it, TCP did not', async (t) => {
  if (!needsRoot(t)) return;
  const missing = missingForPrograms();
  if (missing) return t.skip(missing);
  const r = await traceDrop((lab) => addTcDrop(lab, lab.server.netns, 'ingress'));
  for (const p of withFlags(r, 'S', true)) {
    assert.deepEqual([p.direction, p.drop.layer, p.tcpdump, p.tcp?.saw], ['in', 'tc', true, false], JSON.stringify(p));
    assert.deepEqual(
      [p.drop.device?.direction, p.drop.device?.program?.name],
      ['ingress', 'tc_drop_in'],
      JSON.stringify(p),
    );
    assertFound(p, r.ready, 'tc_verdict', 'TC_ACT_SHOT');
  }
});

test('a tc cls_bpf filter on egress drops the SYN-ACK: named; TCP answered, tcpdump never saw the answer', async (t) => {
  if (!needsRoot(t)) return;
  const missing = missingForPrograms();
  if (missing) return t.skip(missing);
  const r = await traceDrop((lab) => addTcDrop(lab, lab.server.netns, 'egress'));
  for (const p of withFlags(r, 'SA', true)) {
    assert.deepEqual([p.direction, p.drop.layer, p.tcpdump], ['out', 'tc', false], JSON.stringify(p));
    assert.deepEqual(
      [p.drop.device?.direction, p.drop.device?.program?.name],
      ['egress', 'tc_drop_out'],
      JSON.stringify(p),
    );
    assertFound(p, r.ready, 'tc_verdict', 'TC_ACT_SHOT');
  }
  for (const p of withFlags(r, 'S')) assert.equal(p.tcp.saw, true, JSON.stringify(r.packets));
});
