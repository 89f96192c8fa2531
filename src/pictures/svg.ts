// The pictures as inline SVG for the HTML report: a packet's path through the stack, a connection's ladder, the
// funnel of stages, drops over time by reason, two hosts' trips. Hand-drawn rather than by a chart library: they
// are a few bars and arrows, print as vectors, and keep the page small and free of script. Pure.
import type { Ladder } from './ladder.js';
import type { PacketPath } from './path.js';

export const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const svg = (w: number, h: number, body: string, title: string): string =>
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="100%" role="img" aria-label="${esc(title)}">` +
  `<title>${esc(title)}</title>${body}</svg>`;

const text = (x: number, y: number, s: string, cls = '', anchor = 'start'): string =>
  `<text x="${x}" y="${y}" text-anchor="${anchor}"${cls ? ` class="${cls}"` : ''}>${esc(s)}</text>`;

/** The path: a box per stage, in rows of `perRow` (five on a wide page, three on a phone's), linked by arrows; the
 *  one it died at marked, those after dashed (what dropped it is the page's text, which wraps). */
export function pathSvg(p: PacketPath, perRow = 5): string {
  const bw = 128,
    bh = 34,
    gap = 24;
  const rows = Math.ceil(p.stages.length / perRow);
  const h = rows * (bh + 22) - 16;
  const w = perRow * bw + (perRow - 1) * gap + 4;
  let body = '';
  p.stages.forEach((s, i) => {
    const x = 2 + (i % perRow) * (bw + gap),
      y = 4 + Math.floor(i / perRow) * (bh + 22);
    body += `<rect x="${x}" y="${y}" width="${bw}" height="${bh}" rx="6" class="stage ${s.state}"/>`;
    body += text(x + bw / 2, y + 22, `${s.state === 'died' ? '✗ ' : ''}${s.label}`, `stage-label ${s.state}`, 'middle');
    if (i + 1 < p.stages.length) {
      const next = p.stages[i + 1]!;
      const cls = next.state === 'unreached' ? 'link unreached' : 'link';
      if ((i + 1) % perRow)
        body += `<line x1="${x + bw}" y1="${y + bh / 2}" x2="${x + bw + gap - 4}" y2="${y + bh / 2}" class="${cls}" marker-end="url(#arrow)"/>`;
      else
        body += `<path d="M${x + bw / 2} ${y + bh} v8 H${2 + bw / 2} v${22 - 12}" class="${cls}" fill="none" marker-end="url(#arrow)"/>`;
    }
  });
  return svg(
    w,
    h,
    MARKERS + body,
    `the packet's path through the stack${p.death ? `, dropped at ${p.death.stage}` : ''}`,
  );
}

const MARKERS =
  '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">' +
  '<path d="M0 0 L10 5 L0 10 z" class="arrowhead"/></marker></defs>';

/** A rung's label above it, from its sender's lifeline inwards: a long one runs along the arrow, never back over
 *  the lifeline or the times. */
const senderLabel = (from: number, y: number, rightwards: boolean, label: string): string =>
  text(rightwards ? from + 8 : from - 8, y - 4, label, 'rung-label', rightwards ? 'start' : 'end');

/** The ladder: client and server as lifelines, this host's stretch between them shaded, a rung per packet from
 *  its sender as far as it went. */
export function ladderSvg(l: Ladder, max = 80): string {
  const rungs = l.rungs.slice(0, max);
  const left = 150,
    right = 690,
    top = 46,
    step = 30;
  const h = top + rungs.length * step + (l.rungs.length > max ? 24 : 8);
  const hostL = left + (right - left) * 0.15,
    hostR = right - (right - left) * 0.15;
  let body = `<rect x="${hostL}" y="${top - 14}" width="${hostR - hostL}" height="${h - top + 10}" class="host"/>`;
  body += text(left, 16, l.client, 'end-name', 'middle') + text(right, 16, l.server, 'end-name', 'middle');
  body += text((hostL + hostR) / 2, 30, 'this host', 'host-name', 'middle');
  body += `<line x1="${left}" y1="22" x2="${left}" y2="${h}" class="life"/><line x1="${right}" y1="22" x2="${right}" y2="${h}" class="life"/>`;
  rungs.forEach((r, i) => {
    const y = top + i * step + 12;
    const from = r.dir === 'right' ? left : right;
    // Died: where its stage is on the way through this host; left it: the host's edge; else the far end.
    const to = r.dir === 'right' ? hostL + (right - hostL) * r.reach : hostR - (hostR - left) * r.reach;
    const end = r.died ? to : r.beyond ? (r.dir === 'right' ? hostR : hostL) : r.dir === 'right' ? right : left;
    body += text(4, y + 4, `+${r.t.toFixed(3)}s`, 'time');
    body += `<line x1="${from}" y1="${y}" x2="${end}" y2="${y}" class="rung${r.died ? ' died' : ''}"${r.died ? '' : ' marker-end="url(#arrow)"'}/>`;
    const label = `${r.label}${r.retransmit ? ` retransmit ${r.retransmit}` : ''}${r.tcpdump ? '' : ' · tcpdump ✗'}`;
    body += senderLabel(from, y, r.dir === 'right', label);
    if (r.died) {
      body += text(end, y + 5, '✗', 'cross', 'middle');
      body += text(
        r.dir === 'right' ? end + 8 : end - 8,
        y + 4,
        r.death?.stage ?? '',
        'death-stage',
        r.dir === 'right' ? 'start' : 'end',
      );
    }
  });
  if (l.rungs.length > max) body += text(4, h - 6, `… ${l.rungs.length - max} more packets`, 'time');
  return svg(right + 60, h, MARKERS + body, `ladder of ${l.client} and ${l.server}`);
}

