// A small pcapng writer: a section header, an interface per device, an
// enhanced packet block per packet with a comment. Raw IP link type (the
// bytes start at the IP header, as pathtrace reads them). Nanosecond stamps.
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileFailure } from './file-errors.js';

/** Opens (creates or truncates) a file to write, or says in one sentence why it cannot. */
export function openForWriting(path: string): number {
  try {
    return openSync(path, 'w');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // ENOENT with the directory there: a file system that creates no files (/proc, /sys).
    const noDir = code === 'ENOENT' && !existsSync(dirname(path));
    const why = noDir
      ? `no such directory ${dirname(path)}`
      : code === 'ENOENT'
        ? 'files cannot be created there'
        : fileFailure(e);
    throw new WriteError(`cannot write ${path}: ${why}`);
  }
}

export class WriteError extends Error {}

export const LINKTYPE_RAW = 101;

/** How a --write file's packet comment starts that holds the packet's --json record (compare and merge read it). */
export const JSON_COMMENT = 'pathtrace-json: ';
const BT_SHB = 0x0a0d0d0a,
  BT_IDB = 0x00000001,
  BT_EPB = 0x00000006;
const OPT_ENDOFOPT = 0,
  OPT_COMMENT = 1,
  SHB_USERAPPL = 4,
  IF_NAME = 2,
  IF_DESCRIPTION = 3,
  IF_TSRESOL = 9;

function pad4(n: number): number {
  return (n + 3) & ~3;
}

/** Options: code, length, value padded to 4; closed by opt_endofopt. */
function options(opts: [number, Uint8Array][]): Buffer {
  if (!opts.length) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  for (const [code, value] of opts) {
    const head = Buffer.alloc(4);
    head.writeUInt16LE(code, 0);
    head.writeUInt16LE(value.length, 2);
    parts.push(head, Buffer.from(value), Buffer.alloc(pad4(value.length) - value.length));
  }
  parts.push(Buffer.alloc(4)); // opt_endofopt
  void OPT_ENDOFOPT;
  return Buffer.concat(parts);
}

function block(type: number, body: Buffer): Buffer {
  const len = 12 + body.length;
  const out = Buffer.alloc(len);
  out.writeUInt32LE(type, 0);
  out.writeUInt32LE(len, 4);
  body.copy(out, 8);
  out.writeUInt32LE(len, len - 4);
  return out;
}

const utf8 = (s: string) => Buffer.from(s, 'utf8');

export function sectionHeader(app: string): Buffer {
  const body = Buffer.alloc(16);
  body.writeUInt32LE(0x1a2b3c4d, 0); // byte-order magic
  body.writeUInt16LE(1, 4); // major
  body.writeUInt16LE(0, 6); // minor
  body.writeBigInt64LE(-1n, 8); // section length: unknown
  return block(BT_SHB, Buffer.concat([body, options([[SHB_USERAPPL, utf8(app)]])]));
}

export function interfaceDescription(name: string, description: string, snaplen: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16LE(LINKTYPE_RAW, 0);
  body.writeUInt32LE(snaplen, 4);
  return block(
    BT_IDB,
    Buffer.concat([
      body,
      options([
        [IF_NAME, utf8(name)],
        [IF_DESCRIPTION, utf8(description)],
        [IF_TSRESOL, Uint8Array.of(9)],
      ]),
    ]),
  );
}

export function enhancedPacket(
  iface: number,
  timeNs: bigint,
  data: Uint8Array,
  wireLen: number,
  comments: string[],
): Buffer {
  const head = Buffer.alloc(20);
  head.writeUInt32LE(iface, 0);
  head.writeUInt32LE(Number(timeNs >> 32n), 4);
  head.writeUInt32LE(Number(timeNs & 0xffffffffn), 8);
  head.writeUInt32LE(data.length, 12);
  head.writeUInt32LE(Math.max(wireLen, data.length), 16);
  const padded = Buffer.alloc(pad4(data.length));
  Buffer.from(data.buffer, data.byteOffset, data.length).copy(padded);
  return block(BT_EPB, Buffer.concat([head, padded, options(comments.map((c) => [OPT_COMMENT, utf8(c)]))]));
}

/** Writes a pcapng file as packets come; interfaces are declared when first used. */
export class PcapngWriter {
  private fd: number | null;
  private readonly interfaces = new Map<string, number>();

  /** fd: a file opened for writing (see openForWriting), owned by the writer from now on. */
  constructor(
    fd: number,
    private readonly snaplen: number,
    private readonly description: string,
  ) {
    this.fd = fd;
    this.write(sectionHeader('pathtrace'));
  }

  private write(b: Buffer): void {
    if (this.fd !== null) writeSync(this.fd, b);
  }

  private iface(name: string): number {
    let id = this.interfaces.get(name);
    if (id === undefined) {
      id = this.interfaces.size;
      this.interfaces.set(name, id);
      this.write(interfaceDescription(name, this.description, this.snaplen));
    }
    return id;
  }

  packet(ifname: string, timeNs: bigint, data: Uint8Array, wireLen: number, comments: string[]): void {
    this.write(enhancedPacket(this.iface(ifname), timeNs, data, wireLen, comments));
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
