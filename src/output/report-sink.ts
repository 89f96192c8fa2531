// --report FILE.html: the trace's packets kept as records while it runs (the first MAX_KEPT), and at its end the
// HTML page of them written (report/html.ts), beside whatever else the trace outputs.
import { writeFileSync } from 'node:fs';
import { writeFailure } from '../capture/file-errors.js';
import type { DeviceNames, Journey } from '../correlate/journey.js';
import { reportHtml } from '../report/html.js';
import type { Summary } from '../report/summary.js';
import { packetRecord, readyRecord, summaryRecord } from './json.js';
import type { FilterRecord, PacketRecord, ReadyRecord } from './records.js';
import type { ReadyInfo, Sink } from './sink.js';

const MAX_KEPT = 50_000;

export class ReportSink implements Sink {
  private ready_: ReadyRecord | null = null;
  private startedAt = 0;
  private readonly packets: PacketRecord[] = [];
  private beyond = 0;

  constructor(
    private readonly inner: Sink,
    private readonly file: string,
    private readonly devices: () => DeviceNames,
    private readonly filter: () => FilterRecord,
    /** Told where the page went, or why it could not be written. */
    private readonly say: (line: string) => void,
  ) {}

  ready(info: ReadyInfo): void {
    this.ready_ = readyRecord(info, this.filter());
    this.startedAt = info.startedAt;
    this.inner.ready(info);
  }

  packet(j: Journey): void {
    if (this.packets.length < MAX_KEPT) this.packets.push(packetRecord(j, this.devices(), this.startedAt));
    else this.beyond++;
    this.inner.packet(j);
  }

  note(message: string): void {
    this.inner.note(message);
  }

  stats(s: Parameters<NonNullable<Sink['stats']>>[0]): void {
    this.inner.stats?.(s);
  }

  close(): void {
    this.inner.close?.();
  }

  summary(s: Summary): void {
    this.inner.summary(s);
    const name = this.ready_?.netns.name ?? 'trace';
    const page = reportHtml(
      [{ name, packets: this.packets, ready: this.ready_, summary: summaryRecord(s) }],
      null,
      `pathtrace report: ${name}`,
    );
    try {
      writeFileSync(this.file, page);
      const more = this.beyond ? ` (the first ${MAX_KEPT} packets; ${this.beyond} more not drawn)` : '';
      this.say(`report written to ${this.file}${more}`);
    } catch (e) {
      this.say(`report not written: ${this.file}: ${writeFailure(e)}`);
    }
  }
}
