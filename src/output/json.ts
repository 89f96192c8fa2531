// NDJSON records: the contract for scripts (see docs/json.md).
// Names and meanings of existing fields stay; new fields may be added.
import {
  flagLetters,
  type Drop,
  type Journey,
  type DeviceNames,
  type NatRewrite,
  type TooBig,
} from '../correlate/journey.js';
import type { RuleAttribution } from '../rules/attribute.js';
import { explainDrop } from '../report/reasons.js';
import { IPPROTO } from '../trace/record.js';
import type { Container } from '../trace/containers.js';
import { protoName, type FlowSummary, type Summary } from '../report/summary.js';
import type { ReadyInfo, Sink } from './sink.js';
import type { NfqueueFacts } from '../rules/nfqueue.js';
import type {
  ConnectionRecord,
  DropRecord,
  FilterRecord,
  NatRecord,
  NfqueueRecord,
  NoteRecord,
  PacketRecord,
  ReadyRecord,
  SummaryDropRecord,
  SummaryRecord,
  TooBigRecord,
} from './records.js';

function containerRecord({ name, id, runtime, pod }: Container): ReadyRecord['container'] {
  return { name, id, runtime, ...(pod ? { pod } : {}) };
}

export function readyRecord(r: ReadyInfo, filter: FilterRecord): ReadyRecord {
  return {
    type: 'ready',
    netns: { name: r.netns.label, inode: r.netns.inode },
    ...(r.netns.container ? { container: containerRecord(r.netns.container) } : {}),
    ...(r.netns.pod ? { pod: r.netns.pod } : {}),
    filter,
    points: r.points,
    netfilter_mechanism: r.netfilterMechanism,
    netfilter: r.netfilter.map((p) => ({
      family: p.family,
      hook: p.hook,
      entry_priority: p.entry,
      exit_priority: p.exit,
      between_priorities: p.between,
      bracketed: p.bracketed,
    })),
    ruleset_changes: r.rulesetChanges ?? undefined,
    unavailable: r.unavailable,
    started_at: new Date(r.startedAt).toISOString(),
    addresses: r.addresses,
  };
}

export function packetRecord(j: Journey, devices: DeviceNames, startedAt: number): PacketRecord {
  return {
    type: 'packet',
    id: j.id,
    time: new Date(startedAt + j.start / 1e6).toISOString(),
    time_us: Math.round(startedAt * 1000 + j.start / 1000),
    family: j.family === 6 ? 'ipv6' : 'ipv4',
    proto: protoName(j.proto, j.family),
    src: j.src,
    dst: j.dst,
    // ICMP has no ports: an error's are those of the packet it quotes (icmp.about).
    sport: j.icmp ? null : j.sport,
    dport: j.icmp ? null : j.dport,
    tcp_flags: j.proto === IPPROTO.TCP ? flagLetters(j.flags) : null,
    seq: j.proto === IPPROTO.TCP ? j.seq : undefined,
    ack: j.proto === IPPROTO.TCP ? j.ack : undefined,
    len: j.len,
    ip_id: j.family === 4 ? j.ipId : undefined,
    netns: j.netns,
    direction: j.direction,
    steps: j.steps.map((s) => ({
      point: s.point,
      hook: s.hook,
      at: s.at,
      passed: s.passed,
      priority: s.priority,
      table: s.table,
      bridge: s.bridge,
      dev: s.ifindex ? devices.name(s.ifindex) : undefined,
      in_dev: s.in ? devices.name(s.in) : undefined,
      out_dev: s.out ? devices.name(s.out) : undefined,
      location: s.location,
      reason: s.reason,
      qlen: s.qlen,
      bytes: s.bytes,
      pid: s.pid,
      comm: s.comm,
      program: s.program,
      t_ns: s.t,
    })),
    fate: j.fate,
    drop: j.drop && dropRecord(j.drop),
    tcpdump: j.tcpdump,
    tcpdump_devices: j.tcpdumpDevices.map((i) => devices.name(i)),
    retransmit: j.retransmit,
    tcp: j.tcp,
    ending: j.ending,
    translated: j.translated,
    nat: j.nat?.map(natRecord),
    route: j.route && {
      decision: j.route.decision,
      in_dev: j.route.inDev ? devices.name(j.route.inDev) : undefined,
      out_dev: j.route.outDev ? devices.name(j.route.outDev) : undefined,
    },
    delivery: j.delivery && {
      socket: j.delivery.socket,
      read: j.delivery.read && {
        pid: j.delivery.read.pid,
        comm: j.delivery.read.comm,
        bytes: j.delivery.read.bytes,
        queued_ns: j.delivery.read.queuedNs,
      },
    },
    origin: j.origin,
    icmp: j.icmp && {
      type: j.icmp.type,
      code: j.icmp.code,
      about: j.icmp.about && {
        proto: protoName(j.icmp.about.proto, j.family),
        src: j.dst,
        dst: j.icmp.about.dst,
        sport: j.sport,
        dport: j.dport,
      },
      mtu: j.icmp.mtu,
    },
    neighbour_wait_ns: j.neighbourWaitNs,
    qdisc_wait_ns: j.qdiscWaitNs,
    incomplete: j.incomplete,
    merged_into: j.mergedInto,
    segment_of: j.segmentOf,
    segments: j.segments,
    flow: j.flow,
  };
}

