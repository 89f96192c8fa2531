// `pathtrace compare CAPTURE TRACE`: reads the files and prints the comparison.
import { readFileSync } from 'node:fs';
import { compare, formatComparison, frameUs, MAX_COMPARED, type TraceFilter, type TracePacket } from './compare.js';
import { fileFailure } from './file-errors.js';
import { JSON_COMMENT } from './output/pcap-sink.js';
import { CaptureError, readCapture } from './pcap/read.js';

export class CompareError extends Error {}

function read(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : fileFailure(e);
    throw new CompareError(`cannot read ${path}: ${why}`);
  }
}

/** A JSON object, or null for anything else (not JSON, null, a number, an array). */
function parseRecord(text: string): Record<string, unknown> | null {
  try {
    const r: unknown = JSON.parse(text);
    return isObj(r) ? r : null;
  } catch {
    return null;
  }
}

const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);
const isStr = (v: unknown) => typeof v === 'string';
const orNull = (ok: (v: unknown) => boolean) => (v: unknown) => v === null || ok(v);
const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The fields of a packet record the comparison reads, by type: the first one missing or of another type. */
const PACKET_FIELDS: [string, (v: unknown) => boolean][] = [
  ['id', isNum], ['time_us', isNum], ['proto', isStr], ['src', isStr], ['dst', isStr], ['sport', orNull(isNum)],
  ['dport', orNull(isNum)], ['tcp_flags', orNull(isStr)], ['len', isNum], ['direction', isStr], ['fate', isStr],
  ['tcpdump', (v) => typeof v === 'boolean'], ['tcpdump_devices', (v) => Array.isArray(v) && v.every(isStr)],
  ['drop', orNull((v) => isObj(v) && isStr(v.reason) && isStr(v.layer) && isStr(v.location))],
  ['translated', (v) => v === undefined || (isObj(v) && isStr(v.src) && isStr(v.dst) && isNum(v.sport) && isNum(v.dport))],
];

function badPacketField(r: Record<string, unknown>): string | null {
  return PACKET_FIELDS.find(([k, ok]) => !ok(r[k]))?.[0] ?? null;
}

function validFilter(f: unknown): f is TraceFilter {
  return isObj(f) && (f.ports === null || (Array.isArray(f.ports) && f.ports.every(isNum))) &&
    Array.isArray(f.hosts) && f.hosts.every(isStr) && Array.isArray(f.protos) && f.protos.every(isStr);
}

/** pathtrace's record of a trace: --json output (NDJSON) or a --write file (pcapng with our comments). */
export function loadTrace(path: string): { packets: TracePacket[]; filter: TraceFilter | null } {
  const b = read(path);
  if (b.length >= 4 && b.readUInt32LE(0) === 0x0a0d0d0a) {
    const packets: TracePacket[] = [];
    for (const f of readCapture(b, path)) {
      const c = f.comments.find((x) => x.startsWith(JSON_COMMENT));
      if (!c) continue;
      const r = parseRecord(c.slice(JSON_COMMENT.length));
      if (!r) throw new CompareError(`${path}: frame ${f.index} carries a pathtrace comment that is not a JSON record`);
      const p = { ...r, time_us: frameUs(f) };
      const bad = badPacketField(p);
      if (bad) throw new CompareError(`${path}: frame ${f.index} carries a packet record whose '${bad}' is missing or malformed`);
      packets.push(p as unknown as TracePacket);
    }
    if (!packets.length) throw new CompareError(`${path} is a capture without pathtrace's comments: give pathtrace's --json output or --write file`);
    return { packets, filter: null };
  }
  const packets: TracePacket[] = [];
  let filter: TraceFilter | null = null;
  for (const [i, line] of b.toString('utf8').split('\n').entries()) {
    if (!line.trim()) continue;
    const r = parseRecord(line);
    if (!r) throw new CompareError(`${path} is neither pathtrace's --json output nor a --write file (line ${i + 1} is not a JSON record)`);
    const where = `${path} line ${i + 1}`;
    if (r.type === 'ready') {
      if (!validFilter(r.filter)) throw new CompareError(`${where}: the ready record's filter is malformed`);
      filter = r.filter;
    }
    if (r.type === 'packet') {
      const bad = badPacketField(r);
      if (bad) throw new CompareError(`${where}: a packet record whose '${bad}' is missing or malformed`);
      packets.push(r as unknown as TracePacket);
    }
  }
  if (!packets.length) throw new CompareError(`${path} has no pathtrace packet records`);
  return { packets, filter };
}

export function runCompare(capture: string, trace: string): string {
  try {
    const limit = { max: MAX_COMPARED, beyond: 0 };
    const frames = readCapture(read(capture), capture, limit);
    const { packets, filter } = loadTrace(trace);
    const cut = limit.beyond ? `compared the first ${MAX_COMPARED} frames of ${capture} (${limit.beyond} more left out; ` +
      `tcpdump -r ${capture} -w part.pcap with a filter or editcap -r cuts it)\n` : '';
    return cut + formatComparison(compare(frames, packets, filter), capture, trace, packets.length);
  } catch (e) {
    if (e instanceof CaptureError) throw new CompareError(e.message);
    throw e;
  }
}
