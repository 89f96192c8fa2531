// What a drop count's labels say, from the key the kernel counted it by (bpf/drop_counts.h). Pure but for the
// names it is given.
import { dropLayer, isDrop } from '../correlate/classify.js';
import { protoName } from '../report/summary.js';
import { HOOK_NAMES } from '../trace/kernel-names.js';
import { formatAddress } from '../trace/address.js';
import type { NativeDropCount as DropCount, NativeDropKey, NativeDropSample } from '../trace/native.js';
import { HOOK_NONE, REASON_NONE } from '../trace/record.js';
import { ownerText, type Owner } from './owners.js';

export type { NativeDropCount as DropCount } from '../trace/native.js';

/** A kind of drop told the first time it happens: its labels and the packet that was its first. */
export interface DropEvent {
  labels: DropLabels;
  family: number;
  src: string;
  dst: string;
  /** 0 where the protocol has none. */
  sport: number;
  dport: number;
  len: number;
}

export const LABEL_NAMES = [
  'netns',
  'container',
  'k8s_namespace',
  'k8s_pod',
  'device',
  'stage',
  'hook',
  'reason',
  'table',
  'chain',
  'rule',
  'protocol',
] as const;
/** The labels of a drop series; `port` only with --label-ports (a series per port of --port's list). */
export type DropLabels = Record<(typeof LABEL_NAMES)[number], string> & { port?: string };
export type LabelName = (typeof LABEL_NAMES)[number] | 'port';

/** The label names of the drop series: the port's only when asked. */
export const labelNames = (ports: boolean): LabelName[] => (ports ? [...LABEL_NAMES, 'port'] : [...LABEL_NAMES]);

/** How the kernel's numbers read: a namespace's name, a device's, a freeing function's, a drop reason's. */
export interface Namer {
  netns(inode: number): string;
  /** The container or pod the namespace is, if any. */
  owner(inode: number): Owner;
  device(netns: number, ifindex: number): string;
  location(address: bigint): string;
  /** Without the SKB_DROP_REASON_ prefix. */
  reason(value: number): string;
}

/** Frees that name no reason and drop nothing: IPv6 multicast for a group no one here joined (every host hears
 *  its neighbours' MLD and ND traffic). */
const NOT_DROPS = new Set(['ip6_mc_input']);

/** The same key, as a string for maps. */
export const keyOf = (c: NativeDropKey): string =>
  `${c.location}/${c.netns}/${c.ifindex}/${c.reason}/${c.hook}/${c.family}/${c.proto}/${c.port}`;

/** An owner's labels. */
const ownerLabels = (o: Owner) => ({
  container: o.container,
  k8s_namespace: o.k8sNamespace,
  k8s_pod: o.k8sPod,
});

/** The owner labels name. */
export const labelsOwner = (l: DropLabels): Owner => ({
  container: l.container,
  k8sNamespace: l.k8s_namespace,
  k8sPod: l.k8s_pod,
});

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
    ...ownerLabels(names.owner(c.netns)),
    device: c.ifindex ? names.device(c.netns, c.ifindex) : '',
    stage: inHook ? 'netfilter' : dropLayer(reason ?? '', location),
    hook: inHook ? (HOOK_NAMES[c.hook] ?? String(c.hook)) : '',
    reason: reason ?? '',
    table: '',
    chain: '',
    rule: '',
    protocol: protoName(c.proto, c.family),
    ...(c.port ? { port: String(c.port) } : {}),
  };
}

/** A drop event from a sample and the labels its key got. */
export function eventOf(s: NativeDropSample, labels: DropLabels): DropEvent {
  const { family } = s.key;
  return {
    labels,
    family,
    src: formatAddress(s.saddr, 0, family),
    dst: formatAddress(s.daddr, 0, family),
    sport: s.sport,
    dport: s.dport,
    len: s.len,
  };
}

/** One line for a log, tcpdump's way with addresses and ports (ADDR.PORT > ADDR.PORT). */
export function eventLine(e: DropEvent): string {
  const l = e.labels;
  const end = (a: string, p: number) => (p ? `${a}.${p}` : a);
  const owned = ownerText(labelsOwner(l));
  const where = [l.stage, l.hook, l.table && `table ${l.table}`, l.chain && `chain ${l.chain}`]
    .filter(Boolean)
    .join(' ');
  return (
    `drop in ${l.netns}${owned ? ` (${owned})` : ''}${l.device ? ` on ${l.device}` : ''}: ${l.protocol} ${end(e.src, e.sport)} > ${end(e.dst, e.dport)}` +
    ` length ${e.len}, ${where}${l.reason ? ` (${l.reason})` : ''}${l.rule ? `, rule: ${l.rule}` : ''}`
  );
}
