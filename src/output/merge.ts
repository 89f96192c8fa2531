// What `pathtrace merge` (and --netns twice) prints: each connection's trips between the two hosts, as text
// or as NDJSON records. Pure.
import type { LoadedTrace } from '../capture/trace-file.js';
import { clock } from '../report/clock.js';
import { afterCapture } from '../report/compare.js';
import { deviceStep, PATH_WORDS, type HostPacket, type Merged, type Trip } from '../report/merge.js';
import { rewriteStory, tupleText } from '../report/nat.js';
import { PROTO_NAMES } from '../trace/record.js';
import type { RuleAttribution } from '../rules/attribute.js';
import type { MergeRecord, MergeSummaryRecord, PathVerdict, TripSide } from './records.js';

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

// ---- text ------------------------------------------------------------------

const ms = (us: number) => `${(us / 1000).toFixed(3)} ms`;

/** A trace's flow key ("6 198.18.0.1:40000 198.18.0.2:3306") as "tcp 198.18.0.1:40000 ↔ 198.18.0.2:3306". */
export const flowText = (flow: string) => {
  const [proto = '', a, b] = flow.split(' ');
  return b ? `${PROTO_NAMES[Number(proto)] ?? `proto ${proto}`} ${a} ↔ ${b}` : flow;
};

/** The counters that tell of loss: drops, discards, errors, overflows, retransmissions, timeouts. */
const LOSS_COUNTER = /drop|discard|err|overflow|fail|retrans|lost|timeout|prune|collapse/i;

/** "server's clock is 1.204 ms ahead of client's ± 0.050 ms (from 6 packets seen by both)". Pure. */
export function clockText(m: Merged): string {
  const [a, b] = m.hosts;
  const c = m.clock;
  if (c.offsetUs === null) return `clocks: no packet was seen by both: each host's times are its own`;
  const ahead = (v: number) => (v >= 0 ? `${ms(v)} ahead of` : `${ms(-v)} behind`);
  const from = `from ${c.pairs} packet${c.pairs === 1 ? '' : 's'} seen by both`;
  if (c.uncertaintyUs === null) {
    return c.upperUs !== null
      ? `clocks: ${b}'s is at most ${ahead(c.upperUs)} ${a}'s (${from}, all sent by ${a}: the one-way delay is not known; times below take it as 0)`
      : `clocks: ${b}'s is at least ${ahead(c.lowerUs!)} ${a}'s (${from}, all sent by ${b}: the one-way delay is not known; times below take it as 0)`;
  }
  const warn = c.inconsistent
    ? `; the packets contradict each other: a clock stepped or drifted during the traces, times are approximate`
    : '';
  return `clocks: ${b}'s is ${ahead(c.offsetUs)} ${a}'s ± ${ms(c.uncertaintyUs)} (${from})${warn}; times below are ${a}'s`;
}

const kind = (p: HostPacket) =>
  p.tcp_flags ? `[${p.tcp_flags}]${p.proto === 'tcp' ? ` seq ${p.seq}` : ''}` : `${p.proto} len ${p.len}`;
const device = (p: HostPacket, tx: boolean) => deviceStep(p, tx)?.dev ?? p.tcpdump_devices[0] ?? 'device';
/** " as 198.18.1.1:40000 → 198.18.2.2:8080": the tuple it left with, where the sender's NAT rewrote it. */
const leftAs = (p: HostPacket) =>
  p.translated ? ` as ${tupleText(p.translated, p.family === 'ipv6' ? 6 : 4, p.sport !== null)}` : '';

/** One trip as a line: where it went between the two hosts. Pure. */
export function tripText(t: Trip, hosts: [string, string]): string {
  const [from, to] = [hosts[t.from], hosts[1 - t.from]];
  const p = (t.sent ?? t.received)!;
  const head = `${clock(t.at)}  ${from} → ${to}  ${kind(p)}`;
  const left = t.sent ? `left ${from}'s ${device(t.sent, true)}${leftAs(t.sent)}` : '';
  const arrived = t.received
    ? `reached ${to}'s ${device(t.received, false)}${t.leftAt !== null && t.arrivedAt !== null ? ` after ${ms(t.arrivedAt - t.leftAt)}` : ''}`
    : '';
  const stories: Record<PathVerdict, () => string> = {
    delivered: () => `${left} · ${arrived} · delivered`,
    arrived: () => `${left} · ${arrived} · then ${t.received!.fate}`,
    'dropped-at-receiver': () => `${left} · ${arrived} · on ${to}: ${afterCapture(t.received!)}`,
    'lost-on-path': () => `${left} · never reached ${to}: lost on the path`,
    'dropped-at-sender': () => `never left ${from}: ${afterCapture(t.sent!)}`,
    'not-sent': () => `not seen leaving ${from} (${t.sent!.fate})`,
    'receiver-blind': () => `${left} · ${to}'s trace cannot tell (not tracing then, or its filter leaves it out)`,
    'sender-unseen': () =>
      `${arrived} · ${from}'s trace has no such packet leaving (another sender, or its events lost) · on ${to}: ${afterCapture(t.received!)}`,
  };
  return `${head}  ${stories[t.path]()}`;
}

