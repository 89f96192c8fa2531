// The UI's views and keys, on journeys replayed from the recorded experiments.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test, type TestContext } from 'node:test';
import { render as inkRender } from 'ink';
import { render } from 'ink-testing-library';
import { App } from '../../src/tui/App.js';
import type { PacketRecord } from '../../src/output/records.js';
import { TuiStore } from '../../src/tui/store.js';
import { stagesReached, deathStage } from '../../src/tui/stages.js';
import { loadEvents, replay } from '../helpers/replay.js';

const devices = { name: (i: number) => (i === 2 ? 'eth0' : `if${i}`) };
const strip = (s = '') => s.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
const tick = (ms = 40) => new Promise((r) => setTimeout(r, ms));

/** Waits (up to 10 s: the machine may be busy) until the frame matches, then asserts it. */
async function sees(frame: () => string, re: RegExp, message?: string): Promise<string> {
  for (const until = Date.now() + 10_000; !re.test(frame()) && Date.now() < until;) await tick(10);
  assert.match(frame(), re, message);
  return frame();
}

/** Waits until the frame no longer matches, then asserts it. */
async function gone(frame: () => string, re: RegExp): Promise<void> {
  for (const until = Date.now() + 10_000; re.test(frame()) && Date.now() < until;) await tick(10);
  assert.doesNotMatch(frame(), re);
}
const KEY = { enter: '\r', esc: '\x1b', backspace: '\x7f', down: '\x1b[B', up: '\x1b[A', ctrlC: '\x03' };

function storeOf(...fixtures: string[]) {
  const all = fixtures.map((f) => replay(loadEvents(f)));
  const flows = { byKey: (k: string) => all.map((a) => a.correlator.flows.byKey(k)).find(Boolean) };
  const store = new TuiStore('tcp port 3306', () => flows);
  store.setReady({
    netns: { path: '/run/netns/srv', inode: 1, label: 'srv' },
    points: [],
    netfilterMechanism: 'links',
    netfilter: [],
    rulesetChanges: 'notified',
    unavailable: [],
    startedAt: Date.now(),
    addresses: [],
  });
  for (const { journeys } of all) for (const j of journeys) store.add(j);
  return store;
}

async function ui(t: TestContext, store: TuiStore, onQuit = () => {}) {
  const r = render(<App store={store} devices={devices} theme={{ color: false }} onQuit={onQuit} refreshMs={10} />);
  t.after(() => r.unmount()); // also when an assertion fails: ink holds stdin
  await tick();
  const frame = () => strip(r.lastFrame());
  return {
    ...r,
    frame,
    sees: (re: RegExp, message?: string) => sees(frame, re, message),
    gone: (re: RegExp) => gone(frame, re),
    key: async (k: string) => {
      r.stdin.write(k);
      await tick();
    },
  };
}

test('stages: where packets went and where they died, marked, not by colour alone', async (t) => {
  const store = storeOf('local-in');
  const u = await ui(t, store);
  const f = await u.sees(/device RX 5 › tcpdump 5 › PRE_ROUTING 5 › routing 5 › LOCAL_IN 5 ✗5 died/);
  assert.match(f, /transport 0/);
  assert.match(f, /LOCAL_OUT 0/);
  assert.match(f, /netns srv/);
});

test('the journey of a dropped SYN maps to its stages', () => {
  const { journeys } = replay(loadEvents('local-in'));
  assert.deepEqual(stagesReached(journeys[0]), ['rx', 'tap_rx', 'PRE_ROUTING', 'routing', 'LOCAL_IN']);
  assert.equal(deathStage(journeys[0]), 'LOCAL_IN');
  const out = replay(loadEvents('local-out')).journeys.find((j) => j.direction === 'out')!;
  assert.deepEqual(stagesReached(out), ['LOCAL_OUT']);
});

