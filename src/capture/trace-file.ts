// Reading a trace back: a --json output (or a --write pcapng's comments) as the packets compare and merge take,
// streamed, within the capture's time when there is one. Inputs are files, pipes or process substitutions.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { frameUs, MAX_COMPARED, packetTuples, type TraceFilter, type TracePacket } from '../report/compare.js';
import { fileFailure } from './file-errors.js';
import { JSON_COMMENT } from './pcapng.js';
import { bufferSource, CaptureError, captureFrames, fileSource, type ByteSource } from './read.js';
import type { ReadyRecord, SummaryRecord } from '../output/records.js';

export class CompareError extends Error {}

/** Told where reading an input is: a file's position and size in bytes. */
export type Progress = (label: string, pos: number, size: number) => void;

/** Pipes and devices are read whole, up to this; files through a window. */
const STREAM_MAX = 1 << 30;
/** A longer line is not pathtrace's (a record is a few KiB). */
const LINE_MAX = 16 << 20;

/** An input by position: a regular file through a window, anything else (a pipe, <(...)) read first. */
export function openInput(path: string, progress?: Progress): { src: ByteSource; close(): void } {
  const why = (e: unknown) =>
    new CompareError(
      `cannot read ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : fileFailure(e)}`,
    );
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw why(e);
  }
  const close = () => closeSync(fd);
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new CompareError(`cannot read ${path}: it is a directory`);
    if (st.isFile())
      return { src: fileSource(fd, path, progress && ((pos, size) => progress(path, pos, size))), close };
    const chunks: Buffer[] = [];
    let total = 0;
    for (let n = -1; n !== 0; total += n) {
      if (total > STREAM_MAX)
        throw new CompareError(`${path} is a stream of more than ${STREAM_MAX >> 30} GiB: save it to a file first`);
      const chunk = Buffer.alloc(1 << 20);
      n = readSync(fd, chunk, 0, chunk.length, null);
      chunks.push(chunk.subarray(0, n));
    }
    close();
    return { src: bufferSource(Buffer.concat(chunks)), close: () => {} };
  } catch (e) {
    close();
    throw e instanceof CompareError || e instanceof CaptureError ? e : why(e);
  }
}

/** The lines of a source, numbered from 1, decoded as UTF-8 across chunk boundaries. */
function* lines(src: ByteSource, name: string): Generator<[number, string]> {
  const decoder = new StringDecoder('utf8');
  let rest = '',
    n = 0;
  for (let pos = 0; pos < src.size;) {
    const len = Math.min(1 << 20, src.size - pos);
    const parts = (rest + decoder.write(src.at(pos, len))).split('\n');
    pos += len;
    rest = parts.pop()!;
    for (const line of parts) yield [++n, line];
    if (rest.length > LINE_MAX)
      throw new CompareError(
        `${name} is not pathtrace's --json output (line ${n + 1} is longer than ${LINE_MAX >> 20} MiB)`,
      );
  }
  rest += decoder.end();
  if (rest) yield [++n, rest];
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
  ['id', isNum],
  ['time_us', isNum],
  ['proto', isStr],
  ['src', isStr],
  ['dst', isStr],
  ['sport', orNull(isNum)],
  ['dport', orNull(isNum)],
  ['tcp_flags', orNull(isStr)],
  ['len', isNum],
  ['direction', isStr],
  ['fate', isStr],
  ['tcpdump', (v) => typeof v === 'boolean'],
  ['tcpdump_devices', (v) => Array.isArray(v) && v.every(isStr)],
  // A drop's reason is null on kernels whose kfree_skb reports none (< 5.17).
  ['drop', orNull((v) => isObj(v) && (v.reason === null || isStr(v.reason)) && isStr(v.layer) && isStr(v.location))],
  [
    'translated',
    (v) => v === undefined || (isObj(v) && isStr(v.src) && isStr(v.dst) && isNum(v.sport) && isNum(v.dport)),
  ],
];

function badPacketField(r: Record<string, unknown>): string | null {
  return PACKET_FIELDS.find(([k, ok]) => !ok(r[k]))?.[0] ?? null;
}

function validFilter(f: unknown): f is TraceFilter {
  return (
    isObj(f) &&
    (f.ports === null || (Array.isArray(f.ports) && f.ports.every(isNum))) &&
    Array.isArray(f.hosts) &&
    f.hosts.every(isStr) &&
    Array.isArray(f.protos) &&
    f.protos.every(isStr) &&
    (f.expression === undefined || f.expression === null || validExpression(f.expression))
  );
}

