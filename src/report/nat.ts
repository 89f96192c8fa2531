// A NAT rewrite of a packet in words: which end it changed, to what, and who did (the rule, its candidates, or
// conntrack). Pure.
import { endpoint } from '../correlate/flows.js';
import type { NatRewrite } from '../correlate/journey.js';

export type RewriteFacts = Pick<NatRewrite, 'hook' | 'from' | 'to' | 'packet' | 'reply' | 'by' | 'rule' | 'why'>;

/** "198.18.1.1:40000 → 198.18.2.2:8080" (ports: the protocol has them). */
export function tupleText(t: NatRewrite['to'], family: number, ports: boolean): string {
  return ports ? `${endpoint(t.src, t.sport, family)} → ${endpoint(t.dst, t.dport, family)}` : `${t.src} → ${t.dst}`;
}

/** "destination rewritten to 198.18.2.2:8080" (ports: the protocol has them). */
export function rewriteWhat(r: Pick<NatRewrite, 'from' | 'to'>, family: number, ports: boolean): string {
  const at = (a: string, p: number) => (ports ? endpoint(a, p, family) : a);
  // Without ports (ICMP) only the addresses are told: an error's ports are those of the packet it quotes.
  const dst = r.from.dst !== r.to.dst || (ports && r.from.dport !== r.to.dport);
  const src = r.from.src !== r.to.src || (ports && r.from.sport !== r.to.sport);
  const parts = [
    ...(dst ? [`destination rewritten to ${at(r.to.dst, r.to.dport)}`] : []),
    ...(src ? [`${dst ? '' : 'source rewritten '}to ${at(r.to.src, r.to.sport)}`] : []),
  ];
  return dst && src ? `${parts[0]} and source ${parts[1]}` : (parts[0] ?? 'rewritten');
}

/** "by rule iptables -t nat -A ... (table ip nat chain PREROUTING, iptables-nft; found by counters+match)", "by
 *  conntrack: ...", or what is known when no rule can be named. */
export function rewriteWho(r: RewriteFacts): string {
  const a = r.rule;
  const where =
    a && `table ${a.family} ${a.table} chain ${a.chain}, ${a.source}${a.owner ? `, managed by ${a.owner}` : ''}`;
  if (r.by === 'conntrack') {
    if (r.why) return `by conntrack (${r.why})`;
    return r.reply
      ? "by conntrack (the reply: the connection's NAT undone; NAT rules see only its first packet)"
      : 'by conntrack (a later packet of the connection; NAT rules see only its first)';
  }
  if (a?.rule) return `by rule ${a.rule.text} (${where}; found by ${a.rule.found})`;
  const candidates = a?.candidates?.length ? `; candidates: ${a.candidates.join(' | ')}` : '';
  if (a && r.by === 'rule')
    return `by a rule of ${where}, which one is a guess (${r.why ?? 'the evidence names none'})${candidates}`;
  if (a) return `by a rule or by conntrack, a guess (${r.why ?? 'the evidence names none'})${candidates}`;
  return `by what is not known: ${r.why ?? 'the ruleset could not be read'}`;
}

/** "NAT at PRE_ROUTING: destination rewritten to 198.18.2.2:8080 by rule ...". */
export function rewriteStory(r: RewriteFacts, family: number, ports: boolean): string {
  return `NAT at ${r.hook}: ${rewriteWhat(r, family, ports)} ${rewriteWho(r)}`;
}
