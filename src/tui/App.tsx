// The full-screen view: the stack as stages with live counts, recent
// connections with their story, a connection's packets, and a packet's
// journey step by step. Reads a throttled snapshot of the store.
import { Box, Text, useInput, useStdout } from 'ink';
import { useEffect, useMemo, useRef, useState } from 'react';
import { flagLetters, type DeviceNames, type Journey } from '../correlate/journey.js';
import { IPPROTO } from '../trace/record.js';
import type { FlowSummary } from '../report/summary.js';
import { queueTag } from '../report/nfqueue.js';
import { duration, formatJourney, PLAIN } from '../output/text.js';
import { packetRecord } from '../output/json.js';
import { ladder, ladderRows } from '../pictures/ladder.js';
import { packetPath, pathLines } from '../pictures/path.js';
import {
  DEVICE_HOOK_STAGES,
  FWD_STAGES,
  RX_STAGES,
  STAGE_LABELS,
  TX_STAGES,
  type StageCounts,
  type StageId,
} from './stages.js';
import type { ConnectionView, LiveStats, TuiStore } from './store.js';

export interface Theme {
  color: boolean;
}

interface Snapshot {
  version: number;
  stages: Map<StageId, { reached: number; died: number }>;
  connections: ConnectionView[];
  stats: LiveStats;
  eventsPerSecond: number;
  notes: string[];
  packets: number;
  evicted: number;
}

function snapshot(store: TuiStore): Snapshot {
  return {
    version: store.version,
    stages: new Map([...store.stages].map(([k, v]) => [k, { ...v }])),
    connections: store.recentConnections().map((c) => ({ ...c, packets: [...c.packets] })),
    stats: store.stats,
    eventsPerSecond: store.eventsPerSecond,
    notes: store.notes,
    packets: store.packets,
    evicted: store.evicted,
  };
}

/** Re-renders at most every `ms` with a fresh snapshot, unless paused. */
function useSnapshot(store: TuiStore, paused: boolean, ms: number): Snapshot {
  const [snap, setSnap] = useState(() => snapshot(store));
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  // One interval for the view's life: it compares against the snapshot held, not one captured at a render.
  useEffect(() => {
    const t = setInterval(() => {
      if (!pausedRef.current) setSnap((s) => (store.version !== s.version ? snapshot(store) : s));
    }, ms);
    return () => clearInterval(t);
  }, [store, ms]);
  return snap;
}

function useSize(): { columns: number; rows: number } {
  const { stdout } = useStdout();
  const get = () => ({ columns: stdout.columns || 80, rows: stdout.rows || 24 });
  const [size, setSize] = useState(get);
  useEffect(() => {
    const on = () => setSize(get());
    stdout.on('resize', on);
    return () => {
      stdout.off('resize', on);
    };
  }, [stdout]);
  return size;
}

