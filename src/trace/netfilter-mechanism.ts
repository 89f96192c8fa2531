// How the netfilter hooks are traced on this kernel, and what the ready record
// says about it. Pure but for attachTracer, whose tracers come in: the points
// that attached and the unavailable list in, the mechanism and the list as the
// user reads it out.
import type { NativeTracer, NetfilterMechanism, PointStatus } from './native.js';

export interface Unavailable {
  point: string;
  reason: string;
}

/** What the user loses without a tracepoint that older kernels lack. */
const WITHOUT: Record<string, string> = {
  sock_recv_length: 'UDP reads by the application are not seen (UDP datagrams end as delivered, without their read)',
  qdisc_enqueue: 'the time a packet waits in a qdisc is not measured',
  napi_gro_receive_entry: 'GRO merges at NAPI drivers are not seen',
  netif_rx: 'packets handed over by veth and loopback show from netif_receive_skb on',
};

/** A point that did not attach, with what that costs where it is known. */
export function unattached(point: string, error: string | undefined): Unavailable {
  return { point, reason: `${error ?? 'not attached'}${WITHOUT[point] ? `: ${WITHOUT[point]}` : ''}` };
}

/** The points that must both attach for a mechanism to trace the hooks (nf_hook_slow's entry and return). */
const HOOK_POINTS: Partial<Record<NetfilterMechanism, string[]>> = {
  trampolines: ['fentry/nf_hook_slow', 'fexit/nf_hook_slow'],
  kprobes: ['kprobe/nf_hook_slow', 'kretprobe/nf_hook_slow'],
};

/** How a failure of loaded trampolines to attach begins in the unavailable list (what doctor looks for). */
export const TRAMPOLINES_UNATTACHED = 'trampolines did not attach to nf_hook_slow';

/**
 * Attaches the tracer's points. Trampolines that loaded but do not attach to nf_hook_slow (arm64 before 6.4 has
 * no ftrace direct calls: ENOTSUPP) give way to kprobes, as the addon's refusal at load does: the tracer is
 * closed, withKprobes makes the next, and the first one's failure is listed as the addon lists a refusal.
 */
export function attachTracer<T extends Pick<NativeTracer, 'attachTracepoints' | 'netfilterMode' | 'close'>>(
  tracer: T,
  withKprobes: () => T,
): { tracer: T; statuses: PointStatus[] } {
  const statuses = tracer.attachTracepoints();
  const failed = statuses.find((s) => HOOK_POINTS.trampolines!.includes(s.point) && !s.attached);
  if (tracer.netfilterMode() !== 'trampolines' || !failed) return { tracer, statuses };
  tracer.close();
  const next = withKprobes();
  const error = `${TRAMPOLINES_UNATTACHED}: ${failed.error ?? 'not attached'}`;
  return {
    tracer: next,
    statuses: [{ point: 'netfilter trampolines', attached: false, error }, ...next.attachTracepoints()],
  };
}

/** The addon's entries for a mechanism the kernel refused at load ("netfilter trampolines"). */
const REFUSAL = /^netfilter (trampolines|kprobes)$/;
const HOOK_TRACER = /^(fentry|fexit|kprobe|kretprobe)\//;

/**
 * wanted: what this kernel should allow; loaded: what the addon loaded (the next
 * one down when the kernel refused it); points: what attached. The refusals and,
 * when nothing traces the hooks, the points that failed become one line that says
 * what is lost.
 */
export function netfilterTracing(
  wanted: NetfilterMechanism,
  loaded: NetfilterMechanism,
  points: string[],
  unavailable: Unavailable[],
): { traced: NetfilterMechanism; unavailable: Unavailable[] } {
  const needed = HOOK_POINTS[loaded];
  const traced = !needed || needed.every((p) => points.includes(p)) ? loaded : 'none';
  const refusals = unavailable.filter((u) => REFUSAL.test(u.point)).map((u) => u.reason);
  const hookError = unavailable.find((u) => u.point.endsWith('/nf_hook_slow'));
  if (traced === 'none' && hookError)
    refusals.push(`${hookError.point.split('/')[0]}s did not attach: ${hookError.reason}`);
  const rest = unavailable.filter((u) => !REFUSAL.test(u.point) && !(traced === 'none' && HOOK_TRACER.test(u.point)));
  const why = refusals.length ? ` (${refusals.join('; ')})` : '';
  if (traced === 'none' && wanted !== 'none') {
    rest.push({
      point: 'netfilter',
      reason:
        `this kernel has no BPF netfilter links (Linux < 6.4), and neither trampolines nor kprobes on nf_hook_slow ` +
        `could trace the hooks${why}: hooks cannot be named; device, drop and TCP points still work`,
    });
  } else if (traced === 'kprobes' && wanted === 'trampolines') {
    rest.push({ point: 'netfilter', reason: `kprobes trace the hooks, as trampolines could not${why}` });
  }
  return { traced, unavailable: rest };
}
