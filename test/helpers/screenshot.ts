// Headless Chromium (Debian's chromium) renders a page to PNG; the PNG read back (zlib, PNG's row filters) to
// tell a drawn page from a blank one.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { inflateSync } from 'node:zlib';

export function chromiumMissing(): string | null {
  return spawnSync('chromium', ['--version']).error ? 'chromium (scripts/setup.sh installs it)' : null;
}

/** `file` (an HTML page) as Chromium draws it at `width`×`height`, to `png`. Network off: a page that fetched
 *  anything would show it missing. */
export function screenshot(file: string, png: string, width: number, height: number): void {
  const r = spawnSync(
    'chromium',
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--hide-scrollbars',
      '--proxy-server=127.0.0.1:9', // nothing listens there: no request leaves
      `--window-size=${width},${height}`,
      `--screenshot=${png}`,
      `file://${file}`,
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (r.status !== 0) throw new Error(`chromium: exit ${r.status}: ${r.stderr}`);
}

/** A PNG's size and how its pixels vary: distinct colours, and the share that is not the background (the
 *  top-left pixel's colour). 8-bit RGB or RGBA, not interlaced, as Chromium writes them. */
export function pngStats(file: string): { width: number; height: number; colours: number; drawn: number } {
  const b = readFileSync(file);
  let at = 8;
  let width = 0,
    height = 0,
    channels = 0;
  const idat: Buffer[] = [];
  while (at < b.length) {
    const len = b.readUInt32BE(at);
    const type = b.toString('latin1', at + 4, at + 8);
    const data = b.subarray(at + 8, at + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[12] !== 0) throw new Error('not an 8-bit non-interlaced PNG');
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : 0;
      if (!channels) throw new Error(`colour type ${data[9]}`);
    } else if (type === 'IDAT') idat.push(data);
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? px[y * stride + x - channels]! : 0;
      const up = y ? px[(y - 1) * stride + x]! : 0;
      const c = x >= channels && y ? px[(y - 1) * stride + x - channels]! : 0;
      const p = a + up - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - up), Math.abs(p - c)];
      const paeth = pa <= pb && pa <= pc ? a : pb <= pc ? up : c;
      const add = [0, a, up, (a + up) >> 1, paeth][filter]!;
      px[y * stride + x] = (line[x]! + add) & 0xff;
    }
  }
  const colour = (i: number) => px.readUIntBE(i, 3);
  const background = colour(0);
  const colours = new Set<number>();
  let drawn = 0;
  for (let i = 0; i < px.length; i += channels) {
    const c = colour(i);
    colours.add(c);
    if (c !== background) drawn++;
  }
  return { width, height, colours: colours.size, drawn: drawn / (width * height) };
}