function clockOf(ns: number): string {
  const s = Math.floor(ns / 1e9);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(Math.floor(s / 3600))}:${p(Math.floor(s / 60) % 60)}:${p(s % 60)}`;
}

function Stage({ id, counts, theme }: { id: StageId; counts?: { reached: number; died: number }; theme: Theme }) {
  const reached = counts?.reached ?? 0,
    died = counts?.died ?? 0;
  return (
    <Box marginRight={1}>
      <Text dimColor={reached === 0} bold={died > 0}>
        {STAGE_LABELS[id]} {reached}
      </Text>
      {died > 0 && <Text color={theme.color ? 'red' : undefined} bold inverse={!theme.color}>{` ✗${died} died`}</Text>}
      <Text dimColor> ›</Text>
    </Box>
  );
}

function StageRow({
  label,
  ids,
  stages,
  theme,
}: {
  label: string;
  ids: readonly StageId[];
  stages: StageCounts;
  theme: Theme;
}) {
  return (
    <Box flexWrap="wrap">
      <Box width={4}>
        <Text bold>{label}</Text>
      </Box>
      {ids
        .filter((id) => !DEVICE_HOOK_STAGES.has(id) || stages.has(id))
        .map((id) => (
          <Stage key={id} id={id} counts={stages.get(id)} theme={theme} />
        ))}
    </Box>
  );
}

/** The stages as three rows (receive, forward, transmit), each with how many packets reached and died there. */
export function StagesView({ stages, theme }: { stages: StageCounts; theme: Theme }) {
  return (
    <Box flexDirection="column">
      <StageRow label="RX" ids={RX_STAGES} stages={stages} theme={theme} />
      <StageRow label="FWD" ids={FWD_STAGES} stages={stages} theme={theme} />
      <StageRow label="TX" ids={TX_STAGES} stages={stages} theme={theme} />
    </Box>
  );
}

function Row({ selected, children, theme }: { selected: boolean; children: string; theme: Theme }) {
  return (
    <Text wrap="truncate" inverse={selected} color={selected && theme.color ? 'cyan' : undefined}>
      {selected ? '› ' : '  '}
      {children}
    </Text>
  );
}

/** A window of `height` rows around the selection. */
function windowed<T>(items: T[], selected: number, height: number): { start: number; items: T[] } {
  const h = Math.max(1, height);
  const start = Math.max(0, Math.min(selected - Math.floor(h / 2), items.length - h));
  return { start, items: items.slice(start, start + h) };
}

function connectionLine(c: ConnectionView, s: FlowSummary | null): string {
  const name = s ? `${s.proto} ${s.a} ↔ ${s.b}` : c.key;
  return `${name} · ${c.total} pkt${c.dropped ? ` ✗${c.dropped} dropped` : ''} · ${s?.verdict ?? ''}`;
}

export function packetLine(j: Journey): string {
  const kind = j.proto === IPPROTO.TCP ? `[${flagLetters(j.flags)}]` : j.icmp ? 'ICMP' : 'UDP';
  const dir = j.direction === 'forward' ? 'fwd' : j.direction;
  const mtu = j.drop?.tooBig?.mtu;
  const fate = j.drop
    ? `✗ ${j.drop.hook ?? j.drop.layer} ${j.drop.reason}${mtu ? ` MTU ${mtu}` : ''}${j.drop.nfqueue ? ` (${queueTag(j.drop.nfqueue)})` : ''}`
    : j.fate;
  return (
    `#${String(j.id).padEnd(4)} ${`+${(j.start / 1e9).toFixed(3)}s`.padStart(8)} ${dir.padEnd(3)} ${kind.padEnd(5)} ${`${j.len}B`.padStart(5)} ` +
    `${fate} · tcpdump ${j.tcpdump ? '✓' : '✗'}${j.retransmit ? ` · retransmission ${j.retransmit}` : ''}` +
    (j.nat?.length ? ` · NAT by ${[...new Set(j.nat.map((r) => r.by ?? 'unknown'))].join(' and ')}` : '')
  );
}

/** The packet's way through the stack, drawn: its direction's stages, ✗ at the one it died at, what dropped it. */
function PathDiagram({
  j,
  devices,
  startedAt,
  width,
  theme,
}: {
  j: Journey;
  devices: DeviceNames;
  startedAt: number;
  width: number;
  theme: Theme;
}) {
  const lines = pathLines(packetPath(packetRecord(j, devices, startedAt)), width - 2);
  return (
    <Box flexDirection="column" marginBottom={1}>
      {lines.map((l, i) => (
        <Text
          key={i}
          wrap="truncate"
          bold={l.startsWith('✗')}
          color={theme.color && l.includes('✗') ? 'red' : undefined}
        >
          {l}
        </Text>
      ))}
    </Box>
  );
}