/** The drop, with the table, chain and rule flattened in when they are known. */
export function dropRecord(d: Drop): DropRecord {
  return { ...dropCause(d), advice: d.advice ?? [], tcp_state: d.tcpState };
}

/** What a drop shares with others of its cause: all but the packet's own advice and TCP state. */
function dropCause(d: Drop): Omit<DropRecord, 'advice' | 'tcp_state'> {
  const a = d.attribution;
  return {
    layer: d.layer,
    hook: d.hook,
    reason: d.reason,
    location: d.location,
    explanation: explainDrop(d),
    inferred: d.inferred,
    answered: d.answered,
    device: d.device,
    rules_unread: d.rulesUnread,
    nfqueue: d.nfqueue && nfqueueRecord(d.nfqueue),
    too_big: d.tooBig && tooBigRecord(d.tooBig),
    listening: d.listening,
    ...(a && ruleFields(a)),
  };
}

/** A cause of drops in the summary: the first such drop's fields, flat as in a packet's drop, its count, and the
 *  words the tally grouped it by (told with the first one's TCP state, which the group does not keep).
 *  `attribution` is the rule nested as summaries wrote it before (deprecated: the same fields are flat). */
function summaryDrop(d: Summary['drops'][number]): SummaryDropRecord {
  return { ...dropCause(d), explanation: d.explanation, count: d.count, attribution: d.attribution };
}

/** A rule attribution's fields, flattened into the record that names it (a drop, a NAT rewrite). */
function ruleFields(a: RuleAttribution): Partial<RuleAttribution> {
  return {
    table: a.table,
    chain: a.chain,
    family: a.family,
    source: a.source,
    rule: a.rule && { text: a.rule.text, handle: a.rule.handle, position: a.rule.position, found: a.rule.found },
    candidates: a.candidates,
    guess: a.guess,
    hotdrop: a.hotdrop,
    owner: a.owner,
    hint: a.hint,
    inspect: a.inspect,
    remove: a.remove,
    exact: a.exact,
  };
}

/** A NAT rewrite: where, the tuples, who made it (the rule flattened in, as a drop's). */
function natRecord(r: NatRewrite): NatRecord {
  return {
    hook: r.hook,
    from: r.from,
    to: r.to,
    packet: r.packet,
    reply: r.reply,
    by: r.by ?? 'unknown',
    why: r.why ?? (r.by === undefined ? 'the ruleset could not be read' : undefined),
    ...(r.rule && ruleFields(r.rule)),
  };
}

