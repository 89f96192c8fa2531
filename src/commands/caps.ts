// Whether this process may load BPF and enter namespaces, from /proc/self/status.
import { readFileSync } from 'node:fs';

const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

export function effectiveCaps(status = readFileSync('/proc/self/status', 'utf8')): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/** Missing capabilities, by name; empty when tracing can go ahead. */
export function missingCaps(caps: bigint, entersNetns: boolean): string[] {
  const has = (c: bigint) => ((caps >> c) & 1n) === 1n;
  const missing: string[] = [];
  if (!has(CAP_SYS_ADMIN)) {
    if (!has(CAP_BPF)) missing.push('CAP_BPF');
    if (!has(CAP_PERFMON)) missing.push('CAP_PERFMON');
    if (entersNetns) missing.push('CAP_SYS_ADMIN');
  }
  if (!has(CAP_NET_ADMIN)) missing.push('CAP_NET_ADMIN');
  return missing;
}
