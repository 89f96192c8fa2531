// IP addresses between their kernel byte form and text.

/** Text form of the address at bytes[off..]: dotted quad, or RFC 5952 IPv6. */
export function formatAddress(bytes: Uint8Array, off: number, family: number): string {
  if (family === 4) return `${bytes[off]}.${bytes[off + 1]}.${bytes[off + 2]}.${bytes[off + 3]}`;
  if (family !== 6) return '';
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[off + i] ?? 0) << 8) | (bytes[off + i + 1] ?? 0));
  // RFC 5952: compress the longest run (>= 2) of zero groups.
  let bestAt = -1,
    bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

/** An IPv4 or IPv6 literal as 16 bytes (IPv4 in the first 4), for the BPF filter. */
export function addressBytes(addr: string): { family: 4 | 6; addr: Uint8Array } {
  const out = new Uint8Array(16);
  if (addr.includes(':')) {
    const [head, tail] = addr.split('::');
    const parse = (s: string | undefined) =>
      (s ? s.split(':') : []).flatMap((g) => {
        if (g.includes('.')) {
          // IPv4-mapped tail
          const [b0 = 0, b1 = 0, b2 = 0, b3 = 0] = g.split('.').map(Number);
          return [(b0 << 8) | b1, (b2 << 8) | b3];
        }
        return [parseInt(g, 16)];
      });
    const h = parse(head),
      t = parse(tail);
    const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill(0), ...t];
    groups.forEach((g, i) => {
      out[2 * i] = g >> 8;
      out[2 * i + 1] = g & 0xff;
    });
    return { family: 6, addr: out };
  }
  addr.split('.').forEach((b, i) => {
    out[i] = Number(b);
  });
  return { family: 4, addr: out };
}

/** The IPv4 addresses a namespace owns: the "/32 host LOCAL" leaves of /proc/net/fib_trie. */
export function localAddressesV4(fibTrie: string): string[] {
  const out = new Set<string>();
  let last = '';
  for (const line of fibTrie.split('\n')) {
    const leaf = /\|-- (\d+\.\d+\.\d+\.\d+)$/.exec(line)?.[1];
    if (leaf) last = leaf;
    else if (/^\s+\/32 host LOCAL/.test(line) && last) out.add(last);
  }
  return [...out];
}

/** The IPv6 addresses of /proc/net/if_inet6 (32 hex digits each, first on its line). */
export function localAddressesV6(ifInet6: string): string[] {
  return ifInet6.split('\n').flatMap((line) => {
    const hex = /^([0-9a-f]{32})\s/.exec(line)?.[1];
    return hex ? [formatAddress(Uint8Array.from(hex.match(/../g)!.map((b) => parseInt(b, 16))), 0, 6)] : [];
  });
}
