// What a trace hands every output (text, NDJSON, pcapng, the UI): what it traces once it is ready, each
// journey as it ends, notes, and the summary. Types only: an output needs no part of the engine.
import type { Journey } from '../correlate/journey.js';
import type { Summary } from '../report/summary.js';
import type { NetfilterMechanism } from '../trace/native.js';
import type { NetnsTarget } from '../trace/netns.js';
import type { HookProbes } from '../trace/probes.js';

export interface ReadyInfo {
  netns: NetnsTarget;
  points: string[];
  /** How the netfilter hooks are traced. */
  netfilterMechanism: NetfilterMechanism;
  netfilter: HookProbes[];
  /** How ruleset changes are learnt: nftables' notifications, polling every second, or not at all (no
   *  netfilter tracing). */
  rulesetChanges: 'notified' | 'polled' | null;
  unavailable: { point: string; reason: string }[];
  startedAt: number; // wall-clock ms (fractional, µs precision) at the clock base
  /** The namespace's own addresses at the start, loopback aside (which packets are for it: merge). */
  addresses: string[];
}

export interface Sink {
  ready(info: ReadyInfo): void;
  packet(j: Journey): void;
  /** Something the user should know while tracing (the ruleset changed...). */
  note(message: string): void;
  /** Releases what the sink holds (the UI's screen), also when a trace fails; safe to repeat. */
  close?(): void;
  /** Live figures, every second, for sinks that show them (the UI). */
  stats?(s: { events: number; lostEvents: number; counters: Record<string, number> | null }): void;
  summary(s: Summary): void;
}
