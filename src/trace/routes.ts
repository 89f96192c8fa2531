// The route lookup's answer for a packet too big for its way out: `ip route get fibmatch` in the traced
// namespace, the FIB entry the kernel's lookup for that packet matches (prefix, gateway, device, MTU). Read when
// the drop is reported, so it may differ from the route the packet took (policy routing by a mark, a route
// changed since): routeAgrees tells, against what the kernel read at the drop.
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import type { TooBig } from '../correlate/journey.js';

const run = promisify(execFile);

/** Lookups running at once at most. */
const MAX_UNDER_WAY = 4;

/** What the packet was: the lookup asks for its addresses, its protocol and ports, and (forwarded) its in-device. */
export interface RouteQuery {
  family: 4 | 6;
  dst: string;
  src: string;
  /** The device it came in on, for a forwarded packet (an input lookup, as the kernel's); null: sent by this host. */
  iif: string | null;
  proto: string;
  sport: number;
  dport: number;
}

/** One FIB entry, as `ip -j route get fibmatch` writes it (the fields pathtrace reads). */
export interface RouteAnswer {
  dst: string;
  gateway?: string;
  dev?: string;
  metrics?: { mtu?: number }[];
}

/** `ip`'s arguments for the lookup; ports only for TCP and UDP (iproute2 takes them with ipproto). */
export function routeArgs(q: RouteQuery, exact = true): string[] {
  const base = ['-j', ...(q.family === 6 ? ['-6'] : []), 'route', 'get', 'fibmatch', q.dst];
  if (!exact) return base;
  const ports = q.proto === 'tcp' || q.proto === 'udp';
  return [
    ...base,
    'from',
    q.src,
    ...(q.iif ? ['iif', q.iif] : []),
    ...(ports ? ['ipproto', q.proto, 'sport', String(q.sport), 'dport', String(q.dport)] : []),
  ];
}

/** The entry from `ip -j route get fibmatch`'s output; null when it has none. */
export function parseRoute(json: string): RouteAnswer | null {
  try {
    const [r] = JSON.parse(json) as RouteAnswer[];
    return r && typeof r.dst === 'string' ? r : null;
  } catch {
    return null;
  }
}

/** The MTU metric of a route (`ip route ... mtu N`), if it has one. */
export const routeMtu = (r: RouteAnswer): number | undefined => r.metrics?.find((m) => m.mtu)?.mtu;

/** A route as `ip route` shows it, its prefix, gateway, device and MTU: "198.18.2.0/24 dev eth-srv". */
export function routeText(r: RouteAnswer): string {
  const mtu = routeMtu(r);
  return `${r.dst}${r.gateway ? ` via ${r.gateway}` : ''}${r.dev ? ` dev ${r.dev}` : ''}${mtu ? ` mtu ${mtu}` : ''}`;
}

/** Whether the lookup led the way the kernel's route at the drop did: its device, and, where that route's MTU
 *  metric gave the MTU, that metric. dev: the out device read at the drop; metricMtu: that route's metric, if it
 *  gave the MTU. */
export function routeAgrees(r: RouteAnswer, dev: string | undefined, metricMtu: number | null): boolean {
  if (dev && r.dev && r.dev !== dev) return false;
  return metricMtu === null || routeMtu(r) === metricMtu;
}

/** A too-big drop takes the lookup's answer (null: none could be read), marked where it differs from the way the
 *  kernel's route gave the packet. */
export function takeRoute(t: TooBig, r: RouteAnswer | null): void {
  t.route = r && routeText(r);
  if (r && !routeAgrees(r, t.dev, t.routeMtu)) t.routeDiffers = true;
}

/** Lookups in one namespace (nsPath "": pathtrace's own), each kept a second for its addresses, in-device and
 *  protocol (not its ports: every connection would cost one), and a few at once: a burst of drops to one destination
 *  costs one, and a flood of them to many costs no more than MAX_UNDER_WAY processes at a time. */
export class RouteLookups {
  private readonly cache = new Map<string, { at: number; answer: Promise<RouteAnswer | null> }>();
  private underWay = 0;

  constructor(
    private readonly nsPath: string,
    private readonly now: () => number = Date.now,
  ) {}

  private argv(args: string[]): [string, string[]] {
    return this.nsPath ? ['nsenter', [`--net=${this.nsPath}`, 'ip', ...args]] : ['ip', args];
  }

  /** The lookup for q: as the kernel would look the packet up; where `ip` refuses that (an input lookup the
   *  reverse-path check fails, an old iproute2 without ports), by its destination alone. */
  get(q: RouteQuery): Promise<RouteAnswer | null> {
    const key = `${q.family} ${q.dst} ${q.src} ${q.iif} ${q.proto}`;
    const hit = this.cache.get(key);
    if (hit && this.now() - hit.at < 1000) return hit.answer;
    // Too many under way: this one is not looked up (its route is null), rather than the output waiting.
    if (this.underWay >= MAX_UNDER_WAY) return Promise.resolve(null);
    if (this.cache.size >= 256) this.cache.clear();
    const ask = async (exact: boolean) => parseRoute((await run(...this.argv(routeArgs(q, exact)))).stdout);
    this.underWay++;
    const answer = ask(true)
      .catch(() => ask(false).catch(() => null))
      .finally(() => this.underWay--);
    this.cache.set(key, { at: this.now(), answer });
    return answer;
  }

  /** The same, waiting for it (the trace's end, when nothing may be left pending). */
  getSync(q: RouteQuery): RouteAnswer | null {
    for (const exact of [true, false]) {
      try {
        const [cmd, args] = this.argv(routeArgs(q, exact));
        return parseRoute(execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
      } catch {
        /* refused: ask more simply, then give up */
      }
    }
    return null;
  }
}