export function nfqueueRecord(f: NfqueueFacts): NfqueueRecord {
  return {
    cause: f.cause,
    queue: f.target.first,
    queue_last: f.target.last,
    bypass: f.target.bypass,
    fanout: f.target.fanout,
    listeners:
      f.listeners &&
      f.listeners.map((l) => ({
        queue: l.queue,
        portid: l.portid,
        pid: l.pid,
        comm: l.comm,
        queue_total: l.total,
        copy_mode: l.copyMode,
        copy_range: l.copyRange,
        queue_dropped: l.dropped,
        user_dropped: l.userDropped,
        id_sequence: l.idSequence,
      })),
    grew: f.grew && { queue: f.grew.queue, queue_dropped: f.grew.dropped, user_dropped: f.grew.userDropped },
  };
}

function tooBigRecord(t: TooBig): TooBigRecord {
  return {
    size: t.size,
    mtu: t.mtu,
    mtu_source: t.mtuFrom,
    dev: t.dev ?? null,
    route: t.route ?? null,
    route_differs: t.routeDiffers,
    told: t.told,
    resent_after_told: t.resentAfterTold,
  };
}

export function connectionRecord(f: FlowSummary): ConnectionRecord {
  return {
    type: 'connection',
    flow: f.flow,
    proto: f.proto,
    a: f.a,
    b: f.b,
    packets: f.ids,
    tcp_states: f.states,
    sockets: f.socketStates,
    process: f.owner,
    retransmissions: f.groups.reduce((n, g) => n + g.retransmits, 0),
    verdict: f.verdict,
  };
}

export function summaryRecord(s: Summary): SummaryRecord {
  return {
    type: 'summary',
    packets: s.packets,
    dropped: s.byFate.dropped,
    delivered: s.byFate.delivered,
    sent: s.byFate.sent,
    forwarded: s.byFate.forwarded,
    unfinished: s.byFate.unfinished,
    lost_events: s.lostEvents,
    cut_by_timeout: s.cutByTimeout,
    incomplete: s.incomplete,
    evicted_connections: s.evictedFlows,
    events: s.events,
    duration_s: Math.round(s.durationNs / 1e6) / 1e3,
    stopped_by: s.stoppedBy,
    output_skipped: s.outputSkipped ?? 0,
    drops: s.drops.map(summaryDrop),
    flows: s.flows.map((f) => ({
      flow: f.flow,
      proto: f.proto,
      a: f.a,
      b: f.b,
      packets: f.packets,
      groups: f.groups.map((g) => ({
        direction: g.direction,
        kind: g.kind,
        fate: g.fate,
        hook: g.hook,
        reason: g.reason,
        location: g.location,
        origin: g.origin,
        count: g.count,
        tcpdump: g.tcpdump,
        tcp_saw: g.tcpSaw,
        replies: g.replies,
        retransmits: g.retransmits,
        bytes: g.bytes,
        read: g.read,
      })),
      verdict: f.verdict,
      process: f.owner,
      tcp_states: f.states,
      synack_retransmits: f.synackRetransmits,
      retransmits: f.retransmits,
      resets_sent: f.resetsSent,
      resets_received: f.resetsReceived,
    })),
    counters: s.counters,
    unavailable: s.unavailable,
  };
}

export class JsonSink implements Sink {
  private startedAt = Date.now();

  constructor(
    private readonly devices: () => DeviceNames,
    private readonly filter: FilterRecord,
    private readonly write: (line: string) => void = (l) => process.stdout.write(l + '\n'),
  ) {}

  ready(info: ReadyInfo): void {
    this.startedAt = info.startedAt;
    this.write(JSON.stringify(readyRecord(info, this.filter)));
  }

  packet(j: Journey): void {
    this.write(JSON.stringify(packetRecord(j, this.devices(), this.startedAt)));
  }

  note(message: string): void {
    this.write(JSON.stringify({ type: 'note', time: new Date().toISOString(), message } satisfies NoteRecord));
  }

  summary(s: Summary): void {
    for (const f of s.flows) this.write(JSON.stringify(connectionRecord(f)));
    this.write(JSON.stringify(summaryRecord(s)));
  }
}
