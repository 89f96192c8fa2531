// Names kernel text addresses (kfree_skb/consume_skb locations) from /proc/kallsyms.
import { readFileSync } from 'node:fs';

export class Symbolizer {
  private readonly hi: Uint32Array;
  private readonly lo: Uint32Array;
  private readonly names: string[];
  private readonly cache = new Map<number, string>();

  /** Parses kallsyms text; keeps text symbols (t/T/w/W), sorted by address. Runs when the first free
   *  must be named (~120 k lines, while events wait): no object or regular expression per line. */
  constructor(text: string) {
    const his: number[] = [],
      los: number[] = [],
      names: string[] = [];
    let sorted = true,
      lastHi = -1,
      lastLo = -1;
    for (let start = 0; start < text.length;) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      // "ffffffff81f63250 T nft_do_chain" or "... t foo\t[module]"
      const type = text.charCodeAt(start + 17);
      if (
        end - start >= 20 &&
        text.charCodeAt(start + 16) === 32 &&
        (type === 116 || type === 84 || type === 119 || type === 87)
      ) {
        const hi = parseInt(text.slice(start, start + 8), 16);
        const lo = parseInt(text.slice(start + 8, start + 16), 16);
        if (hi !== 0 || lo !== 0) {
          // zero: addresses hidden (kptr_restrict)
          let name = text.slice(start + 19, end);
          const tab = name.indexOf('\t');
          if (tab >= 0) name = name.slice(0, tab);
          // Compiler clones (foo.isra.0, foo.constprop.0, foo.cold) are named as the source function.
          if (name.includes('.')) name = name.replace(/\.(isra|constprop|part|cold|llvm)\b.*$/, '');
          if (lastHi > hi || (lastHi === hi && lastLo > lo)) sorted = false;
          lastHi = hi;
          lastLo = lo;
          his.push(hi);
          los.push(lo);
          names.push(name);
        }
      }
      start = end + 1;
    }
    // /proc/kallsyms is in address order but for modules: sort only when it is not.
    const order = his.map((_, i) => i);
    if (!sorted) order.sort((a, b) => his[a]! - his[b]! || los[a]! - los[b]!);
    this.hi = Uint32Array.from(order, (i) => his[i]!);
    this.lo = Uint32Array.from(order, (i) => los[i]!);
    this.names = order.map((i) => names[i]!);
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

  /** Where a function's text lies: [its address, the next symbol's), as 64-bit addresses; null when unknown. */
  extent(name: string): [bigint, bigint] | null {
    const i = this.names.indexOf(name);
    if (i < 0 || i + 1 >= this.names.length) return null;
    const at = (j: number) => (BigInt(this.hi[j]!) << 32n) | BigInt(this.lo[j]!);
    return [at(i), at(i + 1)];
  }

  /** The function containing address (hi:lo), or its hex form when unknown. */
  lookup(hi: number, lo: number): string {
    if (hi === 0 && lo === 0) return '';
    const key = (hi & 0x1fffff) * 2 ** 32 + lo;
    const hit = this.cache.get(key);
    if (hit !== undefined) return hit;
    let a = 0,
      b = this.hi.length - 1,
      found = -1;
    while (a <= b) {
      const m = (a + b) >> 1;
      const mHi = this.hi[m]!;
      if (mHi < hi || (mHi === hi && this.lo[m]! <= lo)) {
        found = m;
        a = m + 1;
      } else b = m - 1;
    }
    const name =
      (this.hi[found] === hi ? this.names[found] : undefined) ??
      `0x${hi.toString(16).padStart(8, '0')}${lo.toString(16).padStart(8, '0')}`;
    this.cache.set(key, name);
    return name;
  }
}
