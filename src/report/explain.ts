// What tcpdump shows of a trace and why: the summary's paragraph for a tcpdump user. Pure.
import { bundleDrops, kindName, type DropBundle } from './story.js';
import type { FlowSummary, Summary } from './summary.js';

type Counts = Record<string, number>;

/** One thing a connection shows a tcpdump user: connections that show it alike say it once, their counts summed.
 *  say() gets the sums and " over N connections" (or ""). */
interface Finding {
  key: string;
  counts: Counts;
  say: (n: Counts, over: string) => string;
}

/** Sentences for a tcpdump user: which packets the capture shows although
 *  they died, and which it does not show although the host handled them. */
export function explain(s: Summary): string[] {
  const said = new Map<string, Finding & { flows: Set<string> }>();
  for (const f of s.flows) {
    for (const x of findings(f)) {
      const had = said.get(x.key);
      if (!had) said.set(x.key, { ...x, counts: { ...x.counts }, flows: new Set([f.flow]) });
      else {
        for (const [k, v] of Object.entries(x.counts)) had.counts[k] = (had.counts[k] ?? 0) + v;
        had.flows.add(f.flow);
      }
    }
  }
  return [...said.values()].map((x) => x.say(x.counts, x.flows.size > 1 ? ` over ${x.flows.size} connections` : ''));
}

function findings(f: FlowSummary): Finding[] {
  const out: Finding[] = [];
  // Worth saying only when the capture makes the SYNs look ignored: the answers never reached it.
  const unseenAnswers = f.groups.some((x) => x.direction === 'out' && x.kind === 'SA' && x.tcpdump < x.count);
  for (const g of f.groups) {
    const answered = g.replies.SA ?? 0;
    if (
      g.fate !== 'dropped' &&
      g.direction === 'in' &&
      g.kind === 'S' &&
      g.tcpdump > 0 &&
      answered > 0 &&
      unseenAnswers
    )
      out.push({
        key: 'syn answered',
        counts: { tcpdump: g.tcpdump, count: g.count, tcpSaw: g.tcpSaw, answered },
        say: (n, over) =>
          `tcpdump shows ${n.tcpdump} SYN arriving${over}, and TCP received ${n.tcpSaw === n.count ? 'every one' : n.tcpSaw}: ` +
          `it answered ${n.answered === n.count ? 'each' : n.answered} with a SYN-ACK from a request socket in SYN_RECV.`,
      });
  }
  // What netfilter sent in answer (a REJECT rule's RST or ICMP error), by kind.
  const answers: Counts = {};
  for (const g of f.groups)
    if (g.direction === 'out' && g.origin === 'netfilter')
      answers[kindName(g.kind)] = (answers[kindName(g.kind)] ?? 0) + g.count;
  for (const b of bundleDrops(f.groups)) {
    const kinds = b.kinds.join(', ');
    const where = `${b.place.replace(/^in (\w+) \((.*)\)$/, 'in the $1 layer ($2)')}${b.place.startsWith('at ') && b.reason ? ` (${b.reason})` : ''}`;
    if (b.direction !== 'out' && b.tcpdump > 0) {
      const before = b.place.startsWith('at ') ? 'netfilter' : 'the stack';
      const answer = answerClause(f, b, answers);
      out.push({
        key: `in|${kinds}|${where}|${answer.key}`,
        counts: { tcpdump: b.tcpdump, count: b.count, answered: b.answered, ...answer.counts },
        say: (n, over) =>
          `tcpdump shows ${n.tcpdump} ${kinds} arriving${over}: it captures them at the device, before ${before}. ` +
          `They were dropped afterwards, ${where}.${answer.say(n)}`,
      });
    } else if (b.direction === 'in' && b.tcpdump === 0) {
      // Dropped before the receive tap: by XDP, or before the device handed it up (a full backlog).
      out.push({
        key: `in-unseen|${kinds}|${where}`,
        counts: { count: b.count },
        say: (n, over) =>
          `tcpdump shows none of the ${n.count} ${kinds} that arrived${over}: they were dropped ${where}, ` +
          `before the point where tcpdump captures.`,
      });
    } else if (b.direction === 'out' && b.tcpdump === 0) {
      out.push({
        key: `out|${kinds}|${where}`,
        counts: { count: b.count },
        say: (n, over) =>
          `tcpdump shows none of the ${n.count} ${kinds} sent by this host${over}: they were dropped ${where}, ` +
          `before the device where tcpdump captures.`,
      });
    }
  }
  return out;
}

/** What became of an answer to packets netfilter dropped: a REJECT rule answered for TCP (what it sent, as the
 *  flow shows it), or TCP, which never saw a SYN dropped before it, never answered. */
function answerClause(
  f: FlowSummary,
  b: DropBundle,
  answers: Counts,
): { key: string; counts: Counts; say: (n: Counts) => string } {
  const none = { key: '', counts: {}, say: () => '' };
  if (!b.place.startsWith('at ')) return none;
  const tcp = f.proto === 'tcp' && b.direction === 'in';
  if (b.answered > 0) {
    const sent = Object.keys(answers);
    const counts = Object.fromEntries(sent.map((k) => [`sent ${k}`, answers[k]!]));
    return {
      key: `answered|${sent.join(',')}|${tcp}`,
      counts,
      say: (n) => {
        const which = n.answered === n.count ? 'each' : `${n.answered} of them`;
        const what = sent.length ? sent.map((k) => `${k} ×${n[`sent ${k}`]}`).join(', ') : 'an RST or ICMP error';
        return tcp
          ? ` TCP never saw them: the firewall answered ${which} for it, with ${what} from a REJECT rule.`
          : ` The firewall answered ${which}, with ${what} from a REJECT rule.`;
      },
    };
  }
  if (tcp && b.kinds.includes('SYN'))
    return { ...none, key: 'unanswered', say: () => ' TCP never saw them, so it never answered.' };
  return none;
}
