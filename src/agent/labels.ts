// What a drop count's labels say, from the key the kernel counted it by (bpf/drop_counts.h). Pure but for the
// names it is given.
import { dropLayer, isDrop } from '../correlate/classify.js';
import { protoName } from '../report/summary.js';
import { HOOK_NAMES } from '../trace/kernel-names.js';
import type { NativeDropCount as DropCount } from '../trace/native.js';
import { HOOK_NONE, REASON_NONE } from '../trace/record.js';

export type { NativeDropCount as DropCount } from '../trace/native.js';

export const LABEL_NAMES = [
  'netns',
  'device',
  'stage',
  'hook',
  'reason',
  'table',
  'chain',
  'rule',
  'protocol',
] as const;
export type DropLabels = Record<(typeof LABEL_NAMES)[number], string>;

/** How the kernel's numbers read: a namespace's name, a device's, a freeing function's, a drop reason's. */
export interface Namer {
  netns(inode: number): string;
  device(netns: number, ifindex: number): string;
  location(address: bigint): string;
  /** Without the SKB_DROP_REASON_ prefix. */
  reason(value: number): string;
}

/** Frees that name no reason and drop nothing: IPv6 multicast for a group no one here joined (every host hears
 *  its neighbours' MLD and ND traffic). */
const NOT_DROPS = new Set(['ip6_mc_input']);

/** The same key, as a string for maps. */
export const keyOf = (c: DropCount): string =>
  `${c.location}/${c.netns}/${c.ifindex}/${c.reason}/${c.hook}/${c.family}/${c.proto}`;

/** The labels of a count (table, chain and rule left empty: the ruleset names them); null when what the kernel
 *  freed was no drop: a transport finishing with a packet it handled (NOT_SPECIFIED, or no reason before 5.17). */
export function labelsOf(c: DropCount, names: Namer): DropLabels | null {
  const location = names.location(c.location);
  const reason = c.reason === REASON_NONE ? null : names.reason(c.reason);
  const inHook = c.hook !== HOOK_NONE;
  if (!inHook && (!isDrop(reason, location, true) || (reason === 'NOT_SPECIFIED' && NOT_DROPS.has(location))))
    return null;
  return {
    netns: names.netns(c.netns),
    device: c.ifindex ? names.device(c.netns, c.ifindex) : '',
    stage: inHook ? 'netfilter' : dropLayer(reason ?? '', location),
    hook: inHook ? (HOOK_NAMES[c.hook] ?? String(c.hook)) : '',
    reason: reason ?? '',
    table: '',
    chain: '',
    rule: '',
    protocol: protoName(c.proto, c.family),
  };
}
