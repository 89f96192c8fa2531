// Human-readable output: a short block per packet, a summary per flow, and
// the part a tcpdump user needs: what the capture shows and why.
import { flagLetters, TCP, type Journey } from '../journey.js';
import { IPPROTO } from '../record.js';
import type { ReadyInfo, Sink } from '../session.js';
import { protoName, type PacketGroup, type Summary } from '../summary.js';
import type { DeviceNames } from './json.js';

export interface Style { bad(s: string): string; good(s: string): string; dim(s: string): string; bold(s: string): string }

export const PLAIN: Style = { bad: (s) => s, good: (s) => s, dim: (s) => s, bold: (s) => s };
export const ANSI: Style = {
  bad: (s) => `\x1b[31m${s}\x1b[0m`, good: (s) => `\x1b[32m${s}\x1b[0m`,
  dim: (s) => `\x1b[2m${s}\x1b[0m`, bold: (s) => `\x1b[1m${s}\x1b[0m`,
};

const FLAG_NAMES: Record<string, string> = {
  S: 'SYN', SA: 'SYN-ACK', A: 'ACK', PA: 'PSH-ACK', FA: 'FIN-ACK', FPA: 'FIN-PSH-ACK', R: 'RST', RA: 'RST-ACK',
};

/** "SYN", "SYN-ACK"... or tcpdump's flag letters for unusual combinations. */
export function packetKind(proto: number, flags: string): string {
  if (proto !== IPPROTO.TCP) return proto === IPPROTO.UDP ? 'UDP' : proto === IPPROTO.ICMP || proto === IPPROTO.ICMPV6 ? 'ICMP' : `proto ${proto}`;
  return FLAG_NAMES[flags] ?? `TCP [${flags}]`;
}

/** tcpdump's flag notation: S, S., P., F., R... */
export function tcpdumpFlags(flags: number): string {
  let s = '';
  if (flags & TCP.FIN) s += 'F';
  if (flags & TCP.SYN) s += 'S';
  if (flags & TCP.RST) s += 'R';
  if (flags & TCP.PSH) s += 'P';
  if (flags & 0x20) s += 'U';
  if (flags & 0x40) s += 'E';
  if (flags & 0x80) s += 'W';
  if (flags & TCP.ACK) s += '.';
  return s || 'none';
}

export function endpoint(addr: string, port: number, family: number, proto: number): string {
  const hasPort = proto === IPPROTO.TCP || proto === IPPROTO.UDP;
  const a = family === 6 && hasPort ? `[${addr}]` : addr;
  return hasPort ? `${a}:${port}` : a;
}

function clock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  const micros = Math.floor((ms % 1000) * 1000);
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(micros, 6)}`;
}

/** The path as stages: "rx veth0 ─ tcpdump ✓ ─ PRE_ROUTING ✓ ─ LOCAL_IN ✗ dropped". */
export function pathLine(j: Journey, dev: DeviceNames, st: Style): string {
  const parts: string[] = [];
  if (j.direction === 'out') parts.push(`${protoName(j.proto, j.family).toUpperCase()} socket`);
  const hooks = new Map<string, { exit: boolean }>();
  for (const s of j.steps) {
    if (s.point === 'netif_receive_skb') parts.push(`rx ${dev.name(s.ifindex ?? 0)}`, `tcpdump ${st.good('✓')}`);
    else if (s.point === 'net_dev_start_xmit') parts.push(`tcpdump ${st.good('✓')}`, `tx ${dev.name(s.ifindex ?? 0)}`);
    else if (s.point === 'netfilter' && s.hook) {
      const h = hooks.get(s.hook);
      if (!h) {
        hooks.set(s.hook, { exit: s.at === 'exit' });
        parts.push(`@${s.hook}`);
      } else if (s.at === 'exit') h.exit = true;
    } else if (s.point === 'tcp_send_reset') parts.push('TCP sent RST');
  }
  const rendered = parts.map((p) => {
    if (!p.startsWith('@')) return p;
    const hook = p.slice(1);
    if (j.drop?.hook === hook) return `${hook} ${st.bad('✗ dropped')}`;
    return hooks.get(hook)!.exit ? `${hook} ${st.good('✓')}` : `${hook} …`;
  });
  if (j.fate === 'dropped' && !j.drop?.hook) rendered.push(st.bad(`✗ dropped`));
  else if (j.fate !== 'dropped') rendered.push(j.fate === 'unfinished' ? `… ${j.ending}` : j.fate);
  let line = rendered.join(' ─ ');
  if (!j.tcpdump) {
    line += j.direction === 'out'
      ? ` · tcpdump ${st.bad('✗')} (never reached a device's capture point)`
      : ` · tcpdump ${st.bad('✗')}`;
  }
  return line;
}

