// Names kernel text addresses (kfree_skb/consume_skb locations) from /proc/kallsyms.
import { readFileSync } from 'node:fs';

export class Symbolizer {
  private readonly hi: Uint32Array;
  private readonly lo: Uint32Array;
  private readonly names: string[];
  private readonly cache = new Map<number, string>();

  /** Parses kallsyms text; keeps text symbols (t/T/w/W), sorted by address. */
  constructor(text: string) {
    const entries: { hi: number; lo: number; name: string }[] = [];
    for (const line of text.split('\n')) {
      // "ffffffff81f63250 T nft_do_chain" or "... t foo\t[module]"
      if (line.length < 20 || line[16] !== ' ') continue;
      const type = line[17];
      if (type !== 't' && type !== 'T' && type !== 'w' && type !== 'W') continue;
      const hi = parseInt(line.slice(0, 8), 16);
      const lo = parseInt(line.slice(8, 16), 16);
      if (hi === 0 && lo === 0) continue; // addresses hidden (kptr_restrict)
      const tab = line.indexOf('\t', 19);
      const name = tab < 0 ? line.slice(19) : line.slice(19, tab);
      // Compiler clones (foo.isra.0, foo.constprop.0, foo.cold) are named as the source function.
      entries.push({ hi, lo, name: name.replace(/\.(isra|constprop|part|cold|llvm)\b.*$/, '') });
    }
    entries.sort((a, b) => a.hi - b.hi || a.lo - b.lo);
    this.hi = Uint32Array.from(entries, (e) => e.hi);
    this.lo = Uint32Array.from(entries, (e) => e.lo);
    this.names = entries.map((e) => e.name);
  }

  static fromProc(path = '/proc/kallsyms'): Symbolizer {
    try {
      return new Symbolizer(readFileSync(path, 'utf8'));
    } catch {
      return new Symbolizer('');
    }
  }

  get size(): number {
    return this.names.length;
  }

  /** The function containing address (hi:lo), or its hex form when unknown. */
  lookup(hi: number, lo: number): string {
    if (hi === 0 && lo === 0) return '';
    const key = (hi & 0x1fffff) * 2 ** 32 + lo;
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    let a = 0, b = this.names.length - 1, found = -1;
    while (a <= b) {
      const m = (a + b) >> 1;
      if (this.hi[m] < hi || (this.hi[m] === hi && this.lo[m] <= lo)) { found = m; a = m + 1; } else b = m - 1;
    }
    const name = found >= 0 && this.hi[found] === hi
      ? this.names[found]
      : `0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`;
    this.cache.set(key, name);
    return name;
  }
}
