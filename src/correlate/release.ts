// Release order: completed journeys go out in the order they started, held back behind one still under way.
import type { Journey } from './journey.js';

export class StartOrder {
  private readonly done: Journey[] = [];

  get size(): number {
    return this.done.length;
  }

  /** Into done, kept in the order journeys started. They mostly end in that order: the common case appends. */
  add(j: Journey): void {
    const d = this.done;
    const before = (x: Journey) => x.start < j.start || (x.start === j.start && x.id < j.id);
    const last = d.at(-1);
    if (last === undefined || before(last)) {
      d.push(j);
      return;
    }
    let lo = 0;
    let hi = d.length - 1; // d[hi] is not before j
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(d[mid]!)) lo = mid + 1;
      else hi = mid;
    }
    d.splice(lo, 0, j);
  }

  /** The journeys that started no later than the oldest one still under way (its start); all of them when more
   *  than maxHeld would stay. */
  take(oldestActive: number, maxHeld: number): Journey[] {
    const later = this.done.findIndex((j) => j.start > oldestActive);
    let n = later < 0 ? this.done.length : later;
    // A packet that waits long (for its read, in a queue) holds back all that started after it: at high
    // rates that is most of the memory. Past maxHeld they go out, and it follows later, out of start order.
    if (this.done.length - n > maxHeld) n = this.done.length;
    return this.done.splice(0, n);
  }

  /** Events were lost: journeys held may miss steps. */
  markIncomplete(): void {
    for (const j of this.done) j.incomplete = true;
  }
}
