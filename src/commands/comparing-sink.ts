// --with-tcpdump's sink: passes everything on to the output, and keeps each packet's record for the comparison
// with tcpdump's capture (capture/live-capture.ts) at the end.
import type { DeviceNames, Journey } from '../correlate/journey.js';
import { readCapture, type ByteSource } from '../capture/read.js';
import { packetRecord } from '../output/json.js';
import type { ReadyInfo, Sink } from '../output/sink.js';
import { compare, formatComparison, MAX_COMPARED, type TraceFilter, type TracePacket } from '../report/compare.js';
import type { Summary } from '../report/summary.js';

/** Passes everything on, and keeps each packet's record for the comparison at the end. */
export class ComparingSink implements Sink {
  readonly packets: TracePacket[] = [];
  left = 0;
  private startedAt = Date.now();

  constructor(
    private readonly inner: Sink,
    private readonly devices: () => DeviceNames,
    private readonly filter: TraceFilter,
  ) {}

  ready(info: ReadyInfo): void {
    this.startedAt = info.startedAt;
    this.inner.ready(info);
  }

  packet(j: Journey): void {
    this.inner.packet(j);
    if (this.packets.length >= MAX_COMPARED) {
      this.left++;
      return;
    }
    // Kept without its steps: up to MAX_COMPARED packets wait for the comparison.
    const packet: TracePacket & { steps?: unknown } = packetRecord(j, this.devices(), this.startedAt);
    delete packet.steps;
    this.packets.push(packet);
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
  summary(s: Summary): void {
    this.inner.summary(s);
  }

  /** The comparison of tcpdump's capture with the packets traced. */
  comparison(capture: ByteSource, iface: string): string {
    const name = `tcpdump -i ${iface}`;
    const frames = readCapture(capture, name);
    const limits = [
      this.left ? `the first ${MAX_COMPARED} packets traced (${this.left} more left out)` : '',
      frames.length >= MAX_COMPARED ? `the first ${MAX_COMPARED} frames captured` : '',
    ].filter(Boolean);
    const left = limits.length ? ` (${limits.join('; ')})` : '';
    return (
      `── compared with ${name}${left}\n` +
      formatComparison(compare(frames, this.packets, this.filter), name, 'this trace', this.packets.length)
    );
  }
}
