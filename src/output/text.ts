// Human-readable output: a short block per packet, a story per connection,
// and the part a tcpdump user needs: what the capture shows and why.
import {
  flagLetters,
  TCP,
  type DeviceHookDrop,
  type DeviceNames,
  type Drop,
  type Journey,
  type Step,
} from '../correlate/journey.js';
import { placeOf } from '../correlate/points.js';
import { IPPROTO } from '../trace/record.js';
import { clock } from '../report/clock.js';
import { explain } from '../report/explain.js';
import { rewriteStory } from '../report/nat.js';
import { queueFactsLine } from '../report/nfqueue.js';
import { explainDrop, listenerWords, tooBigIcmpName } from '../report/reasons.js';
import { isTooBigIcmp } from '../correlate/identity.js';
import type { RuleAttribution } from '../rules/attribute.js';
import { HOTDROP_MATCHES } from '../rules/model.js';
import type { ReadyInfo, Sink } from './sink.js';
import { protoName, type FlowSummary, type PacketGroup, type Summary } from '../report/summary.js';

export interface Style {
  bad(s: string): string;
  good(s: string): string;
  dim(s: string): string;
  bold(s: string): string;
}

export const PLAIN: Style = { bad: (s) => s, good: (s) => s, dim: (s) => s, bold: (s) => s };
export const ANSI: Style = {
  bad: (s) => `\x1b[31m${s}\x1b[0m`,
  good: (s) => `\x1b[32m${s}\x1b[0m`,
  dim: (s) => `\x1b[2m${s}\x1b[0m`,
  bold: (s) => `\x1b[1m${s}\x1b[0m`,
};

const FLAG_NAMES: Record<string, string> = {
  S: 'SYN',
  SA: 'SYN-ACK',
  A: 'ACK',
  PA: 'PSH-ACK',
  FA: 'FIN-ACK',
  FPA: 'FIN-PSH-ACK',
  R: 'RST',
  RA: 'RST-ACK',
};

const ICMP_NAMES: Record<string, string> = {
  '4:3:3': 'port unreachable',
  '4:3:1': 'host unreachable',
  '4:3:0': 'net unreachable',
  '4:3:13': 'administratively prohibited',
  '4:11:0': 'TTL exceeded',
  '4:0:0': 'echo reply',
  '4:8:0': 'echo request',
  '6:1:4': 'port unreachable',
  '6:1:0': 'no route',
  '6:1:1': 'administratively prohibited',
  '6:1:3': 'address unreachable',
  '6:3:0': 'hop limit exceeded',
  '6:128:0': 'echo request',
  '6:129:0': 'echo reply',
};

/** "SYN", "SYN-ACK"... or tcpdump's flag letters for unusual combinations. */
export function packetKind(proto: number, flags: string): string {
  if (proto !== IPPROTO.TCP)
    return proto === IPPROTO.UDP
      ? 'UDP'
      : proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6
        ? 'ICMP'
        : `proto ${proto}`;
  return FLAG_NAMES[flags] ?? `TCP [${flags}]`;
}

/** tcpdump's flag notation: S, S., P., F., R... */
export function tcpdumpFlags(flags: number): string {
  let s = '';
  if (flags & TCP.FIN) s += 'F';
  if (flags & TCP.SYN) s += 'S';
  if (flags & TCP.RST) s += 'R';
  if (flags & TCP.PSH) s += 'P';
  if (flags & TCP.URG) s += 'U';
  if (flags & TCP.ECE) s += 'E';
  if (flags & TCP.CWR) s += 'W';
  if (flags & TCP.ACK) s += '.';
  return s || 'none';
}

export function endpoint(addr: string, port: number, family: number, proto: number): string {
  const hasPort = proto === IPPROTO.TCP || proto === IPPROTO.UDP;
  const a = family === 6 && hasPort ? `[${addr}]` : addr;
  return hasPort ? `${a}:${port}` : a;
}

export function duration(ns: number): string {
  if (ns < 1e3) return `${ns} ns`;
  if (ns < 1e6) return `${Math.round(ns / 1e3)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(ns < 1e7 ? 1 : 0)} ms`;
  return `${(ns / 1e9).toFixed(1)} s`;
}

