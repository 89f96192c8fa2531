// `pathtrace report [NAME=]TRACE [[NAME=]TRACE] -o FILE.html`: the HTML page of one or two traces
// (report/html.ts); of two hosts' traces, merged as `pathtrace merge` merges them.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { writeFailure } from '../capture/file-errors.js';
import { readTraceFile, type LoadedTrace, type Progress } from '../capture/trace-file.js';
import type { PacketRecord } from '../output/records.js';
import { reportHtml, type ReportTrace } from '../report/html.js';
import { merge } from '../report/merge.js';
import { hostArgument, hostTrace } from './merge.js';
import { UserError } from './trace.js';

/** A loaded trace as the page reads it: --write files' records lack steps and drops' details; the page draws
 *  what they have. */
const asReport = (name: string, t: LoadedTrace): ReportTrace => ({
  name,
  packets: t.packets as PacketRecord[],
  ready: t.ready,
  summary: t.summary,
});

/** Writes the page; says what it wrote. */
export function runReport(args: string[], output: string, progress?: Progress): string {
  const hosts = args.map(hostArgument);
  if (hosts.length === 2 && hosts[0]!.name === hosts[1]!.name) hosts.forEach((h, i) => (h.name = `${h.name}#${i + 1}`));
  const loaded = hosts.map((h) => readTraceFile(h.file, progress));
  const traces = hosts.map((h, i) => asReport(h.name, loaded[i]!));
  const merged =
    hosts.length === 2 ? merge(hostTrace(hosts[0]!.name, loaded[0]!), hostTrace(hosts[1]!.name, loaded[1]!)) : null;
  const title = `pathtrace report: ${hosts.map((h) => h.name).join(' and ')}`;
  try {
    writeFileSync(output, reportHtml(traces, merged, title));
  } catch (e) {
    throw new UserError(`cannot write ${output}: ${writeFailure(e)}`);
  }
  const dropped = traces.reduce((n, t) => n + t.packets.filter((p) => p.drop).length, 0);
  const packets = traces.reduce((n, t) => n + t.packets.length, 0);
  return `wrote ${path.resolve(output)}: ${packets} packets, ${dropped} dropped`;
}