export function PacketDetail({
  j,
  devices,
  startedAt,
  width = 80,
  theme = { color: false },
  pictures = false,
}: {
  j: Journey;
  devices: DeviceNames;
  startedAt: number;
  width?: number;
  theme?: Theme;
  /** The path through the stack drawn, in place of the steps. */
  pictures?: boolean;
}) {
  const steps = j.steps.map((s) => {
    const where = s.hook
      ? `${s.hook} ${s.passed ? 'passed' : s.at}${s.priority !== undefined ? ` (priority ${s.priority})` : ''}`
      : '';
    const dev = s.ifindex ? devices.name(s.ifindex) : '';
    const prog = s.program && `${s.program.name || 'program'} (id ${s.program.id}) returned ${s.program.verdict}`;
    const extra = [where, dev, s.location, s.reason, prog, s.comm ? `${s.comm}[${s.pid}] read ${s.bytes} B` : '']
      .filter(Boolean)
      .join(' ');
    return `+${duration(s.t - j.start).padStart(8)}  ${s.point.padEnd(24)} ${extra}`;
  });
  return (
    <Box flexDirection="column">
      {formatJourney(j, devices, startedAt, PLAIN)
        .split('\n')
        .map((l, i) => (
          <Text key={`h${i}`} wrap="truncate">
            {l}
          </Text>
        ))}
      <Text bold>{pictures ? 'path through the stack' : 'steps'}</Text>
      {pictures ? (
        <PathDiagram j={j} devices={devices} startedAt={startedAt} width={width} theme={theme} />
      ) : (
        steps.map((l, i) => (
          <Text key={i} wrap="truncate">
            {l}
          </Text>
        ))
      )}
      <Text>{`tcpdump: ${j.tcpdump ? `✓ captured on ${j.tcpdumpDevices.map((d) => devices.name(d)).join(', ')}` : '✗ it never passed a capture point'}`}</Text>
    </Box>
  );
}

const HELP = [
  '↑/↓ or j/k   move',
  'Enter        open (connection → packets → journey)',
  "l            a connection's packets as a ladder, or as a list",
  'Esc/Bksp     back',
  '/            filter the connections (Enter to apply, Esc to clear)',
  'p            pause the view (tracing goes on)',
  'c            clear the view',
  '?            this help',
  'q or Ctrl-C  quit: probes are detached, the summary follows',
];

type View = { kind: 'main' } | { kind: 'connection'; key: string } | { kind: 'packet'; key: string; id: number };

/** What the keys change. */
export interface UiState {
  paused: boolean;
  view: View;
  sel: { main: number; connection: number };
  filter: string;
  /** The filter being typed, or null. */
  editing: string | null;
  help: boolean;
  /** Pictures rather than text: a connection's packets as a ladder, a packet's path through the stack. */
  pictures: boolean;
}
const INITIAL: UiState = {
  paused: false,
  view: { kind: 'main' },
  sel: { main: 0, connection: 0 },
  filter: '',
  editing: null,
  help: false,
  pictures: false,
};

type Key = {
  return?: boolean;
  escape?: boolean;
  backspace?: boolean;
  delete?: boolean;
  upArrow?: boolean;
  downArrow?: boolean;
  ctrl?: boolean;
  meta?: boolean;
};

function connectionsOf(snap: Snapshot, filter: string, store: TuiStore) {
  if (!filter) return snap.connections;
  const f = filter.toLowerCase();
  return snap.connections.filter((c) => `${c.key} ${store.summaryOf(c.key)?.verdict ?? ''}`.toLowerCase().includes(f));
}

function packetsOf(snap: Snapshot, view: View) {
  const conn = view.kind !== 'main' ? snap.connections.find((c) => c.key === view.key) : undefined;
  return { conn, packets: conn ? [...conn.packets].reverse() : [] };
}

/** The state after a key: pure, and applied to the latest state, so keys typed (or pasted) faster than the
 *  screen redraws are not lost. 'quit' and 'clear' are for the caller. */