function origin(j: Journey): string {
  if (j.origin === 'netfilter') return 'netfilter REJECT';
  if (j.origin === 'stack') return 'kernel reply';
  return `${protoName(j.proto, j.family).toUpperCase()} socket`;
}

/** The stage a drop outside netfilter's hooks names in the path: the XDP program or the tc hook; else none. */
function deviceStage(d: Drop): string {
  const h = d.device;
  if (d.layer === 'xdp') return `XDP${h?.program ? ` ${h.program.name}` : ''} `;
  if (d.layer === 'tc') return `tc${h ? ` ${h.direction}` : ''}${h?.program ? ` ${h.program.name}` : ''} `;
  return '';
}

/** What on its device dropped an XDP or tc drop, and how that is known. */
export function deviceLines(h: DeviceHookDrop, st: Style): string[] {
  const where = `${h.hook === 'xdp' ? 'XDP' : `tc ${h.direction}`} on ${h.dev}`;
  const p = h.program;
  if (p) {
    const id = [p.id !== undefined ? `id ${p.id}` : '', p.tag ? `tag ${p.tag}` : '', p.mode].filter(Boolean).join(', ');
    const how =
      p.found === 'verdict'
        ? `it returned ${p.verdict}${p.error ? ` (${p.error})` : ''}: its own answer`
        : `the only ${h.hook === 'xdp' ? 'XDP program' : 'filter that can drop'} there; its verdict is not seen on this kernel`;
    return [`${where}: ${st.bold(p.name)} (${id}) [${how}]`, ...(p.remove ? [st.dim(`remove: ${p.remove}`)] : [])];
  }
  if (h.candidates) return [`${where}: which one is a guess; candidates: ${h.candidates.join(' | ')}`];
  if (h.unread)
    return [`${where}: no BPF program is attached there, and its tc filters could not be read: ${h.unread}`];
  return [`${where}: nothing that can drop is attached there now (detached since?)`];
}