/** The NAT rules either host's rewrites of the connection's packets came from, once each: "router's NAT at ...". */
function natRules(trips: Trip[], hosts: [string, string]): string[] {
  const out = new Set<string>();
  for (const t of trips) {
    for (const [p, host] of [
      [t.sent, hosts[t.from]],
      [t.received, hosts[1 - t.from]],
    ] as const) {
      for (const r of p?.nat ?? []) {
        if (r.by !== 'rule' || !p) continue;
        // The record has the rule flattened in, as a drop's.
        const rule = r.table === undefined ? undefined : (r as RuleAttribution);
        out.add(`${host}'s ${rewriteStory({ ...r, rule }, p.family === 'ipv6' ? 6 : 4, p.sport !== null)}`);
      }
    }
  }
  return [...out];
}

export function formatMerged(m: Merged, files: [string, string], traces: [LoadedTrace, LoadedTrace]): string {
  const [a, b] = m.hosts;
  const named = (h: string, f: string, t: LoadedTrace) => `${h}${f === h ? '' : `: ${f}`} (${t.total} packets)`;
  const lines = [`${named(a, files[0], traces[0])} · ${named(b, files[1], traces[1])}`, clockText(m), ''];
  for (const c of m.connections) {
    lines.push(flowText(c.flow), `  ${c.verdict}`, ...natRules(c.trips, m.hosts).map((l) => `  ${l}`));
    for (const t of c.trips) lines.push(`    ${tripText(t, m.hosts)}`);
    lines.push('');
  }
  if (!m.connections.length) lines.push(`no packet went between ${a} and ${b} in these traces`, '');
  const totals = new Map<PathVerdict, number>();
  for (const c of m.connections) for (const t of c.trips) totals.set(t.path, (totals.get(t.path) ?? 0) + 1);
  if (totals.size) lines.push(`trips: ${[...totals].map(([p, n]) => `${n} ${PATH_WORDS[p]}`).join(', ')}`);
  for (const i of [0, 1] as const) {
    const [h, other] = i === 0 ? m.hosts : [m.hosts[1], m.hosts[0]];
    if (m.elsewhere[i])
      lines.push(
        `${h}: ${m.elsewhere[i]} packets sent to addresses ${other} does not have, left out (another host, or a NAT on the path that ${other}'s trace cannot show)`,
      );
    const lost = traces[i].summary?.lost_events;
    if (isNum(lost) && lost > 0)
      lines.push(`${h} lost ${lost} events: a packet missing from its trace may be among them`);
    const counters = traces[i].summary?.counters;
    const loss =
      counters && typeof counters === 'object' ? Object.entries(counters).filter(([k]) => LOSS_COUNTER.test(k)) : [];
    if (loss.length)
      lines.push(
        `${h}'s counters of loss (netstat -s, ip -s link, softnet_stat): ${loss.map(([k, v]) => `${k} +${v}`).join(', ')}`,
      );
  }
  return lines.join('\n').trimEnd();
}

// ---- JSON ------------------------------------------------------------------

const side = (host: string, p: HostPacket | null, at: number | null): TripSide | null =>
  p && {
    host,
    id: p.id,
    fate: p.fate,
    drop: p.drop,
    at_us: at === null ? null : Math.round(at),
  };

/** NDJSON records: the clock, each trip with its path verdict, each connection, totals. Pure. */
export function mergedRecords(m: Merged): MergeRecord[] {
  const [a, b] = m.hosts;
  const c = m.clock;
  const out: MergeRecord[] = [
    {
      type: 'clock',
      hosts: m.hosts,
      offset_us: c.offsetUs,
      uncertainty_us: c.uncertaintyUs,
      lower_us: c.lowerUs,
      upper_us: c.upperUs,
      pairs: c.pairs,
      inconsistent: c.inconsistent,
    },
  ];
  const totals: MergeSummaryRecord['paths'] = {};
  for (const conn of m.connections) {
    for (const t of conn.trips) {
      const p = (t.sent ?? t.received)!;
      const [from, to] = t.from === 0 ? m.hosts : [m.hosts[1], m.hosts[0]];
      totals[t.path] = (totals[t.path] ?? 0) + 1;
      out.push({
        type: 'trip',
        flow: conn.flow,
        from,
        to,
        path: t.path,
        proto: p.proto,
        src: p.src,
        dst: p.dst,
        sport: p.sport,
        dport: p.dport,
        tcp_flags: p.tcp_flags,
        seq: p.seq,
        ack: p.ack,
        len: p.len,
        translated: t.sent?.translated,
        sent: side(from, t.sent, t.leftAt),
        received: side(to, t.received, t.arrivedAt),
      });
    }
    out.push({ type: 'connection', flow: conn.flow, verdict: conn.verdict, trips: conn.trips.length });
  }
  out.push({
    type: 'merge_summary',
    hosts: m.hosts,
    paths: totals,
    elsewhere: { [a]: m.elsewhere[0], [b]: m.elsewhere[1] },
  });
  return out;
}
