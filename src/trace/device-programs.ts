// What on a device of the traced namespace can drop a packet outside netfilter: its XDP programs (one per mode)
// and its tc filters (tcx programs; classic filters on the clsact or ingress qdisc), and which of them a drop
// names. Read when such a drop is reported, read-only, and kept a second: a flood of drops reads them once.
import { execFileSync } from 'node:child_process';
import { getSystemErrorName } from 'node:util';
import type { DeviceHookDrop, DeviceProgram, Drop, ProgramVerdict } from '../correlate/journey.js';
import { native } from './native.js';

export type Direction = 'ingress' | 'egress';

/** One program or filter on a device. */
export interface Attached {
  hook: 'xdp' | 'tc';
  direction: Direction;
  /** xdp: generic, native, offload; tc: tcx, or a classic filter's kind and preference ("bpf filter pref 1"). */
  mode: string;
  name: string;
  id?: number;
  tag?: string;
  /** Classic tc filters: the command that removes it. */
  remove?: string;
}

/** A classic filter as `tc -j filter show` writes it (the parts read here). */
interface TcFilter {
  pref?: number;
  kind?: string;
  chain?: number;
  options?: {
    handle?: string;
    bpf_name?: string;
    'direct-action'?: boolean;
    prog?: { id?: number; name?: string; tag?: string };
    actions?: { kind?: string; control_action?: { type?: string }; mirred_action?: string; to_dev?: string }[];
  };
}

/** Whether a classic filter can drop: a BPF classifier decides itself (direct-action) or through its actions; other
 *  classifiers only through an action that drops (gact drop, police, a BPF action, a mirred redirect that fails). */
function canDrop(f: TcFilter): boolean {
  const acts = f.options?.actions ?? [];
  if (f.kind === 'bpf' && (f.options?.['direct-action'] || acts.length === 0)) return true;
  return acts.some(
    (a) =>
      (a.kind === 'gact' && a.control_action?.type === 'drop') ||
      a.kind === 'police' ||
      a.kind === 'bpf' ||
      a.kind === 'mirred',
  );
}

/** The classic filters of `tc -j filter show dev DEV DIRECTION` that can drop. Pure. */
export function parseTcFilters(json: string, dev: string, direction: Direction, prefix = ''): Attached[] {
  let list: TcFilter[];
  try {
    list = JSON.parse(json) as TcFilter[];
  } catch {
    return [];
  }
  // tc lists each preference once bare, then once per filter with its options.
  return list
    .filter((f) => f.options && canDrop(f))
    .map((f) => {
      const prog = f.options!.prog;
      const pref = f.pref !== undefined ? ` pref ${f.pref}` : '';
      const chain = f.chain ? ` chain ${f.chain}` : '';
      const acts = (f.options!.actions ?? []).map((a) =>
        a.kind === 'mirred'
          ? `mirred ${a.mirred_action} ${a.to_dev}`
          : a.kind === 'gact'
            ? a.control_action?.type
            : a.kind,
      );
      return {
        hook: 'tc' as const,
        direction,
        mode: `${f.kind} filter${pref}${chain}${f.options!['direct-action'] ? ' direct-action' : ''}`,
        name: prog?.name ?? f.options!.bpf_name ?? `${f.kind}${acts.length ? ` action ${acts.join(', ')}` : ''}`,
        ...(prog?.id !== undefined && { id: prog.id }),
        ...(prog?.tag !== undefined && { tag: prog.tag }),
        remove: `${prefix}tc filter del dev ${dev} ${direction}${pref}${chain}`,
      };
    });
}

/** Where on its device a drop happened: the hook and direction, from its layer, the program's own answer, the
 *  reason and the freeing function. */
export function dropSite(
  d: Pick<Drop, 'layer' | 'reason' | 'location' | 'told'>,
): { hook: 'xdp' | 'tc'; direction: Direction } | null {
  if (d.layer === 'xdp') return { hook: 'xdp', direction: 'ingress' };
  if (d.layer !== 'tc') return null;
  if (d.told?.direction) return { hook: 'tc', direction: d.told.direction };
  const egress = d.reason === 'TC_EGRESS' || /egress|__dev_queue_xmit/.test(d.location);
  return { hook: 'tc', direction: egress ? 'egress' : 'ingress' };
}

/** The XDP mode a freeing function belongs to: the generic path frees in the core's functions, a driver in its own. */
function xdpMode(location: string): string {
  return /generic/.test(location) ? 'generic' : 'native';
}