/** The path as stages: "rx eth0 ─ tcpdump ✓ ─ PRE_ROUTING ✓ ─ route: local ─ LOCAL_IN ✗ dropped". */
export function pathLine(j: Journey, dev: DeviceNames, st: Style): string {
  const parts: (string | { key: string; hook: string })[] = [];
  if (j.direction === 'out') parts.push(origin(j));
  // Hook passes by key: the hook's name, marked "(bridge)" for br_netfilter's pass on a bridge port.
  const hooks = new Map<string, { exit: boolean }>();
  let rxDevice = false;
  let routeShown = false;
  let preRouting = false;
  const steps = j.steps;
  // Matched the filter only from a hook on (after conntrack or NAT): it came in on a device.
  const tapped = j.tcpdumpDevices[0];
  if (j.direction !== 'out' && steps[0]?.point === 'netfilter' && j.tcpdump && tapped !== undefined) {
    parts.push(`rx ${dev.name(tapped)}`, `tcpdump ${st.good('✓')}`);
    rxDevice = true;
  }
  steps.forEach((s: Step) => {
    switch (placeOf(s.point)) {
      case 'rx':
        if (!rxDevice) parts.push(`rx ${dev.name(s.ifindex ?? 0)}`);
        rxDevice = true;
        if (j.mergedInto !== undefined) parts.push('GRO merged');
        break;
      case 'rx-tap':
        // A second receive: a bridge (bond, VLAN) handed it up to its own device.
        if (!rxDevice) parts.push(`rx ${dev.name(s.ifindex ?? 0)}`);
        else if (parts.length && !String(parts[parts.length - 1]).startsWith('rx '))
          parts.push(`up to ${dev.name(s.ifindex ?? 0)}`);
        rxDevice = true;
        // Generic XDP runs between this point and the tap: a packet it dropped never reached the tap.
        if (j.tcpdumpDevices.includes(s.ifindex ?? 0)) parts.push(`tcpdump ${st.good('✓')}`);
        break;
      case 'hook': {
        const key = s.bridge ? `${s.hook} (bridge)` : s.hook!;
        // The routing decision shows before the first hook after routing.
        if (!routeShown && !s.bridge && (s.hook === 'LOCAL_IN' || s.hook === 'FORWARD') && preRouting) {
          parts.push(s.hook === 'FORWARD' ? `route: forward${s.out ? ` → ${dev.name(s.out)}` : ''}` : 'route: local');
          routeShown = true;
        }
        if (s.hook === 'PRE_ROUTING') preRouting = true;
        const h = hooks.get(key);
        if (!h) {
          hooks.set(key, { exit: s.at === 'exit' || s.passed === true });
          parts.push({ key, hook: s.hook! });
        } else if (s.at === 'exit' || s.passed) h.exit = true;
        break;
      }
      case 'neighbour':
        if (j.neighbourWaitNs !== undefined && j.neighbourWaitNs > 1e6)
          parts.push(`neighbour resolved after ${duration(j.neighbourWaitNs)}`);
        break;
      case 'qdisc':
        if (s.point === 'qdisc_enqueue') parts.push(`qdisc ${dev.name(s.ifindex ?? 0)} (queue ${s.qlen})`);
        else if (j.qdiscWaitNs !== undefined) parts.push(`dequeued after ${duration(j.qdiscWaitNs)}`);
        break;
      case 'tx-tap':
        parts.push(`tcpdump ${st.good('✓')}`, `tx ${dev.name(s.ifindex ?? 0)}`);
        break;
      case 'tcp':
        if (s.point === 'tcp_send_reset') parts.push('TCP sent RST');
        break;
    }
  });
  // The drop is at the last pass of its hook (a bridge pass and the routed one may share a hook).
  const lastOfHook = new Map<string, object>();
  for (const p of parts) if (typeof p !== 'string') lastOfHook.set(p.hook, p);
  const rendered = parts.map((p) => {
    if (typeof p === 'string') return p;
    if (j.drop?.hook === p.hook && lastOfHook.get(p.hook) === p) return `${p.key} ${st.bad('✗ dropped')}`;
    return hooks.get(p.key)!.exit ? `${p.key} ${st.good('✓')}` : `${p.key} …`;
  });
  if (j.delivery && j.fate === 'delivered') {
    rendered.push(`${protoName(j.proto, j.family).toUpperCase()} socket`);
    const r = j.delivery.read;
    rendered.push(r ? `read by ${r.comm}[${r.pid}] after ${duration(r.queuedNs)}` : 'delivered');
  } else if (j.fate === 'dropped' && !j.drop?.hook) {
    if (j.drop?.layer === 'neighbour' && j.neighbourWaitNs === undefined) {
      const post = steps.find((s) => s.hook === 'POST_ROUTING' && s.at === 'exit');
      if (post) rendered.push(`neighbour resolution ${duration(steps.at(-1)!.t - post.t)}`);
    }
    rendered.push(`${j.drop ? deviceStage(j.drop) : ''}${st.bad('✗ dropped')}`);
  } else if (j.fate !== 'dropped') {
    rendered.push(j.fate === 'unfinished' ? `… ${j.ending}` : j.fate);
  }
  let line = rendered.join(' ─ ');
  if (!j.tcpdump) {
    line +=
      j.direction === 'out'
        ? ` · tcpdump ${st.bad('✗')} (never reached a device's capture point)`
        : j.drop?.layer === 'xdp'
          ? ` · tcpdump ${st.bad('✗')} (XDP runs before the capture point)`
          : ` · tcpdump ${st.bad('✗')}`;
  }
  return line;
}

function header(j: Journey, startedAt: number, st: Style): string {
  const tcp = j.proto === IPPROTO.TCP;
  const dir = j.direction === 'in' ? 'in ' : j.direction === 'out' ? 'out' : 'fwd';
  const parts = [clock(startedAt * 1000 + j.start / 1000), dir];
  if (j.icmp) {
    const name = isTooBigIcmp(j.family, j.icmp.type, j.icmp.code)
      ? tooBigIcmpName(j.icmp.mtu)
      : (ICMP_NAMES[`${j.family}:${j.icmp.type}:${j.icmp.code}`] ?? `type ${j.icmp.type} code ${j.icmp.code}`);
    parts.push(st.bold(`ICMP ${name}`), `${j.src} → ${j.dst}`);
    if (j.icmp.about) {
      const about = protoName(j.icmp.about.proto, j.family);
      parts.push(
        `about ${about} ${endpoint(j.dst, j.sport, j.family, j.icmp.about.proto)} → ${endpoint(j.icmp.about.dst, j.dport, j.family, j.icmp.about.proto)}`,
      );
    }
  } else {
    parts.push(
      st.bold(packetKind(j.proto, flagLetters(j.flags))),
      `${endpoint(j.src, j.sport, j.family, j.proto)} → ${endpoint(j.dst, j.dport, j.family, j.proto)}`,
      tcp
        ? `[${tcpdumpFlags(j.flags)}] seq ${j.seq}${j.flags & TCP.ACK ? ` ack ${j.ack}` : ''} len ${j.len}`
        : `len ${j.len}`,
    );
  }
  if (j.translated) {
    const t = j.translated;
    parts.push(`NAT → ${endpoint(t.src, t.sport, j.family, j.proto)} → ${endpoint(t.dst, t.dport, j.family, j.proto)}`);
  }
  if (j.retransmit > 0) parts.push(st.dim(`(retransmission ${j.retransmit})`));
  return parts.join(' ');
}