export function formatJourney(j: Journey, dev: DeviceNames, startedAt: number, st: Style = PLAIN): string {
  const tcp = j.proto === IPPROTO.TCP;
  const letters = flagLetters(j.flags);
  const head = [
    clock(startedAt + j.start / 1e6),
    j.direction === 'in' ? 'in ' : j.direction === 'out' ? 'out' : 'fwd',
    st.bold(packetKind(j.proto, letters)),
    `${endpoint(j.src, j.sport, j.family, j.proto)} → ${endpoint(j.dst, j.dport, j.family, j.proto)}`,
    tcp ? `[${tcpdumpFlags(j.flags)}] seq ${j.seq}${j.flags & TCP.ACK ? ` ack ${j.ack}` : ''} len ${j.len}` : `len ${j.len}`,
  ];
  if (j.retransmit > 0) head.push(st.dim(`(retransmission ${j.retransmit})`));
  const lines = [head.join(' '), `  ${pathLine(j, dev, st)}`];
  const facts: string[] = [];
  if (j.drop) {
    facts.push(`${st.bad(j.drop.reason)} at ${j.drop.location || '?'} (${j.drop.layer}${j.drop.hook ? `, hook ${j.drop.hook}` : ''})`);
  } else if (j.ending === 'freed') {
    const last = j.steps[j.steps.length - 1];
    if (last?.location) facts.push(st.dim(`freed by ${last.location}`));
  }
  if (j.tcp) {
    if (!j.tcp.saw) facts.push('TCP never saw it');
    else if (j.tcp.reply) facts.push(`TCP answered ${packetKind(IPPROTO.TCP, j.tcp.reply)}`);
    else if ((j.flags & TCP.SYN) && !(j.flags & TCP.ACK)) facts.push('TCP received it');
  }
  if (facts.length) lines.push(`  ${facts.join(' · ')}`);
  return lines.join('\n');
}

function groupLine(g: PacketGroup, proto: number): string {
  const kind = packetKind(proto, g.flags);
  const dir = g.direction === 'in' ? 'in ' : g.direction === 'out' ? 'out' : 'fwd';
  const fate = g.fate === 'dropped'
    ? `dropped${g.hook ? ` at ${g.hook}` : ''} (${g.reason}${g.location ? `, ${g.location}` : ''})`
    : g.fate;
  const parts = [`${dir} ${kind} ×${g.count}`, `tcpdump saw ${g.tcpdump}`, fate];
  if (g.direction === 'in' && proto === IPPROTO.TCP) parts.push(`TCP saw ${g.tcpSaw}`);
  if (g.retransmits) parts.push(`${g.retransmits} retransmission${g.retransmits > 1 ? 's' : ''}`);
  return parts.join(' · ');
}

/** Sentences for a tcpdump user: which packets the capture shows although
 *  they died, and which it does not show although the host handled them. */
