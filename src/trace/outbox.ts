// Finished journeys on their way to the sink, in the order they ended: a netfilter drop waits for its rule (a
// reading of the ruleset, with counters and rule texts), a too-big drop for its route. Also keeps the ruleset's
// counters and layout fresh while the trace runs (a reading when it changed, or every second without a watch).
import type { Journey } from '../correlate/journey.js';
import { needsAttribution, type RuleAttributor } from '../rules/attribution.js';
import type { Ruleset } from '../rules/model.js';
import type { RulesetReader } from '../rules/read.js';
import type { RulesetWatch } from '../rules/watch.js';
import type { DropDetails } from './drop-details.js';

/** Without change notifications, the ruleset is read this often; with them, they are checked this often. */
const RULESET_POLL_MS = 1000;
const RULESET_WATCH_MS = 100;

export interface OutboxDeps {
  /** Names the rules of netfilter drops; null where nothing is named (no netfilter points). */
  attributor: RuleAttributor | null;
  details: DropDetails;
  /** A reader of the traced namespace's ruleset (it tells what fails). */
  reader: () => RulesetReader;
  /** How long nftables' trace lines (--rule-trace, another process) are given before a reading: 0 without. */
  settleMs: number;
  /** Tells the user something (the sink's note). */
  note: (message: string) => void;
  /** Tells the user a failure, once. */
  tellOnce: (message: string) => void;
  /** Reports a journey whose facts are complete. */
  report: (j: Journey) => void;
}

/** A journey on its way to the sink: it waits while its rule (pending) or its route (routing) is being read. */
interface Outgoing {
  j: Journey;
  pending: boolean;
  routing: boolean;
}

export class Outbox {
  private readonly queue: Outgoing[] = [];
  private reading: Promise<void> | null = null;
  private dropsSinceReading = false;
  private rulesetTimer: NodeJS.Timeout | null = null;

  constructor(private readonly d: OutboxDeps) {}

  /** A journey the correlator finished. */
  add(j: Journey): void {
    const pending = this.d.attributor !== null && needsAttribution(j);
    const o: Outgoing = { j, pending, routing: false };
    this.queue.push(o);
    if (pending) this.dropsSinceReading = true;
    if (this.d.details.needsRoute(j)) this.lookUpRoute(o);
  }

  /** After a poll: a reading for the drops that wait (unless one is under way); reports what is ready. */
  settle(): void {
    if (this.queue.some((o) => o.pending) && !this.reading) this.attributeSoon();
    this.flush();
  }

  /** While the trace runs: the ruleset read again when it changed (watch) or every second, for fresh counters
   *  (the baseline of the next drops) and the probes' places; first: the reading that ran beside the load. */
  keepFresh(first: Ruleset | null, watch: RulesetWatch | null): void {
    const attributor = this.d.attributor;
    if (!attributor) return;
    if (!first)
      this.reading = attributor
        .refresh(false)
        .then(() => {})
        .catch((e) => this.failed(e))
        .finally(() => {
          this.reading = null;
        });
    this.rulesetTimer = setInterval(
      () => {
        if (this.reading || (watch && !watch.due())) return;
        this.reading = attributor
          .refresh(this.dropsSinceReading)
          .then((change) => {
            if (change) this.d.note(change);
          })
          .catch((e) => this.failed(e))
          .finally(() => {
            this.reading = null;
          });
      },
      watch ? RULESET_WATCH_MS : RULESET_POLL_MS,
    );
  }

  /** At the end: the routes and rules still being read, synchronously; then everything is reported. */
  finish(): void {
    this.stop();
    for (const o of this.queue)
      if (o.routing) {
        this.d.details.takeRoute(o.j, 'now');
        o.routing = false;
      }
    const waiting = this.queue.filter((o) => o.pending);
    if (waiting.length && this.d.attributor) {
      try {
        const tables = this.d.attributor.tablesFor(waiting.map((o) => o.j)) ?? undefined;
        this.d.attributor.attribute(
          this.d.reader().readSync(true, tables),
          waiting.map((o) => o.j),
          tables !== undefined,
        );
      } catch (e) {
        this.rulesUnread(waiting, e);
      }
    }
    for (const o of waiting) o.pending = false;
    this.flush();
  }

  stop(): void {
    if (this.rulesetTimer) clearInterval(this.rulesetTimer);
    this.rulesetTimer = null;
  }

  /** Reads the ruleset (with rule texts) and attributes the drops waiting. */
  private attributeSoon(): void {
    const attributor = this.d.attributor!;
    const waiting = this.queue.filter((o) => o.pending);
    this.dropsSinceReading = false;
    const settle = this.d.settleMs ? new Promise((r) => setTimeout(r, this.d.settleMs)) : Promise.resolve();
    // Only the tables the drops' chains can be in, with their counters and texts.
    const tables = attributor.tablesFor(waiting.map((o) => o.j)) ?? undefined;
    this.reading = settle
      .then(() => this.d.reader().read(true, tables))
      .then((rs) =>
        attributor.attribute(
          rs,
          waiting.map((o) => o.j),
          tables !== undefined,
        ),
      )
      .catch((e) => this.rulesUnread(waiting, e))
      .finally(() => {
        for (const o of waiting) o.pending = false;
        this.reading = null;
        this.flush();
      });
  }

  /** A too-big drop's route, read while the journey waits (at the end, finish() reads what is left). */
  private lookUpRoute(o: Outgoing): void {
    o.routing = true;
    void this.d.details.route(o.j).then((r) => {
      if (!o.routing) return;
      this.d.details.takeRoute(o.j, r);
      o.routing = false;
      this.flush();
    });
  }

  /** A reading that failed as a whole (parsing, the namespace gone): told once. */
  private failed(e: unknown): void {
    this.d.tellOnce(`ruleset not read: ${(e as Error).message}`);
  }

  /** Drops still waiting for their rule when the reading failed: they say so. */
  private rulesUnread(waiting: Outgoing[], e: unknown): void {
    this.failed(e);
    for (const { j } of waiting) if (j.drop && !j.drop.attribution) j.drop.rulesUnread = (e as Error).message;
  }

  /** Reports journeys in order, up to the first that still waits for its rule or its route. */
  private flush(): void {
    const waiting = this.queue.findIndex((o) => o.pending || o.routing);
    for (const { j } of this.queue.splice(0, waiting < 0 ? this.queue.length : waiting)) this.d.report(j);
  }
}
