// --write: the traced packets as pcapng, each with its fate as a comment
// (and a second, machine-readable one that `pathtrace compare` reads).
import { closeSync } from 'node:fs';
import { fileFailure } from '../capture/file-errors.js';
import type { DeviceNames, Journey } from '../correlate/journey.js';
import { JSON_COMMENT, PcapngWriter } from '../capture/pcapng.js';
import type { ReadyInfo, Sink } from './sink.js';
import type { Summary } from '../report/summary.js';
import { packetRecord } from './json.js';

/** "pathtrace: dropped at LOCAL_IN: NETFILTER_DROP (nft_do_chain), filter/INPUT rule 2; tcpdump saw it (eth0)". */
export function fateComment(j: Journey, dev: DeviceNames): string {
  let fate: string;
  if (j.drop) {
    const a = j.drop.attribution;
    const rule = a
      ? `, ${a.table}/${a.chain}${a.rule ? ` rule ${a.rule.handle !== undefined && a.source === 'nft' ? `handle ${a.rule.handle}` : a.rule.position}` : ''}`
      : '';
    fate = `dropped ${j.drop.hook ? `at ${j.drop.hook}` : `in ${j.drop.layer}`}: ${j.drop.reason} (${j.drop.location})${rule}`;
  } else {
    fate = j.fate === 'unfinished' ? `unfinished (${j.ending})` : j.fate;
  }
  const seen = j.tcpdump
    ? `tcpdump saw it (${j.tcpdumpDevices.map((d) => dev.name(d)).join(', ')})`
    : 'tcpdump did not see it: it never reached a capture point';
  return `pathtrace: ${fate}; ${seen}`;
}

export class PcapSink implements Sink {
  private writer: PcapngWriter | null = null;
  private startedAt = 0;
  written = 0;
  withoutBytes = 0;
  /** Why the file could not be written to the end (the trace goes on without it). */
  private failed: string | null = null;

  constructor(
    private readonly inner: Sink,
    private readonly path: string,
    private readonly fd: number,
    private readonly snaplen: number,
    private readonly devices: () => DeviceNames,
  ) {}

  ready(info: ReadyInfo): void {
    this.startedAt = info.startedAt;
    this.inner.ready(info);
    this.writing(() => {
      this.writer = new PcapngWriter(this.fd, this.snaplen, `traced by pathtrace in netns ${info.netns.label}`);
    });
  }

  packet(j: Journey): void {
    this.inner.packet(j);
    if (!this.writer) return;
    if (!j.bytes) {
      this.withoutBytes++;
      return;
    }
    const dev = this.devices();
    const ifindex = j.tcpdumpDevices[0] ?? j.route?.outDev ?? j.route?.inDev;
    const ifname = ifindex ? dev.name(ifindex) : 'none';
    const time = BigInt(Math.round(this.startedAt * 1000)) * 1000n + BigInt(Math.round(j.start));
    const record = { ...packetRecord(j, dev, this.startedAt), steps: undefined };
    this.writing(() => {
      this.writer!.packet(ifname, time, j.bytes!.data, j.bytes!.wireLen, [
        fateComment(j, dev),
        JSON_COMMENT + JSON.stringify(record),
      ]);
      this.written++;
    });
  }

  /** A write to the file; the first that fails ends the file, said once, and the trace goes on. */
  private writing(write: () => void): void {
    try {
      write();
    } catch (e) {
      this.failed = fileFailure(e);
      try {
        if (this.writer) this.writer.close();
        else closeSync(this.fd); // the writer never took it
      } catch {
        /* the descriptor goes anyway */
      }
      this.writer = null;
      this.inner.note(`cannot write ${this.path} any more: ${this.failed}; the trace goes on without it`);
    }
  }

  note(message: string): void {
    this.inner.note(message);
  }

  close(): void {
    this.writer?.close();
    this.writer = null;
    this.inner.close?.();
  }

  stats(s: Parameters<NonNullable<Sink['stats']>>[0]): void {
    this.inner.stats?.(s);
  }

  summary(s: Summary): void {
    this.writer?.close();
    this.writer = null;
    const missing = this.withoutBytes ? ` (${this.withoutBytes} without captured bytes left out)` : '';
    const cut = this.failed ? `, then stopped: ${this.failed}` : '';
    this.inner.note(`wrote ${this.written} packets to ${this.path}${missing}${cut}`);
    this.inner.summary(s);
  }
}