test("connections list with verdicts; Enter opens its packets, Enter a packet's journey; Esc and Backspace go back", async (t) => {
  const u = await ui(t, storeOf('local-out'));
  await u.sees(/connections \(1\)/);
  await u.sees(/› tcp 198\.18\.0\.1:\d+ ↔ 198\.18\.0\.2:3306 · 14 pkt ✗9 dropped · SYN ×5 reached TCP \(SYN_RECV\)/);
  await u.key(KEY.enter);
  await u.sees(/#\d+\s+\+\d+\.\d{3}s out \[SA\]\s+0B ✗ LOCAL_OUT NETFILTER_DROP · tcpdump ✗/);
  await u.sees(/in\s+\[S\]\s+0B delivered · tcpdump ✓/);
  // The newest packet is first; move to a SYN-ACK and open it.
  const rows = (await u.sees(/#\d+ .*\[SA\]/)).split('\n').filter((l) => /#\d+/.test(l));
  const firstSynAck = rows.findIndex((l) => l.includes('[SA]'));
  for (let i = 0; i < firstSynAck; i++) await u.key(KEY.down);
  await u.key(KEY.enter);
  const detail = await u.sees(/out SYN-ACK 198\.18\.0\.2:3306 → 198\.18\.0\.1:\d+/);
  assert.match(detail, /TCP socket ─ LOCAL_OUT ✗ dropped · tcpdump ✗/);
  assert.match(detail, /NETFILTER_DROP at nft_do_chain \(netfilter, hook LOCAL_OUT\)/);
  assert.match(detail, /steps\n\+\s+0 ns\s+netfilter\s+LOCAL_OUT entry/);
  assert.match(detail, /tcpdump: ✗ it never passed a capture point/);
  await u.key(KEY.esc);
  await u.sees(/#\d+ .*\[SA\]/);
  await u.key(KEY.backspace);
  await u.sees(/connections \(1\)/);
});

test('keys typed faster than the screen redraws all count', async (t) => {
  const u = await ui(t, storeOf('local-in', 'closed-port'));
  for (const k of ['/', ...'no_socket', KEY.enter, KEY.enter, KEY.enter]) u.stdin.write(k); // no redraw in between
  await u.sees(/out RST-ACK 198\.18\.0\.2:3306 → 198\.18\.0\.1:\d+/); // the newest packet of the matching connection
  await u.key(KEY.esc);
  await u.key(KEY.esc);
  await u.sees(/connections \(1 matching "no_socket"\)/);
});

test('/ filters the list; Esc clears the filter', async (t) => {
  const u = await ui(t, storeOf('local-in', 'closed-port'));
  await u.sees(/connections \(2\)/);
  await u.key('/');
  for (const c of 'NO_SOCKET') await u.key(c);
  await u.sees(/filter: NO_SOCKET/);
  await u.key(KEY.enter);
  await u.sees(/connections \(1 matching "NO_SOCKET"\)/);
  await u.sees(/SYN dropped in socket \(NO_SOCKET\)/);
  await u.key('/');
  await u.key(KEY.esc);
  await u.sees(/connections \(2\)/);
});

test('p pauses the view while intake goes on; c clears it; ? shows help', async (t) => {
  const store = storeOf('local-in');
  const u = await ui(t, store);
  await u.key('p');
  await u.sees(/PAUSED/);
  for (const j of replay(loadEvents('closed-port')).journeys) store.add(j);
  await tick(60);
  await u.sees(/connections \(1\)/, 'the view is frozen');
  await u.key('p');
  await tick(60);
  await u.sees(/connections \(2\)/);
  assert.equal(store.packets, 7);
  await u.key('c');
  await tick(60);
  await u.sees(/connections \(0\)/);
  await u.sees(/LOCAL_IN 0/);
  await u.key('?');
  await u.sees(/q or Ctrl-C\s+quit/);
  await u.key('x');
  await u.gone(/q or Ctrl-C\s+quit/);
});

test('q and Ctrl-C quit; lost events are loud', async (t) => {
  let quits = 0;
  const store = storeOf('local-in');
  const u = await ui(t, store, () => {
    quits++;
  });
  store.setStats({ events: 100, lostEvents: 7, counters: { IpInReceives: 5 } });
  await tick(60);
  await u.sees(/LOST 7 events/);
  await u.sees(/netstat -s: IpInReceives \+5/);
  await u.key('q');
  await u.key(KEY.ctrlC);
  assert.equal(quits, 2);
});

class FakeStdout extends EventEmitter {
  frames: string[] = [];
  constructor(
    readonly columns: number,
    readonly rows: number,
  ) {
    super();
  }
  write = (s: string) => {
    this.frames.push(s);
    return true;
  };
}
class FakeStdin extends EventEmitter {
  isTTY = true;
  setEncoding() {}
  setRawMode() {}
  resume() {}
  pause() {}
  ref() {}
  unref() {}
  read() {
    return null;
  }
}

for (const [columns, rows] of [
  [80, 24],
  [160, 48],
] as const) {
  test(`at ${columns}×${rows} every line fits and the list fills the screen`, async (t) => {
    const store = storeOf('local-in', 'local-out', 'closed-port', 'connect-ok');
    const stdout = new FakeStdout(columns, rows);
    const app = inkRender(
      <App store={store} devices={devices} theme={{ color: false }} onQuit={() => {}} refreshMs={10} />,
      {
        stdout: stdout as unknown as NodeJS.WriteStream,
        stdin: new FakeStdin() as unknown as NodeJS.ReadStream,
        debug: true,
        patchConsole: false,
        exitOnCtrlC: false,
      },
    );
    t.after(() => app.unmount());
    const frame = await sees(() => strip(stdout.frames.at(-1)), /connections \(4\)/);
    const lines = frame.split('\n');
    for (const l of lines) assert.ok([...l].length <= columns, `too wide (${[...l].length}): ${l}`);
    assert.ok(lines.length <= rows, `${lines.length} lines`);
    assert.equal(lines.filter((l) => / ↔ /.test(l)).length, 4);
  });
}

test("--netns twice on a terminal: both namespaces' stages side by side, the merge verdict between them, q stops", async (t) => {
  const { AcrossStore, AcrossView } = await import('../../src/tui/across.js');
  const { merge } = await import('../../src/report/merge.js');
  const store = new AcrossStore(['client', 'server']);
  const syn: PacketRecord = {
    type: 'packet',
    id: 1,
    time: '2023-11-14T22:13:20.000Z',
    time_us: 1_700_000_000_000_000,
    family: 'ipv4',
    proto: 'tcp',
    src: '198.18.1.1',
    dst: '198.18.2.2',
    sport: 40000,
    dport: 3306,
    tcp_flags: 'S',
    seq: 5,
    ack: 0,
    len: 0,
    direction: 'out',
    fate: 'sent',
    drop: null,
    tcpdump: true,
    tcpdump_devices: ['eth0'],
    netns: 1,
    retransmit: 0,
    ending: 'left',
    flow: '6 198.18.1.1:40000 198.18.2.2:3306',
    steps: [
      { point: 'netfilter', hook: 'LOCAL_OUT', at: 'entry', t_ns: 0 },
      { point: 'netfilter', hook: 'POST_ROUTING', at: 'entry', t_ns: 10 },
      { point: 'net_dev_queue', dev: 'eth0', t_ns: 20 },
      { point: 'net_dev_start_xmit', dev: 'eth0', t_ns: 30 },
    ],
  };
  const dropped: PacketRecord = {
    ...syn,
    id: 2,
    direction: 'in',
    fate: 'dropped',
    drop: {
      layer: 'netfilter',
      hook: 'LOCAL_IN',
      reason: 'NETFILTER_DROP',
      location: 'nft_do_chain',
      explanation: '',
      advice: [],
    },
    steps: [
      { point: 'netif_receive_skb', dev: 'eth0', t_ns: 0 },
      { point: 'netfilter', hook: 'PRE_ROUTING', at: 'entry', t_ns: 5 },
      { point: 'netfilter', hook: 'LOCAL_IN', at: 'entry', t_ns: 9 },
      { point: 'kfree_skb', reason: 'NETFILTER_DROP', t_ns: 12 },
    ],
  };
  store.record(0, syn);
  store.record(1, dropped);
  const host = (name: string, p: PacketRecord) => ({
    name,
    packets: [p],
    filter: null,
    traced: { from: 0, to: 2e15 },
    addresses: new Set([name === 'client' ? '198.18.1.1' : '198.18.2.2']),
    lostEvents: 0,
  });
  store.setMerged(merge(host('client', syn), host('server', dropped)));
  let quit = 0;
  const r = render(
    <AcrossView
      store={store}
      theme={{ color: false }}
      onQuit={() => {
        quit++;
      }}
    />,
  );
  t.after(() => r.unmount());
  const frame = await sees(() => strip(r.lastFrame()), /dropped at the receiver \(client → server\)/);
  assert.match(frame, /client \(1 packets\)[\s\S]*server \(1 packets\)/);
  assert.match(frame, /tcp 198\.18\.1\.1:40000 ↔ 198\.18\.2\.2:3306 · \[S\] dropped at the receiver/);
  assert.match(frame, /LOCAL_IN 1 ✗1 died/, "the server's column shows where it died");
  assert.match(frame, /POST_ROUTING 1/, "the client's column shows it leaving");
  r.stdin.write('q');
  for (let i = 0; i < 100 && !quit; i++) await tick(10);
  assert.equal(quit, 1);
});
