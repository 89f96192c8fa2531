// What tcpdump shows of a trace and why: the summary's paragraph for a tcpdump user. Pure.
import { bundleDrops } from './story.js';
import type { Summary } from './summary.js';

/** Sentences for a tcpdump user: which packets the capture shows although
 *  they died, and which it does not show although the host handled them. */
export function explain(s: Summary): string[] {
  const out: string[] = [];
  for (const f of s.flows) {
    for (const g of f.groups) {
      // Worth saying only when the capture makes the SYNs look ignored: the answers never reached it.
      const answered = g.replies.SA ?? 0;
      const unseenAnswers = f.groups.some((x) => x.direction === 'out' && x.kind === 'SA' && x.tcpdump < x.count);
      if (
        g.fate !== 'dropped' &&
        g.direction === 'in' &&
        g.kind === 'S' &&
        g.tcpdump > 0 &&
        answered > 0 &&
        unseenAnswers
      ) {
        out.push(
          `tcpdump shows ${g.tcpdump} SYN arriving, and TCP received ${g.tcpSaw === g.count ? 'every one' : g.tcpSaw}: ` +
            `it answered ${answered === g.count ? 'each' : answered} with a SYN-ACK from a request socket in SYN_RECV.`,
        );
      }
    }
    for (const b of bundleDrops(f.groups)) {
      const kinds = b.kinds.join(', ');
      if (b.direction !== 'out' && b.tcpdump > 0) {
        const before = b.place.startsWith('at ') ? 'netfilter' : 'the stack';
        const neverTcp =
          f.proto === 'tcp' && b.kinds.includes('SYN') && b.place.startsWith('at ')
            ? ' TCP never saw them, so it never answered.'
            : '';
        out.push(
          `tcpdump shows ${b.tcpdump} ${kinds} arriving: it captures them at the device, before ${before}. ` +
            `They were dropped afterwards, ${b.place.replace(/^in (\w+) \((.*)\)$/, 'in the $1 layer ($2)')}${b.place.startsWith('at ') ? ` (${b.reason})` : ''}.${neverTcp}`,
        );
      } else if (b.direction === 'out' && b.tcpdump === 0) {
        out.push(
          `tcpdump shows none of the ${b.count} ${kinds} sent by this host: they were dropped ${b.place}` +
            `${b.place.startsWith('at ') ? ` (${b.reason})` : ''}, before the device where tcpdump captures.`,
        );
      }
    }
  }
  return out;
}
