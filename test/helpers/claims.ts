// What a packet record claims must rest on what its steps show: every end-to-end trace is held to it (Pathtrace's
// stop() and done()), so a claim no event supports fails whichever test made the trace. A record that says nothing
// (tcp.saw null, no origin) is never wrong here; a confident one must have its evidence.
import type { PacketRecord, TraceRecord } from '../../src/output/records.js';

/** Layers below TCP: a packet that died there never reached it. */
const BELOW_TRANSPORT = new Set(['xdp', 'tc', 'device', 'qdisc', 'neighbour', 'ip', 'netfilter']);
/** Points where TCP has a packet: its free or consume in TCP, its reset, the application's read. */
const TCP_POINTS = new Set(['tcp_send_reset', 'skb_copy_datagram_iovec']);
const RX_TAP = new Set(['netif_receive_skb']);
const TX_TAP = new Set(['net_dev_start_xmit']);

/** The claims of one packet record that its own steps do not support, in words. */
export function unsupportedClaims(p: PacketRecord): string[] {
  const out: string[] = [];
  const points = p.steps.map((s) => s.point);
  if (p.tcp?.saw === true) {
    const tcpFree = p.steps.some(
      (s) =>
        (s.point === 'kfree_skb' || s.point === 'consume_skb') &&
        /^(tcp_|__tcp_|inet_csk_|inet_twsk_)/.test(s.location ?? ''),
    );
    const answered = p.tcp.reply !== null;
    if (!tcpFree && !answered && !points.some((x) => TCP_POINTS.has(x)))
      out.push('tcp.saw is true, but no TCP point saw it (no free in TCP, no reset, no read, no answer)');
  }
  if (p.drop && BELOW_TRANSPORT.has(p.drop.layer) && p.tcp?.saw === true)
    out.push(`tcp.saw is true for a packet dropped in ${p.drop.layer}, below TCP`);
  if (p.tcpdump) {
    // Passed a device's tap: a receive (the RX tap follows it) or a transmit (the TX tap precedes it); or first seen
    // inside a hook, having come in on a device.
    // A packet GSO cut up passed the tap as its segments (their journeys show it).
    const tapped =
      points.some((x) => RX_TAP.has(x) || TX_TAP.has(x)) ||
      (p.direction !== 'out' && points[0] === 'netfilter') ||
      (p.segments?.length ?? 0) > 0;
    if (!tapped) out.push('tcpdump is true, but it passed no device tap');
    if (!p.tcpdump_devices.length) out.push('tcpdump is true with no device');
  }
  if (p.drop?.layer === 'xdp' && p.tcpdump_devices.length && points.filter((x) => RX_TAP.has(x)).length <= 1)
    out.push('an XDP drop on its one receive is said to have passed the tcpdump tap');
  if (p.origin !== undefined && p.steps.every((s) => s.point === 'kfree_skb' || s.point === 'consume_skb'))
    out.push(`origin ${p.origin} for a packet first seen at its end`);
  if (p.delivery && p.drop && BELOW_TRANSPORT.has(p.drop.layer))
    out.push(`a socket delivery for a packet dropped in ${p.drop.layer}`);
  return out;
}

/** Every packet record's unsupported claims, each with the packet's id. */
export function claimsFailures(records: Pick<TraceRecord, 'type'>[]): string[] {
  return (records as TraceRecord[])
    .filter((r): r is PacketRecord => r.type === 'packet')
    .flatMap((p) => unsupportedClaims(p).map((c) => `packet #${p.id} (${p.proto} ${p.tcp_flags ?? ''}): ${c}`));
}
