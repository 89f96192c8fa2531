// The stack as stages a packet passes, for the UI's picture: which stages
// each journey reached and where it died. Pure.
import { atDeviceTx, placeOf } from '../correlate/points.js';
import type { Journey } from '../correlate/journey.js';

export const RX_STAGES = [
  'rx',
  'xdp',
  'tap_rx',
  'tc_in',
  'PRE_ROUTING',
  'routing',
  'LOCAL_IN',
  'transport',
  'socket',
  'app',
] as const;
export const FWD_STAGES = ['FORWARD'] as const;
export const TX_STAGES = ['LOCAL_OUT', 'POST_ROUTING', 'neighbour', 'tc_out', 'qdisc', 'tap_tx', 'tx'] as const;
export type StageId = (typeof RX_STAGES)[number] | (typeof FWD_STAGES)[number] | (typeof TX_STAGES)[number];

/** Stages only a device's own programs make: shown only where a packet reached them (died there). */
export const DEVICE_HOOK_STAGES: ReadonlySet<StageId> = new Set(['xdp', 'tc_in', 'tc_out']);

export const STAGE_LABELS: Record<StageId, string> = {
  rx: 'device RX',
  xdp: 'XDP',
  tap_rx: 'tcpdump',
  tc_in: 'tc ingress',
  PRE_ROUTING: 'PRE_ROUTING',
  routing: 'routing',
  LOCAL_IN: 'LOCAL_IN',
  transport: 'transport',
  socket: 'socket',
  app: 'application',
  FORWARD: 'FORWARD',
  LOCAL_OUT: 'LOCAL_OUT',
  POST_ROUTING: 'POST_ROUTING',
  neighbour: 'neighbour',
  tc_out: 'tc egress',
  qdisc: 'qdisc',
  tap_tx: 'tcpdump',
  tx: 'device TX',
};

/** Per stage, how many journeys reached it and how many died there (the funnel the views draw). */
export type StageCounts = Map<StageId, { reached: number; died: number }>;

/** What the stages are read from: a journey, or a packet record made to look like one (across.tsx). */
export interface StageView {
  steps: Pick<Journey['steps'][number], 'point' | 'hook' | 'at' | 'ifindex'>[];
  tcpdumpDevices: number[];
  direction: Journey['direction'];
  drop?: Pick<NonNullable<Journey['drop']>, 'hook' | 'layer' | 'device'> | null;
  delivery?: Pick<NonNullable<Journey['delivery']>, 'socket'>;
}

/** The stage where a dropped journey died. */
export function deathStage(j: StageView): StageId | null {
  const d = j.drop;
  if (!d) return null;
  if (d.hook) return d.hook;
  switch (d.layer) {
    case 'ip':
      return 'routing';
    case 'tcp':
    case 'udp':
    case 'icmp':
      return 'transport';
    case 'socket':
      return 'socket';
    case 'neighbour':
      return 'neighbour';
    case 'qdisc':
      return 'qdisc';
    case 'xdp':
      return 'xdp';
    case 'tc':
      return d.device?.direction === 'egress' || j.direction === 'out' ? 'tc_out' : 'tc_in';
    case 'device':
      return j.steps.some((s) => atDeviceTx(s.point)) ? 'tx' : j.direction === 'out' ? 'qdisc' : 'rx';
    default:
      return null;
  }
}

/** Stages a journey reached, in path order (the stage it died at included). */
export function stagesReached(j: StageView): StageId[] {
  const out = new Set<StageId>();
  for (const s of j.steps) {
    switch (placeOf(s.point)) {
      case 'rx':
        out.add('rx');
        break;
      case 'rx-tap':
        out.add('rx');
        // Generic XDP runs after this point and before the tap: one it dropped never reached the tap.
        if (j.tcpdumpDevices.includes(s.ifindex ?? 0)) out.add('tap_rx');
        break;
      case 'hook':
        out.add(s.hook!);
        if (s.hook === 'LOCAL_IN' || s.hook === 'FORWARD') out.add('routing');
        if (s.hook === 'LOCAL_IN' && s.at === 'exit') out.add('transport');
        break;
      case 'neighbour':
        out.add('neighbour');
        out.add('qdisc');
        break;
      case 'qdisc':
        out.add('qdisc');
        break;
      case 'tx-tap':
        out.add('tap_tx');
        out.add('tx');
        break;
      case 'app':
        out.add('app');
        break;
    }
  }
  if (j.delivery?.socket) {
    out.add('transport');
    out.add('socket');
  }
  // First seen at a hook (its ports matched the filter only after NAT): it came in on a device, through its tap
  // when the correlator says tcpdump saw it there (a tapped device that is not one it was sent on).
  if (j.direction !== 'out' && !out.has('rx') && (out.has('PRE_ROUTING') || out.has('FORWARD'))) {
    out.add('rx');
    const sentOn = new Set(j.steps.filter((s) => placeOf(s.point) === 'tx-tap').map((s) => s.ifindex));
    if (j.tcpdumpDevices.some((d) => !sentOn.has(d))) out.add('tap_rx');
  }
  const died = deathStage(j);
  if (died) out.add(died);
  const order: StageId[] = [...RX_STAGES, ...FWD_STAGES, ...TX_STAGES];
  return order.filter((s) => out.has(s));
}
