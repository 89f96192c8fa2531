// Labs where a packet is too big for its way out: a router whose link toward the server is narrower than the
// client's, a client whose firewall drops the ICMP errors telling it so, a client whose marked packets take a
// narrower route than its socket's. Used by the e2e tests, the kernel matrix and the recorded fixture.
import type { Lab } from '../../src/lab/lab.js';

/** The MTU of the narrow way. */
export const NARROW_MTU = 1280;
/** Bytes of TCP data a client sends: one segment of 1400, more than the narrow way takes with any headers. */
export const BIG_DATA = 'x'.repeat(1400);

/** The router's link toward the server, its end only, narrowed to NARROW_MTU: as a link further on would be. With
 *  both ends narrowed, the server's SYN-ACK would announce an MSS of 1240, and no segment of the client's would be
 *  too big. */
export function narrowTowardServer(lab: Lab): void {
  lab.ip(lab.router!.netns, 'link', 'set', lab.router!.toServer.ifname, 'mtu', String(NARROW_MTU));
}

/** A firewall on the client that drops what tells it the MTU (ICMP fragmentation needed, ICMPv6 packet too big): a
 *  path MTU black hole. */
export function dropTooBigIcmp(lab: Lab, family: 4 | 6): void {
  const rule =
    family === 4
      ? ['iptables', '-A', 'INPUT', '-p', 'icmp', '--icmp-type', 'fragmentation-needed', '-j', 'DROP']
      : ['ip6tables', '-A', 'INPUT', '-p', 'icmpv6', '--icmpv6-type', 'packet-too-big', '-j', 'DROP'];
  lab.exec(lab.client.netns, rule[0]!, rule.slice(1));
}

/** The client's TCP to port, marked in mangle OUTPUT and so rerouted (ip rule fwmark) by a route of NARROW_MTU,
 *  after its socket's route (MTU 1500) sized the segment: the kernel refuses to fragment it on this host. */
export function rerouteMarked(lab: Lab, family: 4 | 6, port: number): void {
  const c = lab.client.netns;
  const ip = family === 6 ? ['-6'] : [];
  lab.exec(c, family === 6 ? 'ip6tables' : 'iptables', [
    ...['-t', 'mangle', '-A', 'OUTPUT', '-p', 'tcp', '--dport', String(port), '-j', 'MARK', '--set-mark', '1'],
  ]);
  lab.ip(c, ...ip, 'rule', 'add', 'fwmark', '1', 'table', '100');
  const gw = family === 6 ? lab.router!.toClient.v6 : lab.router!.toClient.v4;
  lab.ip(
    c,
    ...ip,
    'route',
    'add',
    'default',
    'via',
    gw,
    'dev',
    lab.client.ifname,
    'mtu',
    String(NARROW_MTU),
    'table',
    '100',
  );
}