export function onKey(
  ui: UiState,
  input: string,
  key: Key,
  snap: Snapshot,
  store: TuiStore,
): UiState | 'quit' | 'clear' {
  if (key.ctrl && input === 'c') return 'quit';
  const { view, sel, editing } = ui;
  if (editing !== null) {
    if (key.return) return { ...ui, filter: editing, editing: null, sel: { ...sel, main: 0 } };
    if (key.escape) return { ...ui, filter: '', editing: null };
    if (key.backspace || key.delete) return { ...ui, editing: editing.slice(0, -1) };
    if (input && !key.ctrl && !key.meta) return { ...ui, editing: editing + input };
    return ui;
  }
  if (ui.help) return { ...ui, help: false };
  if (input === 'q') return 'quit';
  if (input === '?') return { ...ui, help: true };
  if (input === 'p') return { ...ui, paused: !ui.paused };
  if (input === 'c') return 'clear';
  if (input === '/' && view.kind === 'main') return { ...ui, editing: ui.filter };
  if (input === 'g') return { ...ui, pictures: !ui.pictures };
  if (key.escape || key.backspace || key.delete) {
    return { ...ui, view: view.kind === 'packet' ? { kind: 'connection', key: view.key } : { kind: 'main' } };
  }
  const up = key.upArrow || input === 'k',
    down = key.downArrow || input === 'j';
  if (view.kind === 'main') {
    const conns = connectionsOf(snap, ui.filter, store);
    if (up) return { ...ui, sel: { ...sel, main: Math.max(0, sel.main - 1) } };
    if (down) return { ...ui, sel: { ...sel, main: Math.max(0, Math.min(conns.length - 1, sel.main + 1)) } };
    const conn = conns[sel.main];
    if (key.return && conn)
      return { ...ui, view: { kind: 'connection', key: conn.key }, sel: { ...sel, connection: 0 } };
    return ui;
  }
  const { packets } = packetsOf(snap, view);
  if (view.kind === 'connection') {
    if (up) return { ...ui, sel: { ...sel, connection: Math.max(0, sel.connection - 1) } };
    if (down)
      return { ...ui, sel: { ...sel, connection: Math.max(0, Math.min(packets.length - 1, sel.connection + 1)) } };
    const packet = packets[sel.connection];
    if (key.return && packet) return { ...ui, view: { kind: 'packet', key: view.key, id: packet.id } };
    return ui;
  }
  const i = packets.findIndex((p) => p.id === view.id);
  const next = up ? packets[i - 1] : down ? packets[i + 1] : undefined;
  return next ? { ...ui, view: { ...view, id: next.id }, sel: { ...sel, connection: i + (up ? -1 : 1) } } : ui;
}