/** Bars: per stage how many packets reached it, the part that died there in red. */
export function funnelSvg(stages: { label: string; reached: number; died: number }[]): string {
  const max = Math.max(1, ...stages.map((s) => s.reached));
  const bar = 20,
    labelW = 130,
    w = 700;
  let body = '';
  stages.forEach((s, i) => {
    const y = 4 + i * (bar + 6);
    const len = ((w - labelW - 170) * s.reached) / max;
    const dead = ((w - labelW - 170) * s.died) / max;
    body += text(labelW - 8, y + 15, s.label, 'axis', 'end');
    body += `<rect x="${labelW}" y="${y}" width="${Math.max(len, s.reached ? 1 : 0)}" height="${bar}" class="reached"/>`;
    if (s.died)
      body += `<rect x="${labelW + len - dead}" y="${y}" width="${Math.max(dead, 1)}" height="${bar}" class="died-bar"/>`;
    body += text(labelW + len + 6, y + 15, `${s.reached}${s.died ? ` · ✗ ${s.died} died` : ''}`, 'value');
  });
  return svg(w, stages.length * (bar + 6) + 6, body, 'packets reaching each stage, and dying there');
}

/** Stacked bars of drops per time bin, by reason; a legend below. */
export function ratesSvg(bins: { t: number; counts: Map<string, number> }[], reasons: string[], binS: number): string {
  const w = 700,
    h = 180,
    left = 40,
    bottom = 150;
  const max = Math.max(1, ...bins.map((b) => [...b.counts.values()].reduce((x, y) => x + y, 0)));
  const bw = (w - left - 10) / Math.max(1, bins.length);
  let body = `<line x1="${left}" y1="${bottom}" x2="${w - 6}" y2="${bottom}" class="life"/>`;
  body += text(left - 6, 14, String(max), 'axis', 'end') + text(left - 6, bottom, '0', 'axis', 'end');
  bins.forEach((b, i) => {
    let y = bottom;
    reasons.forEach((r, k) => {
      const n = b.counts.get(r) ?? 0;
      if (!n) return;
      const hh = ((bottom - 10) * n) / max;
      y -= hh;
      body += `<rect x="${left + i * bw + 1}" y="${y}" width="${Math.max(1, bw - 2)}" height="${hh}" class="series s${k % 6}"><title>${esc(`${r}: ${n} at +${b.t.toFixed(1)}s`)}</title></rect>`;
    });
  });
  body +=
    text(left, bottom + 14, '+0s', 'axis') +
    text(w - 6, bottom + 14, `+${(bins.length * binS).toFixed(1)}s`, 'axis', 'end');
  let legend = '';
  let x = left;
  reasons.forEach((r, k) => {
    legend +=
      `<rect x="${x}" y="${h - 12}" width="10" height="10" class="series s${k % 6}"/>` + text(x + 14, h - 3, r, 'axis');
    x += 24 + r.length * 7;
  });
  return svg(w, h, body + legend, 'drops over time, by reason');
}

/** Two hosts' trips of a connection: a rung per trip from its sender, ✗ where it was lost or dropped. */
export function tripsSvg(
  hosts: [string, string],
  trips: { from: 0 | 1; label: string; path: string; t: number }[],
  max = 80,
): string {
  const left = 150,
    right = 690,
    top = 40,
    step = 30;
  const shown = trips.slice(0, max);
  const h = top + shown.length * step + 8;
  let body = text(left, 16, hosts[0], 'end-name', 'middle') + text(right, 16, hosts[1], 'end-name', 'middle');
  body += text((left + right) / 2, 30, 'the path between', 'host-name', 'middle');
  body += `<line x1="${left}" y1="22" x2="${left}" y2="${h}" class="life"/><line x1="${right}" y1="22" x2="${right}" y2="${h}" class="life"/>`;
  shown.forEach((r, i) => {
    const y = top + i * step + 12;
    const [from, to] = r.from === 0 ? [left, right] : [right, left];
    const stop =
      r.path === 'lost-on-path'
        ? (left + right) / 2
        : r.path === 'dropped-at-sender' || r.path === 'not-sent'
          ? from + (to - from) * 0.08
          : r.path === 'dropped-at-receiver'
            ? from + (to - from) * 0.95
            : to;
    const died = stop !== to;
    body += text(4, y + 4, `+${r.t.toFixed(3)}s`, 'time');
    body += `<line x1="${from}" y1="${y}" x2="${stop}" y2="${y}" class="rung${died ? ' died' : ''}"${died ? '' : ' marker-end="url(#arrow)"'}/>`;
    body += senderLabel(from, y, r.from === 0, r.label);
    if (died) {
      body += text(stop, y + 5, '✗', 'cross', 'middle');
      body += text(
        stop + (r.from === 0 ? 8 : -8),
        y + 4,
        r.path.replace(/-/g, ' '),
        'death-stage',
        r.from === 0 ? 'start' : 'end',
      );
    }
  });
  return svg(right + 60, h, MARKERS + body, `trips between ${hosts[0]} and ${hosts[1]}`);
}
