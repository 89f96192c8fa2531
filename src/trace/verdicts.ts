// Whose verdicts are traced: an fexit program on each XDP and tc program attached to the traced namespace's devices
// (bpf/device_verdicts.bpf.c), where the kernel has BPF trampolines, kept in step with the devices as programs come
// and go. Without trampolines nothing is loaded, and the drops there are named from what is attached.
import { verdictTargets, type DevicePrograms } from './device-programs.js';
import type { NativeTracer, VerdictTarget } from './native.js';
import type { Unavailable } from './netfilter-mechanism.js';

/** How often the devices are read again for programs attached or detached since: a program attached during the
 *  trace has its verdicts traced within this time, and one detached is let go (our link keeps it loaded). A
 *  reading costs a few netlink queries per device in this process, one `tc qdisc show` process, and one `tc filter
 *  show` per direction of a device that holds classic filters: about a millisecond of CPU a second. */
export const VERDICTS_READ_MS = 2000;

const POINT = { xdp: 'xdp_verdict', tc: 'tc_verdict' } as const;

/** What a reading changed: the points that trace at least one program now, and what could not be traced (each said
 *  once). */
export interface VerdictsRead {
  points: string[];
  unavailable: Unavailable[];
}

export class VerdictTracing {
  /** Why the kernel will trace no verdict (said once), or null while it may. */
  private refused: string | null;
  private refusalSaid = false;
  /** Programs whose verdicts cannot be traced, by id: said once each, and not tried again. */
  private readonly failed = new Set<number>();

  /** trampolines: false where the kernel lacks them (or the user pretends it does): nothing is loaded then. */
  constructor(
    private readonly tracer: NativeTracer,
    private readonly programs: DevicePrograms,
    private readonly devices: () => Readonly<Record<number, string>>,
    trampolines: boolean,
  ) {
    this.refused = trampolines ? null : 'this kernel has no BPF trampolines';
  }

  /** Whether the devices are worth reading again: not once the kernel refused. */
  get live(): boolean {
    return this.refused === null;
  }

  /** Reads the devices and traces the verdicts of the programs there now. */
  read(): VerdictsRead {
    // One that could not be traced is not tried again (each try is a load the verifier checks).
    const targets = verdictTargets(this.programs.everywhere(this.devices())).filter((t) => !this.failed.has(t.id));
    if (this.refused !== null) return { points: [], unavailable: this.refusal(targets) };
    const points = new Set<string>();
    const unavailable: Unavailable[] = [];
    for (const s of this.tracer.traceVerdicts(targets)) {
      const hook = targets.find((t) => t.id === s.id)!.hook;
      if (s.attached) {
        points.add(POINT[hook]);
      } else if (s.refused) {
        this.refused = `this kernel refused an fexit program on ${hook === 'xdp' ? 'an XDP' : 'a tc'} program (${s.error ?? 'no reason given'})`;
      } else {
        this.failed.add(s.id);
        unavailable.push({
          point: POINT[hook],
          reason: `program id ${s.id}: ${s.error ?? 'not attached'}; its drops are named from what is attached`,
        });
      }
    }
    if (this.refused !== null) {
      this.tracer.traceVerdicts([]);
      return { points: [], unavailable: [...unavailable, ...this.refusal(targets)] };
    }
    return { points: [...points], unavailable };
  }

  /** Why the verdicts of targets are not traced, once, where there are any to trace. */
  private refusal(targets: VerdictTarget[]): Unavailable[] {
    if (this.refusalSaid || targets.length === 0) return [];
    this.refusalSaid = true;
    const hooks = [...new Set(targets.map((t) => t.hook))];
    return hooks.map((h) => ({
      point: POINT[h],
      reason:
        `${this.refused}: ${h === 'xdp' ? 'XDP' : 'tc'} programs' verdicts are not seen; their drops are named from what is attached there` +
        // Without its verdict, a native XDP drop shows only where the driver frees an skb for it (veth does).
        (h === 'xdp'
          ? '; in native mode a driver that recycles its buffer frees no skb, so such drops leave no trace here (ethtool -S on the device counts them)'
          : ''),
    }));
  }
}
