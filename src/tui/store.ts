// What the UI shows, kept outside React: journeys come in at any rate, the
// UI reads a snapshot when it renders (throttled). Memory stays bounded:
// old connections and old packets are evicted, their counts kept.
import type { FlowTable } from '../correlate/flows.js';
import type { Journey } from '../correlate/journey.js';
import type { ReadyInfo } from '../output/sink.js';
import type { FlowSummary } from '../report/summary.js';
import { Tally } from '../report/tally.js';
import { deathStage, stagesReached, type StageCounts } from './stages.js';

export const MAX_CONNECTIONS = 200;
export const MAX_PACKETS_PER_CONNECTION = 100;

export interface ConnectionView {
  key: string;
  packets: Journey[]; // the most recent, at most MAX_PACKETS_PER_CONNECTION
  total: number;
  dropped: number;
  first: number; // ns since the trace started
  last: number;
}

export interface LiveStats {
  events: number;
  lostEvents: number;
  counters: Record<string, number> | null;
}

export class TuiStore {
  version = 0;
  ready: ReadyInfo | null = null;
  readonly stages: StageCounts = new Map();
  readonly connections = new Map<string, ConnectionView>();
  evicted = 0;
  packets = 0;
  stats: LiveStats = { events: 0, lostEvents: 0, counters: null };
  eventsPerSecond = 0;
  notes: string[] = [];
  private tally = new Tally();
  private lastStats = { at: 0, events: 0 };

  constructor(
    readonly filterText: string,
    private readonly flows: () => Pick<FlowTable, 'byKey'> | null = () => null,
  ) {}

  private bump(): void {
    this.version++;
  }

  setReady(info: ReadyInfo): void {
    this.ready = info;
    this.bump();
  }

  add(j: Journey): void {
    this.packets++;
    this.tally.add(j);
    for (const s of stagesReached(j)) {
      const c = this.stages.get(s) ?? { reached: 0, died: 0 };
      c.reached++;
      this.stages.set(s, c);
    }
    const died = deathStage(j);
    if (died) this.stages.get(died)!.died++;
    let conn = this.connections.get(j.flow);
    if (conn) {
      this.connections.delete(j.flow); // re-insert: the map's order is least recently active first
    } else {
      conn = { key: j.flow, packets: [], total: 0, dropped: 0, first: j.start, last: j.start };
      if (this.connections.size >= MAX_CONNECTIONS) {
        const oldest = this.connections.keys().next().value!;
        this.connections.delete(oldest);
        this.evicted++;
      }
    }
    this.connections.set(j.flow, conn);
    conn.total++;
    if (j.fate === 'dropped') conn.dropped++;
    conn.last = j.start;
    conn.packets.push(j);
    if (conn.packets.length > MAX_PACKETS_PER_CONNECTION) conn.packets.shift();
    this.bump();
  }

  note(message: string): void {
    this.notes = [...this.notes.slice(-4), message];
    this.bump();
  }

  setStats(s: LiveStats, nowMs = Date.now()): void {
    if (this.lastStats.at)
      this.eventsPerSecond = Math.round(
        ((s.events - this.lastStats.events) * 1000) / Math.max(1, nowMs - this.lastStats.at),
      );
    this.lastStats = { at: nowMs, events: s.events };
    this.stats = s;
    this.bump();
  }

  clear(): void {
    this.stages.clear();
    this.connections.clear();
    this.tally = new Tally();
    this.packets = 0;
    this.evicted = 0;
    this.bump();
  }

  /** Connections, most recently active first. */
  recentConnections(): ConnectionView[] {
    return [...this.connections.values()].reverse();
  }

  /** The connection's story (verdict, groups, states) from what the UI has seen. */
  summaryOf(key: string): FlowSummary | null {
    const f = this.flows()?.byKey(key);
    return f ? this.tally.flowSummary(f) : null;
  }
}