/** Where in the ruleset a netfilter drop happened, and the commands to look and undo. */
export function ruleLines(a: RuleAttribution, st: Style): string[] {
  const where = `table ${a.family} ${a.table} chain ${a.chain} (${a.source}${a.owner ? `, managed by ${a.owner}` : ''})`;
  const lines: string[] = [];
  const hot = a.hotdrop && `the ${a.hotdrop.match} match of ${a.hotdrop.rule}`;
  const why = a.hotdrop && `hotdrop: ${HOTDROP_MATCHES[a.hotdrop.match]}`;
  if (a.hotdrop?.sure) {
    lines.push(`${where}: ${st.bold(`${hot} dropped it itself (${why}), not the rule's verdict`)}`);
  } else if (a.rule) {
    const how = a.rule.found === 'policy' ? "the chain's policy" : `found by ${a.rule.found}`;
    lines.push(`${where}: ${st.bold(a.rule.text)} [${how}]`);
  } else {
    lines.push(`${where}: which rule is a guess; candidates: ${(a.candidates ?? []).join(' | ') || '(none known)'}`);
    if (hot) lines.push(`${hot} may have dropped it itself (${why}), whatever the rule's verdict`);
    if (a.exact) lines.push(st.dim(a.exact));
  }
  if (a.inspect) lines.push(st.dim(`inspect: ${a.inspect}${a.remove ? ` · remove: ${a.remove}` : ''}`));
  if (a.hint) lines.push(st.dim(`${a.owner}: ${a.hint}`));
  return lines;
}

export function formatJourney(j: Journey, dev: DeviceNames, startedAt: number, st: Style = PLAIN): string {
  const lines = [header(j, startedAt, st), `  ${pathLine(j, dev, st)}`];
  const facts: string[] = [];
  const extra: string[] = [];
  if (j.drop) {
    facts.push(
      j.ending === 'verdict'
        ? `${st.bad(j.drop.told?.verdict ?? 'dropped')} in XDP, no skb freed (the driver recycles its buffer)`
        : `${st.bad(j.drop.reason ?? 'no reason (this kernel reports none)')} at ${j.drop.location || '?'} (${j.drop.layer}${j.drop.hook ? `, hook ${j.drop.hook}` : ''})`,
    );
    if (j.drop.inferred) facts.push(`inferred: ${j.drop.inferred}`);
    const ls = j.drop.listening;
    if (ls) facts.push(ls.length ? `listening: ${listenerWords(ls, true)}` : 'no socket listens there now');
    if (j.drop.answered !== undefined)
      facts.push(
        j.drop.answered ? 'rejected: this host answered it (RST or ICMP error)' : 'silently: no answer was sent',
      );
    extra.push(st.dim(`why: ${explainDrop(j.drop)}`));
    if (j.drop.nfqueue) extra.push(`nfqueue: ${queueFactsLine(j.drop.nfqueue)}`);
    if (j.drop.advice?.length) extra.push(st.dim(`next: ${j.drop.advice.join(' · ')}`));
    const a = j.drop.attribution;
    if (a) extra.push(...ruleLines(a, st));
    else if (j.drop.rulesUnread) extra.push(`rule: not named: the ruleset could not be read (${j.drop.rulesUnread})`);
    if (j.drop.device) extra.push(...deviceLines(j.drop.device, st));
  } else if (j.ending === 'freed') {
    const last = j.steps[j.steps.length - 1];
    if (last?.location) facts.push(st.dim(`freed by ${last.location}`));
  }
  if (j.tcp) {
    if (j.tcp.saw === false) facts.push('TCP never saw it');
    else if (j.tcp.reply) facts.push(`TCP answered ${packetKind(IPPROTO.TCP, j.tcp.reply)}`);
    else if (j.tcp.saw && j.flags & TCP.SYN && !(j.flags & TCP.ACK)) facts.push('TCP received it');
  }
  if (j.delivery?.socket === false) facts.push('no socket');
  if (j.mergedInto !== undefined) facts.push(`GRO merged it into packet #${j.mergedInto}, whose fate it shares`);
  if (j.segments) facts.push(`GSO cut it into ${j.segments.length} segments (#${j.segments.join(', #')})`);
  if (j.segmentOf !== undefined) facts.push(`a GSO segment of packet #${j.segmentOf}`);
  if (j.incomplete) facts.push(st.bad('events were lost while it was traced: steps may be missing'));
  if (j.route?.decision === 'forward' && j.route.outDev)
    facts.push(`forwarded ${dev.name(j.route.inDev ?? 0)} → ${dev.name(j.route.outDev)}`);
  if (j.route?.decision === 'bridge' && j.route.outDev)
    facts.push(`bridged ${dev.name(j.route.inDev ?? 0)} → ${dev.name(j.route.outDev)} (no IP routing)`);
  if (facts.length) lines.push(`  ${facts.join(' · ')}`);
  for (const r of j.nat ?? []) {
    lines.push(`  ${rewriteStory(r, j.family, j.proto === IPPROTO.TCP || j.proto === IPPROTO.UDP)}`);
    if (r.rule?.rule && r.rule.inspect) lines.push(`  ${st.dim(`inspect: ${r.rule.inspect}`)}`);
  }
  for (const x of extra) lines.push(`  ${x}`);
  return lines.join('\n');
}

function groupLine(g: PacketGroup): string {
  const dir = g.direction === 'in' ? 'in ' : g.direction === 'out' ? 'out' : 'fwd';
  const fate =
    g.fate === 'dropped'
      ? `dropped${g.hook ? ` at ${g.hook}` : ''} (${g.reason ?? 'no reason'}${g.location ? `, ${g.location}` : ''})`
      : g.fate;
  const kind = packetKind(
    g.kind === 'udp' ? IPPROTO.UDP : g.kind.startsWith('icmp') ? IPPROTO.ICMP : IPPROTO.TCP,
    g.kind,
  );
  const parts = [`${dir} ${kind} ×${g.count}`, `tcpdump saw ${g.tcpdump}`, fate];
  if (g.direction === 'in' && /^[FSRPAUEC]+$/.test(g.kind)) parts.push(`TCP saw ${g.tcpSaw}`);
  if (g.read) parts.push(`${g.read} read by the application`);
  if (g.origin && g.origin !== 'socket')
    parts.push(g.origin === 'netfilter' ? 'made by netfilter REJECT' : 'made by the kernel');
  if (g.retransmits) parts.push(`${g.retransmits} retransmission${g.retransmits > 1 ? 's' : ''}`);
  return parts.join(' · ');
}

function flowLines(f: FlowSummary): string[] {
  const lines = [`${f.proto} ${f.a} ↔ ${f.b}${f.owner ? ` · ${f.owner.comm}[${f.owner.pid}]` : ''}`];
  lines.push(`  ${f.verdict}`);
  for (const g of f.groups) lines.push(`    ${groupLine(g)}`);
  const tcp: string[] = [];
  if (f.synackRetransmits) tcp.push(`SYN-ACK retransmitted ${f.synackRetransmits}× by TCP`);
  if (f.retransmits) tcp.push(`${f.retransmits} retransmissions by TCP`);
  if (f.resetsSent) tcp.push(`${f.resetsSent} RST sent by TCP`);
  if (f.resetsReceived) tcp.push(`${f.resetsReceived} RST received`);
  if (tcp.length) lines.push(`    TCP: ${tcp.join(' · ')}`);
  return lines;
}

export function formatSummary(s: Summary, st: Style = PLAIN): string {
  const fates = (['dropped', 'delivered', 'sent', 'forwarded', 'unfinished'] as const)
    .filter((f) => s.byFate[f] > 0)
    .map((f) => `${s.byFate[f]} ${f}`);
  const lost =
    s.lostEvents > 0
      ? st.bad(`${s.lostEvents} events LOST (ring buffer full): the picture is incomplete`)
      : '0 events lost';
  const lines = [
    st.bold(
      `── ${s.packets} packet${s.packets === 1 ? '' : 's'}${fates.length ? `: ${fates.join(', ')}` : ''} · ${lost} · ${(s.durationNs / 1e9).toFixed(1)} s`,
    ),
  ];
  if (s.cutByTimeout) lines.push(`${s.cutByTimeout} journeys cut by timeout (no event for 1 s mid-path)`);
  if (s.evictedFlows)
    lines.push(`${s.evictedFlows} older connections were forgotten to bound memory (their packets are counted)`);
  if (s.incomplete)
    lines.push(st.bad(`${s.incomplete} journeys were under way when events were lost: they may miss steps`));
  for (const f of s.flows) lines.push(...flowLines(f));
  const counters = Object.entries(s.counters ?? {}).filter(
    ([k]) => s.flows.some((f) => f.a.startsWith('[')) || !/^(Ip6|Icmp6|Udp6|UdpLite6)/.test(k),
  );
  if (counters.length) {
    lines.push(`counters (netstat -s): ${counters.map(([k, v]) => `${k} ${v > 0 ? '+' : ''}${v}`).join(', ')}`);
  }
  if (s.drops.length) {
    lines.push(st.bold('Drops by cause:'));
    for (const d of s.drops) lines.push(`  ${d.count} × ${d.explanation}${d.hook ? ` (at ${d.hook})` : ''}`);
  }
  const why = explain(s);
  if (why.length) {
    lines.push(st.bold('What tcpdump shows, and why:'));
    for (const w of why) lines.push(`  - ${w}`);
  }
  for (const u of s.unavailable) lines.push(st.dim(`not traced: ${u.point}: ${u.reason}`));
  if (s.stoppedBy === 'netns-gone')
    lines.push(st.bad('stopped: the traced network namespace is gone (deleted, or its last process exited)'));
  return lines.join('\n');
}

export function readyLine(r: ReadyInfo, filterText: string): string {
  const nf = r.netfilter.filter((p) => p.entry !== null).length + r.netfilter.filter((p) => p.exit !== null).length;
  const { container: c, pod } = r.netns;
  const ns = c
    ? `container ${c.name} (${c.runtime} ${c.id.slice(0, 12)}${c.pod ? `, pod ${c.pod.namespace}/${c.pod.name}` : ''})`
    : pod
      ? `pod ${pod.namespace}/${pod.name} (sandbox ${pod.id.slice(0, 12)}${pod.containers.length ? `: ${pod.containers.join(', ')}` : ''})`
      : r.netns.label === 'own'
        ? 'this network namespace'
        : `netns ${r.netns.label}`;
  const hooks =
    r.netfilterMechanism === 'links'
      ? `${nf} netfilter probes`
      : r.netfilterMechanism === 'none'
        ? 'netfilter not traced'
        : `netfilter by ${r.netfilterMechanism} on nf_hook_slow`;
  const tracepoints = r.points.filter((p) => !p.includes('/')).length;
  return (
    `pathtrace: tracing ${filterText} in ${ns}: ${hooks}, ${tracepoints} tracepoints` +
    `${r.unavailable.length ? `, ${r.unavailable.length} points unavailable` : ''}. Ctrl-C to stop.`
  );
}

export class TextSink implements Sink {
  private startedAt = Date.now();

  constructor(
    private readonly devices: () => DeviceNames,
    private readonly filterText: string,
    private readonly style: Style,
    private readonly out: (s: string) => void = (s) => process.stdout.write(s + '\n'),
    private readonly err: (s: string) => void = (s) => process.stderr.write(s + '\n'),
  ) {}

  ready(info: ReadyInfo): void {
    this.startedAt = info.startedAt;
    this.err(readyLine(info, this.filterText));
    for (const u of info.unavailable) this.err(`pathtrace: not traced: ${u.point}: ${u.reason}`);
  }

  packet(j: Journey): void {
    this.out(formatJourney(j, this.devices(), this.startedAt, this.style));
  }

  note(message: string): void {
    this.err(`pathtrace: ${message}`);
  }

  summary(s: Summary): void {
    this.out(formatSummary(s, this.style));
  }
}