export function explain(s: Summary): string[] {
  const out: string[] = [];
  for (const f of s.flows) {
    const proto = f.proto === 'tcp' ? IPPROTO.TCP : f.proto === 'udp' ? IPPROTO.UDP : IPPROTO.ICMP;
    for (const g of f.groups) {
      const kind = packetKind(proto, g.flags);
      if (g.fate !== 'dropped') {
        const answered = g.replies.SA ?? 0;
        // Worth saying only when the capture makes the SYNs look ignored: the answers never reached it.
        const unseenAnswers = f.groups.some((x) => x.direction === 'out' && x.flags === 'SA' && x.tcpdump < x.count);
        if (g.direction === 'in' && g.flags === 'S' && g.tcpdump > 0 && answered > 0 && unseenAnswers) {
          out.push(`tcpdump shows ${g.tcpdump} SYN arriving, and TCP received ${g.tcpSaw === g.count ? 'every one' : g.tcpSaw}: ` +
            `it answered ${answered === g.count ? 'each' : answered} with a SYN-ACK from a request socket in SYN_RECV.`);
        }
        continue;
      }
      const where = g.hook ? `at ${g.hook}` : `in the ${g.layer} layer`;
      if (g.direction === 'in' && g.tcpdump > 0) {
        const tcp = proto === IPPROTO.TCP ? (g.tcpSaw === 0 ? ' TCP never saw them, so it never answered.' : '') : '';
        out.push(`tcpdump shows ${g.tcpdump} ${kind} arriving: it captures them at the device, before netfilter. ` +
          `They were dropped afterwards, ${where} (${g.reason}).${tcp}`);
      } else if (g.direction === 'out' && g.tcpdump === 0) {
        out.push(`tcpdump shows none of the ${g.count} ${kind} sent by this host: they were dropped ${where} (${g.reason}), ` +
          `before the device where tcpdump captures.`);
      }
    }
  }
  return out;
}

export function formatSummary(s: Summary, st: Style = PLAIN): string {
  const fates = (['dropped', 'delivered', 'sent', 'forwarded', 'unfinished'] as const)
    .filter((f) => s.byFate[f] > 0).map((f) => `${s.byFate[f]} ${f}`);
  const lost = s.lostEvents > 0 ? st.bad(`${s.lostEvents} events LOST (ring buffer full): the picture is incomplete`) : '0 events lost';
  const lines = [st.bold(`── ${s.packets} packet${s.packets === 1 ? '' : 's'}${fates.length ? `: ${fates.join(', ')}` : ''} · ${lost} · ${(s.durationNs / 1e9).toFixed(1)} s`)];
  if (s.cutByTimeout) lines.push(`${s.cutByTimeout} journeys cut by timeout (no event for 1 s mid-path)`);
  for (const f of s.flows) {
    if (f.packets === 0 && f.states.length === 0) continue;
    lines.push(`${f.proto} ${f.a} ↔ ${f.b}`);
    const proto = f.proto === 'tcp' ? IPPROTO.TCP : f.proto === 'udp' ? IPPROTO.UDP : IPPROTO.ICMP;
    for (const g of f.groups) lines.push(`  ${groupLine(g, proto)}`);
    const tcp: string[] = [];
    if (f.states.length) tcp.push(`states ${f.states.join(', ')}`);
    if (f.synackRetransmits) tcp.push(`SYN-ACK retransmitted ${f.synackRetransmits}×`);
    if (f.retransmits) tcp.push(`${f.retransmits} retransmissions`);
    if (f.resetsSent) tcp.push(`${f.resetsSent} RST sent`);
    if (f.resetsReceived) tcp.push(`${f.resetsReceived} RST received`);
    if (tcp.length) lines.push(`  TCP: ${tcp.join(' · ')}`);
  }
  const why = explain(s);
  if (why.length) {
    lines.push(st.bold('What tcpdump shows, and why:'));
    for (const w of why) lines.push(`  - ${w}`);
  }
  for (const u of s.unavailable) lines.push(st.dim(`not traced: ${u.point}: ${u.reason}`));
  return lines.join('\n');
}

export function readyLine(r: ReadyInfo, filterText: string): string {
  const nf = r.netfilter.filter((p) => p.entry !== null).length + r.netfilter.filter((p) => p.exit !== null).length;
  const ns = r.netns.label === 'own' ? 'this network namespace' : `netns ${r.netns.label}`;
  return `pathtrace: tracing ${filterText} in ${ns}: ${nf} netfilter probes, ${r.points.length} tracepoints` +
    `${r.unavailable.length ? `, ${r.unavailable.length} points unavailable` : ''}. Ctrl-C to stop.`;
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

  summary(s: Summary): void {
    this.out(formatSummary(s, this.style));
  }
}
