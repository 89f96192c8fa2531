// A packet's way through this host's stack as a picture's model: the stages of its direction in order (in:
// device → XDP → tc → PRE_ROUTING → routing → LOCAL_IN → TCP/UDP → socket → application; forwarded: on through
// FORWARD and the way out; sent: from its origin through LOCAL_OUT to the device), each passed, the one it died
// at, or not reached; the stage it died at with the rule or program and the reason. Pure: the terminal view and
// the HTML report draw it.
import type { PacketRecord } from '../output/records.js';
import {
  DEVICE_HOOK_STAGES,
  deathStage,
  STAGE_LABELS,
  stagesReached,
  type StageId,
  type StageView,
} from '../tui/stages.js';

export type StageState = 'passed' | 'died' | 'unreached';

export interface PathStage {
  id: StageId | 'origin';
  label: string;
  state: StageState;
}

export interface PacketPath {
  stages: PathStage[];
  /** Where it died and by what: the rule (or program, or reason), null when it was not dropped. */
  death: { stage: string; by: string; reason: string | null } | null;
}

const IN: StageId[] = ['rx', 'xdp', 'tc_in', 'PRE_ROUTING', 'routing', 'LOCAL_IN', 'transport', 'socket', 'app'];
const FORWARD: StageId[] = ['rx', 'xdp', 'tc_in', 'PRE_ROUTING', 'routing', 'FORWARD'];
const OUT: StageId[] = ['LOCAL_OUT', 'POST_ROUTING', 'neighbour', 'tc_out', 'qdisc', 'tx'];
/** A forwarded packet's way out: FORWARD leads to POST_ROUTING; LOCAL_OUT is only for what this host sends. */
const OUT_AFTER_LOCAL = OUT.slice(1);

/** A packet record as the stage functions read a journey: its steps' points, hooks and devices (numbered by name),
 *  the devices whose tap it passed, its drop, its delivery. */
export function stageView(r: PacketRecord): StageView {
  const numbers = new Map<string, number>();
  const number = (dev: string) => numbers.get(dev) ?? numbers.set(dev, numbers.size + 1).size;
  return {
    steps: (r.steps ?? []).map((s) => ({
      point: s.point,
      hook: s.hook,
      at: s.at,
      ifindex: s.dev === undefined ? undefined : number(s.dev),
    })),
    tcpdumpDevices: (r.tcpdump_devices ?? []).map(number),
    drop: r.drop,
    direction: r.direction,
    delivery: r.delivery,
  };
}

const transportLabel = (proto: string): string =>
  proto === 'tcp' ? 'TCP' : proto === 'udp' ? 'UDP' : proto.startsWith('icmp') ? 'ICMP' : 'transport';

/** What dropped it, as a line: the rule, the device's program or filter, else the kernel's reason and where. */
export function droppedBy(d: NonNullable<PacketRecord['drop']>): string {
  if (d.rule?.text) return `${d.table ? `${d.table} ${d.chain}: ` : ''}${d.rule.text}`;
  const prog = d.device?.program;
  if (prog)
    return `${d.device!.hook} ${prog.name || 'program'}${prog.id ? ` (id ${prog.id})` : ''} on ${d.device!.dev}`;
  if (d.candidates?.length) return `one of: ${d.candidates.join('; ')}`;
  return d.location;
}

/** The stages of the packet's direction with what happened at each. */
export function packetPath(r: PacketRecord): PacketPath {
  const view = stageView(r);
  const reached = new Set(stagesReached(view));
  const died = deathStage(view);
  const order: (StageId | 'origin')[] =
    r.direction === 'in' ? IN : r.direction === 'forward' ? [...FORWARD, ...OUT_AFTER_LOCAL] : ['origin', ...OUT];
  // Stages no probe marks (routing between hooks) were passed where a later one was reached.
  const last = Math.max(...order.map((id, i) => (id === 'origin' || reached.has(id) ? i : -1)));
  const stages = order
    .filter((id) => id === 'origin' || !DEVICE_HOOK_STAGES.has(id) || reached.has(id))
    .map((id): PathStage => {
      const i = order.indexOf(id);
      const state: StageState =
        id === died ? 'died' : i <= last && !(died && i > order.indexOf(died)) ? 'passed' : 'unreached';
      const label =
        id === 'origin'
          ? r.origin === 'stack'
            ? 'kernel (its own answer)'
            : r.origin === 'netfilter'
              ? 'REJECT rule'
              : 'socket'
          : id === 'transport'
            ? transportLabel(r.proto)
            : STAGE_LABELS[id];
      return { id, label, state };
    });
  const death =
    r.drop && died
      ? { stage: stages.find((s) => s.state === 'died')?.label ?? died, by: droppedBy(r.drop), reason: r.drop.reason }
      : r.drop
        ? { stage: r.drop.layer, by: droppedBy(r.drop), reason: r.drop.reason }
        : null;
  return { stages, death };
}

/** The path as text lines of at most `width` columns: "device RX → PRE_ROUTING → LOCAL_IN ✗ ┄ TCP ┄ socket", the
 *  stages not reached after a dotted link, then what dropped it. */
export function pathLines(p: PacketPath, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  p.stages.forEach((s, i) => {
    const link = i === 0 ? '' : s.state === 'unreached' ? ' ┄ ' : ' → ';
    const word = s.state === 'died' ? `✗ ${s.label}` : s.state === 'unreached' ? `(${s.label})` : s.label;
    if (line && (line + link + word).length > width) {
      lines.push(line);
      line = `  ${link.trim()} ${word}`;
    } else line += link + word;
  });
  lines.push(line);
  if (p.death)
    lines.push(
      ...wrap(`✗ dropped at ${p.death.stage} by ${p.death.by}${p.death.reason ? ` (${p.death.reason})` : ''}`, width),
    );
  return lines;
}

/** Text cut into lines of at most `width` at spaces (a word longer than that cut where it must), the lines after
 *  the first indented. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let rest = text;
  while (rest.length > width) {
    const cut = rest.lastIndexOf(' ', width);
    const at = cut > width / 2 ? cut : width;
    lines.push(rest.slice(0, at));
    rest = `   ${rest.slice(at).trimStart()}`;
  }
  return [...lines, rest];
}
