// `pathtrace compare CAPTURE TRACE`: reads the files and prints the comparison.
import { readFileSync } from 'node:fs';
import { compare, formatComparison, frameUs, type TraceFilter, type TracePacket } from './compare.js';
import { JSON_COMMENT } from './output/pcap-sink.js';
import { CaptureError, readCapture } from './pcap/read.js';

export class CompareError extends Error {}

function read(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CompareError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`);
  }
}

/** pathtrace's record of a trace: --json output (NDJSON) or a --write file (pcapng with our comments). */
export function loadTrace(path: string): { packets: TracePacket[]; filter: TraceFilter | null } {
  const b = read(path);
  if (b.length >= 4 && b.readUInt32LE(0) === 0x0a0d0d0a) {
    const packets: TracePacket[] = [];
    for (const f of readCapture(b, path)) {
      const c = f.comments.find((x) => x.startsWith(JSON_COMMENT));
      if (c) packets.push({ ...JSON.parse(c.slice(JSON_COMMENT.length)), time_us: frameUs(f) });
    }
    if (!packets.length) throw new CompareError(`${path} is a capture without pathtrace's comments: give pathtrace's --json output or --write file`);
    return { packets, filter: null };
  }
  const packets: TracePacket[] = [];
  let filter: TraceFilter | null = null;
  for (const [i, line] of b.toString('utf8').split('\n').entries()) {
    if (!line.trim()) continue;
    let r;
    try {
      r = JSON.parse(line);
    } catch {
      throw new CompareError(`${path} is neither pathtrace's --json output nor a --write file (line ${i + 1} is not JSON)`);
    }
    if (r.type === 'ready') filter = r.filter;
    if (r.type === 'packet') packets.push(r as TracePacket);
  }
  if (!packets.length) throw new CompareError(`${path} has no pathtrace packet records`);
  return { packets, filter };
}

export function runCompare(capture: string, trace: string): string {
  try {
    const frames = readCapture(read(capture), capture);
    const { packets, filter } = loadTrace(trace);
    return formatComparison(compare(frames, packets, filter), capture, trace, packets.length);
  } catch (e) {
    if (e instanceof CaptureError) throw new CompareError(e.message);
    throw e;
  }
}