/** What on device dev dropped a packet (drop d), from what is attached there (reading): the program whose own
 *  answer the correlator saw (d.told), else the one program or filter that can have, or the candidates when several
 *  can; null when d is not a device hook's drop. Pure. */
export function deviceHookDrop(
  d: Pick<Drop, 'layer' | 'reason' | 'location' | 'told'>,
  dev: string,
  reading: Reading,
): DeviceHookDrop | null {
  const site = dropSite(d);
  if (!site) return null;
  const unread = reading.unread !== null ? { unread: reading.unread } : {};
  if (d.told) return { ...site, dev, program: toldProgram(d.told, site.hook, d.location, reading), ...unread };
  let there = reading.list.filter((a) => a.hook === site.hook && a.direction === site.direction);
  if (site.hook === 'xdp') {
    const mode = xdpMode(d.location);
    if (there.some((a) => a.mode === mode)) there = there.filter((a) => a.mode === mode);
  }
  const [only] = there;
  const program: DeviceProgram | null =
    there.length === 1 && only
      ? {
          mode: only.mode,
          name: only.name,
          ...(only.id !== undefined && { id: only.id }),
          ...(only.tag !== undefined && { tag: only.tag }),
          found: 'only',
          ...(only.remove !== undefined && { remove: only.remove }),
        }
      : null;
  return { ...site, dev, program, ...(there.length > 1 && { candidates: there.map(label) }), ...unread };
}

/** The program that told its verdict (told), with what the reading of its device adds: its mode, tag and the command
 *  that removes it (none when it left the device since). */
function toldProgram(told: ProgramVerdict, hook: 'xdp' | 'tc', location: string, reading: Reading): DeviceProgram {
  const at = reading.list.find((a) => a.hook === hook && a.id === told.id);
  return {
    mode: at?.mode ?? (hook === 'xdp' ? xdpMode(location) : 'no longer attached'),
    name: told.name || at?.name || '',
    id: told.id,
    ...(at?.tag !== undefined && { tag: at.tag }),
    found: 'verdict',
    verdict: told.verdict,
    ...(told.error !== undefined && { error: errnoName(told.error) }),
    ...(at?.remove !== undefined && { remove: at.remove }),
  };
}

/** ENETDOWN for -100 (the kernel's errors are negative). */
function errnoName(err: number): string {
  try {
    return getSystemErrorName(err < 0 ? err : -err);
  } catch {
    return `error ${err}`;
  }
}

/** The programs whose verdicts can be traced among those attached: XDP programs in generic or native mode (an
 *  offloaded one runs on the card), tcx programs, and classic BPF filters in direct-action mode (without it a
 *  filter's return value is a class, not a verdict). Pure. */
export function verdictTargets(list: Attached[]): { id: number; hook: 'xdp' | 'tc' }[] {
  const targets = new Map<number, 'xdp' | 'tc'>();
  for (const a of list) {
    if (a.id === undefined) continue;
    const traceable = a.hook === 'xdp' ? a.mode !== 'offload' : a.mode === 'tcx' || a.mode.endsWith('direct-action');
    if (traceable) targets.set(a.id, a.hook);
  }
  return [...targets].map(([id, hook]) => ({ id, hook }));
}

/** The hooks that can hold classic tc filters, by device, from `tc -j qdisc show`: clsact's two, ingress's one. */
export function classicHooks(json: string): [string, Direction[]][] {
  let list: { kind?: string; dev?: string }[];
  try {
    list = JSON.parse(json) as { kind?: string; dev?: string }[];
  } catch {
    return [];
  }
  return list.flatMap((q): [string, Direction[]][] =>
    !q.dev
      ? []
      : q.kind === 'clsact'
        ? [[q.dev, ['ingress', 'egress']]]
        : q.kind === 'ingress'
          ? [[q.dev, ['ingress']]]
          : [],
  );
}

/** "drop_mysql (id 102, generic)". */
export function label(p: Pick<Attached, 'name' | 'id' | 'mode'>): string {
  return `${p.name || '(unnamed)'} (${p.id !== undefined ? `id ${p.id}, ` : ''}${p.mode})`;
}

/** The programs and filters on the traced namespace's devices, read on demand and kept a second. */
export class DevicePrograms {
  private readonly cache = new Map<string, { at: number; reading: Reading }>();

  /** nsPath: the namespace file ("" = our own); prefix: how the user runs a command there. */
  constructor(
    private readonly nsPath: string,
    private readonly prefix: string,
  ) {}

