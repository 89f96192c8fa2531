// `pathtrace merge [NAME=]A [NAME=]B [--json]`: reads two hosts' traces, merges them (report/merge.ts) and
// tells each connection's trips between the two: text, or NDJSON records (output/merge.ts).
import path from 'node:path';
import { readTraceFile, type LoadedTrace, type Progress } from '../capture/trace-file.js';
import { formatMerged, mergedRecords } from '../output/merge.js';
import { merge, type HostPacket, type HostTrace } from '../report/merge.js';

/** "client=c.ndjson" names the host; a bare file is named by its base name, without extension. */
export function hostArgument(arg: string): { name: string; file: string } {
  const [, name, file] = /^([A-Za-z][\w.-]{0,31})=(.+)$/.exec(arg) ?? [];
  if (name !== undefined && file !== undefined) return { name, file };
  return { name: path.basename(arg).replace(/\.[^.]*$/, '') || arg, file: arg };
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** A host's trace as merge takes it: the time it traced and its addresses from its ready and summary
 *  records where it has them (--json output), else from its packets. Pure: nowUs is the time now, for a
 *  trace that has not ended. */
export function hostTrace(name: string, t: LoadedTrace, nowUs?: number): HostTrace {
  const packets = t.packets as HostPacket[];
  const started = typeof t.ready?.started_at === 'string' ? Date.parse(t.ready.started_at) : NaN;
  const duration = t.summary?.duration_s;
  // A trace still running (nowUs: --netns twice, redrawn as it goes) has traced until now.
  const end = isNum(duration) ? started * 1000 + duration * 1e6 : nowUs;
  const traced = Number.isFinite(started) && end !== undefined ? { from: started * 1000, to: end } : t.traced;
  const listed = Array.isArray(t.ready?.addresses)
    ? (t.ready.addresses as unknown[]).filter((a): a is string => typeof a === 'string')
    : [];
  const seen = packets.flatMap((p) => (p.direction === 'out' ? [p.src] : p.direction === 'in' ? [p.dst] : []));
  const lost = t.summary?.lost_events;
  return {
    name,
    packets,
    filter: t.filter,
    traced,
    addresses: new Set([...listed, ...seen]),
    lostEvents: isNum(lost) ? lost : null,
  };
}

export function runMerge(args: [string, string], json: boolean, progress?: Progress): string {
  const [x, y] = [hostArgument(args[0]), hostArgument(args[1])];
  const names: [string, string] = x.name === y.name ? [`${x.name}#1`, `${y.name}#2`] : [x.name, y.name];
  const traces: [LoadedTrace, LoadedTrace] = [readTraceFile(x.file, progress), readTraceFile(y.file, progress)];
  const m = merge(hostTrace(names[0], traces[0]), hostTrace(names[1], traces[1]));
  return json
    ? mergedRecords(m)
        .map((r) => JSON.stringify(r))
        .join('\n')
    : formatMerged(m, [x.file, y.file], traces);
}
