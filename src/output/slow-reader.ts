// Output to a reader that falls behind (`pathtrace --json | slow-consumer`, a stalled pipe) stays bounded:
// past a backlog of BACKLOG_BYTES waiting in stdout, packet records are skipped and counted, as tcpdump
// counts what its buffer dropped; the ready line, notes and the summary always go. And at exit, a reader
// that takes nothing more does not keep pathtrace alive.
import type { Journey } from '../correlate/journey.js';
import type { ReadyInfo, Sink } from './sink.js';
import type { Summary } from '../report/summary.js';

export const BACKLOG_BYTES = 16 << 20;

/** What a sink writes to: stdout, or a stand-in in tests. */
export interface Backlogged {
  /** Bytes written and not yet taken by the reader. */
  readonly writableLength: number;
}

export class SlowReaderSink implements Sink {
  /** Packet records skipped since output last caught up, and in all. */
  private skipping = 0;
  skipped = 0;

  constructor(
    private readonly inner: Sink,
    private readonly out: Backlogged = process.stdout,
    private readonly limit = BACKLOG_BYTES,
  ) {}

  ready(info: ReadyInfo): void {
    this.inner.ready(info);
  }
  note(message: string): void {
    this.inner.note(message);
  }
  close(): void {
    this.inner.close?.();
  }
  stats(s: Parameters<NonNullable<Sink['stats']>>[0]): void {
    this.inner.stats?.(s);
  }

  packet(j: Journey): void {
    if (this.out.writableLength > this.limit) {
      if (this.skipping++ === 0)
        this.inner.note(
          `stdout's reader fell behind (${this.limit >> 20} MiB waiting): packet records are skipped until it catches up`,
        );
      this.skipped++;
      return;
    }
    if (this.skipping) {
      this.inner.note(`stdout's reader caught up: ${this.skipping} packet records were skipped`);
      this.skipping = 0;
    }
    this.inner.packet(j);
  }

  summary(s: Summary): void {
    if (this.skipped)
      this.inner.note(
        `${this.skipped} packet records in all were skipped because stdout's reader fell behind (the summary counts them)`,
      );
    this.inner.summary({ ...s, outputSkipped: this.skipped });
  }
}

/** Waits while stdout's reader takes the backlog; false when it took nothing for idleMs (a stalled reader). */
export async function drainStdout(idleMs: number, out: Backlogged = process.stdout): Promise<boolean> {
  let last = out.writableLength;
  let idle = 0;
  while (out.writableLength > 0) {
    await new Promise((r) => setTimeout(r, 100));
    idle = out.writableLength < last ? 0 : idle + 100;
    last = out.writableLength;
    if (idle >= idleMs) return false;
  }
  return true;
}