  /** What of hook (xdp, tc in direction) is on device ifindex, named dev. Classic tc filters that could not be
   *  read (no tc, or it failed) leave the list without them and say why in unread. */
  on(ifindex: number, dev: string, site: { hook: 'xdp' | 'tc'; direction: Direction }): Reading {
    const key = `${ifindex} ${site.hook} ${site.direction}`;
    const now = Date.now();
    const hit = this.cache.get(key);
    if (hit && now - hit.at < 1000) return hit.reading;
    const reading = this.read(ifindex, dev, site);
    this.cache.set(key, { at: now, reading });
    return reading;
  }

  /** Everything on the namespace's devices (names: by ifindex) that can drop: their XDP and tcx programs (netlink,
   *  in this process), and the classic filters of those holding a clsact or ingress qdisc (a `tc` process for the
   *  qdiscs, and one for each such hook). What cannot be read is left out. */
  everywhere(names: Record<number, string>): Attached[] {
    const out: Attached[] = [];
    for (const [ifindex, dev] of Object.entries(names)) {
      try {
        out.push(...this.bpf(Number(ifindex), dev));
      } catch {
        /* gone since, or the namespace went away: nothing attached there to trace */
      }
    }
    const qdiscs = this.tc(['qdisc', 'show']);
    if (typeof qdiscs !== 'string') return out;
    for (const [dev, directions] of classicHooks(qdiscs)) {
      for (const direction of directions) {
        const tc = this.tcFilters(dev, direction);
        if (typeof tc === 'string') out.push(...parseTcFilters(tc, dev, direction, this.prefix));
      }
    }
    return out;
  }

  private read(ifindex: number, dev: string, site: { hook: 'xdp' | 'tc'; direction: Direction }): Reading {
    const bpf = this.bpf(ifindex, dev).filter((a) => a.hook === site.hook && a.direction === site.direction);
    if (site.hook === 'xdp') return { list: bpf, unread: null };
    const tc = this.tcFilters(dev, site.direction);
    if (typeof tc !== 'string') return { list: bpf, unread: tc.error };
    return { list: [...bpf, ...parseTcFilters(tc, dev, site.direction, this.prefix)], unread: null };
  }

  /** The XDP and tcx programs on device ifindex (named dev). */
  private bpf(ifindex: number, dev: string): Attached[] {
    return native()
      .devicePrograms(this.nsPath, ifindex)
      .map((p) => {
        const [kind = '', where = ''] = p.attach.split('-');
        const tcx = kind === 'tcx';
        return {
          hook: tcx ? ('tc' as const) : ('xdp' as const),
          direction: tcx ? (where as Direction) : ('ingress' as const),
          mode: tcx ? 'tcx' : where,
          name: p.name,
          id: p.id,
          ...(p.tag && { tag: p.tag }),
          remove: tcx
            ? `${this.prefix}bpftool net detach tcx_${where} dev ${dev}`
            : `${this.prefix}ip link set dev ${dev} ${XDP_MODE_FLAG[where] ?? 'xdp'} off`,
        };
      });
  }

  /** `tc -j filter show dev DEV DIRECTION` in the namespace (a device without the qdisc has none: "[]"), or why
   *  it could not be read. */
  private tcFilters(dev: string, direction: Direction): string | { error: string } {
    return this.tc(['filter', 'show', 'dev', dev, direction]);
  }

  /** `tc -j ARGS` in the namespace, or why it could not be run. */
  private tc(args: string[]): string | { error: string } {
    args = ['-j', ...args];
    const [cmd, argv] = this.nsPath ? ['nsenter', [`--net=${this.nsPath}`, 'tc', ...args]] : ['tc', args];
    try {
      // Milliseconds as a rule; seconds on a starved machine (a VM under emulation), where a cut-off reading
      // would leave the filter unnamed.
      return execFileSync(cmd, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 15_000 });
    } catch (e) {
      const err = e as { code?: string; stderr?: string; message: string };
      if (err.code === 'ENOENT') return { error: 'tc is not installed (iproute2)' };
      return { error: `tc failed: ${(err.stderr || err.message).trim().split('\n')[0]}` };
    }
  }
}

/** ip link's word for each XDP mode. */
const XDP_MODE_FLAG: Record<string, string> = { generic: 'xdpgeneric', native: 'xdpdrv', offload: 'xdpoffload' };

/** What a device holds of one hook: the programs and filters read, and why classic tc filters were not (null: they were). */
export interface Reading {
  list: Attached[];
  unread: string | null;
}