/** An expression's classic BPF as the ready record holds it: [code, jt, jf, k] per instruction. */
function validExpression(e: unknown): boolean {
  return (
    isObj(e) &&
    isStr(e.text) &&
    Array.isArray(e.bpf) &&
    e.bpf.every(
      (i) => Array.isArray(i) && i.length === 4 && i.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff),
    )
  );
}

/** What the comparison takes of a trace: its packets near the capture's time (all without a capture
 *  time), MAX_COMPARED of them at most (beyond: the others near it); of all, their number, their span and
 *  which of the capture's tuples they had. Read as a stream: a trace of any length costs what is kept. */
export interface LoadedTrace {
  packets: TracePacket[];
  filter: TraceFilter | null;
  total: number;
  beyond: number;
  traced: { from: number; to: number } | null;
  flows: Set<string>;
  /** --json output only: its ready and summary records (merge reads the addresses, times and counts). Only the
   *  ready record's filter is checked here: a reader checks the other fields it takes. */
  ready: ReadyRecord | null;
  summary: SummaryRecord | null;
}

export function loadTrace(
  src: ByteSource,
  path: string,
  near: { from: number; to: number } | null = null,
  tuples: Set<string> = new Set(),
  anyPackets: 'at least one' | 'may be none' = 'at least one',
): LoadedTrace {
  const t: LoadedTrace = {
    packets: [],
    filter: null,
    total: 0,
    beyond: 0,
    traced: null,
    flows: new Set(),
    ready: null,
    summary: null,
  };
  const take = (p: TracePacket) => {
    t.total++;
    const at = p.time_us;
    t.traced = t.traced ? { from: Math.min(t.traced.from, at), to: Math.max(t.traced.to, at) } : { from: at, to: at };
    for (const k of packetTuples(p)) if (tuples.has(k)) t.flows.add(k);
    if (near && (at < near.from || at > near.to)) return;
    if (t.packets.length < MAX_COMPARED) t.packets.push(p);
    else t.beyond++;
  };
  if (src.size >= 4 && src.at(0, 4).readUInt32LE(0) === 0x0a0d0d0a) {
    for (const f of captureFrames(src, path)) {
      const c = f.comments.find((x) => x.startsWith(JSON_COMMENT));
      if (!c) continue;
      const r = parseRecord(c.slice(JSON_COMMENT.length));
      if (!r) throw new CompareError(`${path}: frame ${f.index} carries a pathtrace comment that is not a JSON record`);
      const p = { ...r, time_us: frameUs(f) };
      const bad = badPacketField(p);
      if (bad)
        throw new CompareError(
          `${path}: frame ${f.index} carries a packet record whose '${bad}' is missing or malformed`,
        );
      take(p as unknown as TracePacket);
    }
    if (!t.total)
      throw new CompareError(
        `${path} is a capture without pathtrace's comments: give pathtrace's --json output or --write file`,
      );
    return t;
  }
  for (const [i, line] of lines(src, path)) {
    if (!line.trim()) continue;
    const r = parseRecord(line);
    if (!r)
      throw new CompareError(
        `${path} is neither pathtrace's --json output nor a --write file (line ${i} is not a JSON record)`,
      );
    const where = `${path} line ${i}`;
    if (r.type === 'ready') {
      if (!validFilter(r.filter)) throw new CompareError(`${where}: the ready record's filter is malformed`);
      t.filter = r.filter;
      t.ready = r as unknown as ReadyRecord;
    }
    if (r.type === 'summary') t.summary = r as unknown as SummaryRecord;
    if (r.type === 'packet') {
      const bad = badPacketField(r);
      if (bad) throw new CompareError(`${where}: a packet record whose '${bad}' is missing or malformed`);
      take(r as unknown as TracePacket);
    }
  }
  // A trace with its ready record and no packet is one of a host that saw none (merge takes it).
  if (!t.total && !(t.ready && anyPackets === 'may be none'))
    throw new CompareError(`${path} has no pathtrace packet records`);
  return t;
}

/** A whole trace file (MAX_COMPARED packets at most), for merge: a --json output may have no packet. */
export function readTraceFile(path: string, progress?: Progress): LoadedTrace {
  const input = openInput(path, progress);
  try {
    return loadTrace(input.src, path, null, new Set(), 'may be none');
  } catch (e) {
    throw e instanceof CaptureError ? new CompareError(e.message) : e;
  } finally {
    input.close();
  }
}
