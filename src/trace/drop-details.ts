// What the session adds to a drop when it is reported, from the traced namespace as it is then: who listens where a
// listen queue overflowed, what on the device dropped it (XDP, tc), the route of a packet too big for its way out,
// and the commands to run next with this packet's values. Read once per drop site, not per packet where it can be.
import { atDeviceRx } from '../correlate/points.js';
import type { DeviceNames, Journey } from '../correlate/journey.js';
import { tooBigWhere } from '../correlate/drop-reasons.js';
import { dropAdvice, type AdviceContext } from '../report/reasons.js';
import { protoName } from '../report/summary.js';
import { deviceHookDrop, dropSite, type DevicePrograms } from './device-programs.js';
import { LISTENER_FILES, listenersOf, type Listener } from './listeners.js';
import { native } from './native.js';
import { RouteLookups, takeRoute, type RouteAnswer, type RouteQuery } from './routes.js';

export class DropDetails {
  /** Who listens where listen queues overflowed, by address and port: read when the first such drop is reported. */
  private readonly listeners = new Map<string, Listener[] | undefined>();
  private readonly routes: RouteLookups;

  /** nsPath: the namespace's file ("" = our own); prefix: how the user runs a command there. */
  constructor(
    private readonly nsPath: string,
    private readonly prefix: string,
    private readonly devices: DeviceNames,
    private readonly programs: DevicePrograms,
  ) {
    this.routes = new RouteLookups(nsPath);
  }

  /** Whether j's drop waits for its route before it is reported (a packet too big for its way out). */
  needsRoute(j: Journey): boolean {
    return j.drop?.tooBig !== undefined;
  }

  /** The route lookup's answer for j's too-big drop; take it with takeRoute once it is still wanted. */
  route(j: Journey): Promise<RouteAnswer | null> {
    return this.routes.get(routeQuery(j, this.devices));
  }

  /** The answer taken into j's drop (now: looked up at once, at the trace's end), with its out device's name. */
  takeRoute(j: Journey, r: RouteAnswer | null | 'now'): void {
    const t = j.drop!.tooBig!;
    if (t.outDev) t.dev = this.devices.name(t.outDev);
    takeRoute(t, r === 'now' ? this.routes.getSync(routeQuery(j, this.devices)) : r);
  }

  /** The rest of j's drop, as it is reported: who listens, what on the device dropped it, the advice. */
  complete(j: Journey): void {
    const d = j.drop;
    if (!d) return;
    if (d.reason === 'TCP_LISTEN_OVERFLOW') d.listening = this.listenersFor(j);
    const dev = freedOn(j);
    const site = dev ? dropSite(d) : null;
    if (dev && site) {
      const name = this.devices.name(dev);
      d.device = deviceHookDrop(d, name, this.programs.on(dev, name, site)) ?? undefined;
    }
    d.advice = dropAdvice(d, this.adviceContext(j, dev));
  }

  /** The listening sockets (and their processes) a SYN the listener had no room for came to; undefined when the
   *  namespace cannot be read any more. */
  private listenersFor(j: Journey): Listener[] | undefined {
    const { dst, dport } = j.translated ?? j;
    const key = `${dst} ${dport}`;
    if (!this.listeners.has(key)) {
      let found: Listener[] | undefined;
      try {
        found = listenersOf(native().readInNetns(this.nsPath, LISTENER_FILES), dst, dport);
      } catch {
        found = undefined; // the namespace is gone: who listened is not known
      }
      this.listeners.set(key, found);
    }
    return this.listeners.get(key);
  }

  /** A dropped packet's values for its advice (freed: the device it was freed on). */
  private adviceContext(j: Journey, freed: number | undefined): AdviceContext {
    return {
      proto: protoName(j.proto, j.family),
      src: j.src,
      dst: j.dst,
      sport: j.sport,
      dport: j.dport,
      dev: freed ? this.devices.name(freed) : null,
      prefix: this.prefix,
    };
  }
}

/** The device a packet was freed on: its last step's that names one, else its route's. */
function freedOn(j: Journey): number | undefined {
  return [...j.steps].reverse().find((s) => s.ifindex)?.ifindex ?? j.route?.outDev ?? j.route?.inDev;
}

/** The route lookup for a too-big drop's packet: as the kernel looked it up, forwarded from the device it came in
 *  on, or sent by this host. */
function routeQuery(j: Journey, devices: DeviceNames): RouteQuery {
  const forwarded = tooBigWhere(j.drop!.location) === 'forwarded';
  const rx = j.steps.find((s) => atDeviceRx(s.point))?.ifindex;
  const inDev = rx ?? j.steps.find((s) => s.in)?.in;
  return {
    family: j.family,
    dst: j.dst,
    src: j.src,
    iif: forwarded && inDev ? devices.name(inDev) : null,
    proto: protoName(j.proto, j.family),
    sport: j.sport,
    dport: j.dport,
  };
}