export function App({
  store,
  devices,
  theme,
  onQuit,
  refreshMs = 150,
}: {
  store: TuiStore;
  devices: DeviceNames;
  theme: Theme;
  onQuit: () => void;
  refreshMs?: number;
}) {
  const [ui, setUi] = useState(INITIAL);
  const latest = useRef(ui);
  const { paused, view, sel, filter, editing, help } = ui;
  const snap = useSnapshot(store, paused, refreshMs);
  const { columns, rows } = useSize();

  const conns = useMemo(() => connectionsOf(snap, filter, store), [snap, filter, store]);
  const { conn, packets } = packetsOf(snap, view);

  useInput((input, key) => {
    const next = onKey(latest.current, input, key, snap, store);
    if (next === 'quit') return onQuit();
    if (next === 'clear') store.clear();
    latest.current = next === 'clear' ? { ...latest.current, view: INITIAL.view, sel: INITIAL.sel } : next;
    setUi(latest.current);
  });

  const ready = store.ready;
  const ns = !ready
    ? 'starting'
    : ready.netns.container
      ? `container ${ready.netns.label}`
      : ready.netns.pod
        ? `pod ${ready.netns.label}`
        : ready.netns.label === 'own'
          ? 'own netns'
          : `netns ${ready.netns.label}`;
  const uptime = ready ? clockOf((Date.now() - ready.startedAt) * 1e6) : '00:00:00';
  const lost = snap.stats.lostEvents;
  const unavailable = ready?.unavailable.length ?? 0;
  const counters = Object.entries(snap.stats.counters ?? {})
    .filter(([k]) => !/^(Ip6|Icmp6|IpExt)/.test(k))
    .map(([k, v]) => `${k} ${v > 0 ? '+' : ''}${v}`)
    .join(', ');

  // Rows: status 1, stages 3+ (wrapping at 80 columns), counters 1, note 1, title 1, footer 1.
  const stageRows = columns >= 150 ? 3 : 6;
  const listHeight = Math.max(3, rows - stageRows - 7);

  let body;
  if (help) {
    body = (
      <Box flexDirection="column" borderStyle="round" paddingX={1}>
        <Text bold>keys</Text>
        {HELP.map((h) => (
          <Text key={h}>{h}</Text>
        ))}
      </Box>
    );
  } else if (view.kind === 'packet' && conn) {
    const j = conn.packets.find((p) => p.id === view.id);
    body = j ? (
      <PacketDetail
        j={j}
        devices={devices}
        startedAt={ready?.startedAt ?? Date.now()}
        width={columns}
        theme={theme}
        pictures={ui.pictures}
      />
    ) : (
      <Text>packet #{view.id} is no longer kept</Text>
    );
  } else if (view.kind === 'connection' && conn) {
    const s = store.summaryOf(conn.key);
    const selected = packets[sel.connection]?.id;
    let list;
    if (ui.pictures) {
      // Oldest first, as time runs down the ladder; the selected packet's rung in view.
      const startedAt = ready?.startedAt ?? Date.now();
      const rows = ladderRows(ladder(conn.packets.map((p) => packetRecord(p, devices, startedAt))), columns - 2);
      const at = Math.max(
        0,
        rows.findIndex((r) => r.id === selected),
      );
      const head = rows.slice(0, 2);
      const w = windowed(rows.slice(2), at - 2, listHeight - 4);
      list = [...head, ...w.items].map((r, i) => (
        <Text
          key={i}
          wrap="truncate"
          inverse={r.id !== undefined && r.id === selected}
          color={theme.color && r.text.includes('✗') ? 'red' : undefined}
        >
          {r.text}
        </Text>
      ));
    } else {
      const w = windowed(packets, sel.connection, listHeight - 2);
      list = w.items.map((p, i) => (
        <Row key={p.id} theme={theme} selected={w.start + i === sel.connection}>
          {packetLine(p)}
        </Row>
      ));
    }
    body = (
      <Box flexDirection="column">
        <Text bold wrap="truncate">
          {connectionLine(conn, s).split(' · ').slice(0, 2).join(' · ')}
          {s?.owner ? ` · ${s.owner.comm}[${s.owner.pid}]` : ''}
        </Text>
        <Text wrap="truncate">{s?.verdict ?? ''}</Text>
        {list}
      </Box>
    );
  } else {
    const w = windowed(conns, sel.main, listHeight - 1);
    body = (
      <Box flexDirection="column">
        <Text bold>
          connections ({conns.length}
          {filter ? ` matching "${filter}"` : ''}
          {snap.evicted ? `, ${snap.evicted} older evicted` : ''})
        </Text>
        {conns.length === 0 && <Text dimColor> no matching packets yet</Text>}
        {w.items.map((c, i) => (
          <Row key={c.key} theme={theme} selected={w.start + i === sel.main}>
            {connectionLine(c, store.summaryOf(c.key))}
          </Row>
        ))}
      </Box>
    );
  }

  return (
    <Box flexDirection="column" width={columns} height={rows}>
      <Text wrap="truncate">
        <Text bold>pathtrace</Text>
        {` · ${store.filterText} · ${ns} · up ${uptime} · ${snap.eventsPerSecond} ev/s · ${snap.packets} packets · `}
        {lost > 0 ? (
          <Text color={theme.color ? 'red' : undefined} bold inverse>{`LOST ${lost} events`}</Text>
        ) : (
          <Text>lost 0</Text>
        )}
        {unavailable ? ` · ${unavailable} points unavailable` : ''}
        {paused ? <Text inverse>{' PAUSED '}</Text> : ''}
      </Text>
      <StagesView stages={snap.stages} theme={theme} />
      <Text wrap="truncate" dimColor>
        {counters ? `netstat -s: ${counters}` : 'netstat -s: no change yet'}
      </Text>
      <Box height={2} overflow="hidden">
        <Text wrap="wrap" color={theme.color ? 'yellow' : undefined}>
          {snap.notes.at(-1) ?? ''}
        </Text>
      </Box>
      <Box flexDirection="column" flexGrow={1}>
        {body}
      </Box>
      <Text wrap="truncate" dimColor>
        {editing !== null
          ? `filter: ${editing}▏ (Enter apply · Esc clear)`
          : view.kind === 'main'
            ? '↑↓/jk move · Enter open · Esc back · / filter · p pause · c clear · ? help · q quit'
            : `↑↓/jk move · Enter open · Esc back · g ${ui.pictures ? 'text' : 'pictures'} · p pause · ? help · q quit`}
      </Text>
    </Box>
  );
}
