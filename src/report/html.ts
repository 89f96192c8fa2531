// `pathtrace report`: one self-contained HTML page of one or two traces (inline SVG and CSS, nothing fetched):
// what died where (the funnel of stages, drops over time by reason), each kind of drop with its path through the
// stack, its rule and advice and what tcpdump saw of it, each connection as a ladder; with two hosts' traces,
// their trips drawn across the path between them. Pure: the command reads the files and writes the page.
import type { PacketRecord, ReadyRecord, SummaryRecord } from '../output/records.js';
import { ladder } from '../pictures/ladder.js';
import { packetPath, stageView, type PacketPath } from '../pictures/path.js';
import { esc, funnelSvg, ladderSvg, pathSvg, ratesSvg, tripsSvg } from '../pictures/svg.js';
import {
  deathStage,
  FWD_STAGES,
  RX_STAGES,
  STAGE_LABELS,
  stagesReached,
  TX_STAGES,
  type StageId,
} from '../tui/stages.js';
import { flowText } from '../output/merge.js';
import type { Merged } from './merge.js';

export interface ReportTrace {
  name: string;
  packets: PacketRecord[];
  ready: ReadyRecord | null;
  summary: SummaryRecord | null;
}

/** A kind of drop: the same stage, cause and reason. */
interface DropKind {
  anchor: string;
  path: PacketPath;
  first: PacketRecord;
  packets: PacketRecord[];
}

const MAX_CONNECTIONS = 40;

/** A picture, scrolled sideways on a narrow screen rather than shrunk past reading. */
const fig = (svg: string): string => (svg.startsWith('<svg') ? `<div class="fig">${svg}</div>` : svg);

function dropKinds(t: ReportTrace, prefix: string): DropKind[] {
  const kinds = new Map<string, DropKind>();
  for (const p of t.packets) {
    if (!p.drop) continue;
    const path = packetPath(p);
    const key = `${path.death?.stage}|${path.death?.by}|${path.death?.reason}|${p.direction}`;
    let k = kinds.get(key);
    if (!k) kinds.set(key, (k = { anchor: `${prefix}drop-${kinds.size + 1}`, path, first: p, packets: [] }));
    k.packets.push(p);
  }
  return [...kinds.values()].sort((a, b) => b.packets.length - a.packets.length);
}

function funnel(t: ReportTrace) {
  const counts = new Map<StageId, { reached: number; died: number }>();
  for (const p of t.packets) {
    const v = stageView(p);
    const died = deathStage(v);
    for (const s of stagesReached(v)) {
      const c = counts.get(s) ?? { reached: 0, died: 0 };
      c.reached++;
      if (s === died) c.died++;
      counts.set(s, c);
    }
  }
  return [...RX_STAGES, ...FWD_STAGES, ...TX_STAGES]
    .filter((s) => counts.has(s))
    .map((s) => ({
      label: `${RX_STAGES.includes(s as never) ? 'in' : FWD_STAGES.includes(s as never) ? 'fwd' : 'out'} ${STAGE_LABELS[s]}`,
      ...counts.get(s)!,
    }));
}

function rates(t: ReportTrace): string {
  const drops = t.packets.filter((p) => p.drop);
  if (!drops.length) return '<p>No drops.</p>';
  const t0 = Math.min(...t.packets.map((p) => p.time_us));
  const span = Math.max(1, (Math.max(...t.packets.map((p) => p.time_us)) - t0) / 1e6);
  const binS = Math.max(0.1, span / 30);
  const n = Math.ceil(span / binS) || 1;
  const bins = Array.from({ length: n }, (_, i) => ({ t: i * binS, counts: new Map<string, number>() }));
  const reasons: string[] = [];
  for (const p of drops) {
    const r = p.drop!.reason ?? p.drop!.layer;
    if (!reasons.includes(r)) reasons.push(r);
    const b = bins[Math.min(n - 1, Math.floor((p.time_us - t0) / 1e6 / binS))]!;
    b.counts.set(r, (b.counts.get(r) ?? 0) + 1);
  }
  return ratesSvg(bins, reasons, binS);
}

const tcpdumpSaw = (seen: number, all: number): string =>
  seen === all
    ? `all ${all}`
    : seen === 0
      ? `none of the ${all}: they died before its capture point`
      : `${seen} of ${all} (the others died before its capture point)`;

function dropSection(k: DropKind): string {
  const d = k.first.drop!;
  const seen = k.packets.filter((p) => p.tcpdump).length;
  const advice = d.advice ?? [];
  return `<section class="drop" id="${k.anchor}">
<h3>✗ ${esc(k.path.death?.stage ?? d.layer)}: ${k.packets.length} packet${k.packets.length === 1 ? '' : 's'} ${esc(k.first.direction)} · ${esc(d.reason ?? 'no reason named')}</h3>
<div class="fig wide">${pathSvg(k.path)}</div><div class="fig narrow">${pathSvg(k.path, 3)}</div>
<p class="death">✗ dropped at ${esc(k.path.death?.stage ?? d.layer)} by <code>${esc(k.path.death?.by ?? d.location)}</code></p>
<p class="why">${esc(d.explanation)}</p>
${advice.length ? `<p>What to do:</p><ul>${advice.map((a) => `<li><code>${esc(a)}</code></li>`).join('')}</ul>` : ''}
<p>What tcpdump saw: ${tcpdumpSaw(seen, k.packets.length)}.</p>
</section>`;
}

function connections(t: ReportTrace): string {
  const flows = new Map<string, PacketRecord[]>();
  for (const p of t.packets) flows.set(p.flow, [...(flows.get(p.flow) ?? []), p]);
  const sorted = [...flows.values()].sort((a, b) => Number(b.some((p) => p.drop)) - Number(a.some((p) => p.drop)));
  const shown = sorted.slice(0, MAX_CONNECTIONS);
  return (
    shown
      .map((ps, i) => {
        const l = ladder(ps);
        const dropped = ps.filter((p) => p.drop).length;
        return `<details${i < 5 || dropped ? ' open' : ''}><summary>${esc(`${ps[0]!.proto} ${l.client} ↔ ${l.server}`)} · ${ps.length} packets${dropped ? ` · ✗ ${dropped} dropped` : ''}</summary>${fig(ladderSvg(l))}</details>`;
      })
      .join('\n') +
    (sorted.length > shown.length ? `<p>… and ${sorted.length - shown.length} more connections.</p>` : '')
  );
}

/** The trace's filter as the user gave it, tcpdump's way. */
function filterText(r: ReadyRecord | null): string {
  const f = r?.filter;
  if (!f) return '';
  if (f.expression) return f.expression.text;
  return [
    f.protos.join(' or '),
    f.ports?.length ? `port ${f.ports.join(' or ')}` : '',
    f.hosts.length ? `host ${f.hosts.join(' or ')}` : '',
  ]
    .filter(Boolean)
    .join(' and ');
}

/** Said of a --write file: its records keep where each packet ended, not the steps on the way. */
const NO_STEPS =
  'This trace keeps no steps (a --write file): each packet is drawn from where it ended, the stages before as passed.';

function traceSection(t: ReportTrace, kinds: DropKind[]): string {
  const dropped = t.packets.filter((p) => p.drop).length;
  const ns = t.ready?.netns?.name;
  return `<section class="trace">
<h2>${esc(t.name)}${ns && ns !== t.name ? ` · ${esc(ns)}` : ''}</h2>
<p>${t.packets.length} packets, ${dropped} dropped${filterText(t.ready) ? ` · filter <code>${esc(filterText(t.ready))}</code>` : ''}${t.ready?.started_at ? ` · from ${esc(t.ready.started_at)}` : ''}</p>
${t.packets.length && t.packets.every((p) => !p.steps?.length) ? `<p class="why">${NO_STEPS}</p>\n` : ''}<h3>Where packets went</h3>
${t.packets.length ? fig(funnelSvg(funnel(t))) : '<p>No packets.</p>'}
<h3>Drops over time, by reason</h3>
${fig(rates(t))}
<h3>Drops</h3>
${kinds.length ? kinds.map(dropSection).join('\n') : '<p>None.</p>'}
<h3>Connections</h3>
${connections(t)}
</section>`;
}

function mergedSection(m: Merged): string {
  const parts = m.connections.slice(0, MAX_CONNECTIONS).map((c, i) => {
    const t0 = Math.min(...c.trips.map((x) => x.at));
    const trips = c.trips.map((x) => {
      const p = x.sent ?? x.received!;
      return {
        from: x.from,
        label: p.tcp_flags ? `[${p.tcp_flags}]` : p.proto,
        path: x.path,
        t: (x.at - t0) / 1e6,
      };
    });
    const lost = c.trips.filter((x) => x.path === 'lost-on-path').length;
    return `<details open id="trips-${i + 1}"><summary>${esc(flowText(c.flow))} · ${esc(c.verdict)}${lost ? ` · ✗ ${lost} lost on the path` : ''}</summary>${fig(tripsSvg(m.hosts, trips))}</details>`;
  });
  return `<section class="merged"><h2>Between ${esc(m.hosts[0])} and ${esc(m.hosts[1])}</h2>
<p>Clock: ${m.clock.offsetUs === null ? 'not matched (no packet seen by both)' : `${esc(m.hosts[1])} is ${(m.clock.offsetUs / 1000).toFixed(3)} ms from ${esc(m.hosts[0])}${m.clock.uncertaintyUs !== null ? ` ± ${(m.clock.uncertaintyUs / 1000).toFixed(3)} ms` : ''}`}.</p>
${parts.join('\n') || '<p>No packet went between them.</p>'}</section>`;
}

const CSS = `
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:960px;padding:12px;color:#1b1f24;background:#fff}
h1{font-size:1.5em}h2{border-bottom:2px solid #d0d7de;margin-top:1.6em}h3{margin:1.2em 0 .4em}
code{font:13px ui-monospace,monospace;background:#f3f4f6;padding:1px 4px;border-radius:3px;overflow-wrap:anywhere}
nav ul{padding-left:1.2em}nav a{color:#0550ae}.drop{border-left:4px solid #cf222e;padding:2px 12px;margin:12px 0}
.why{color:#57606a}details{margin:8px 0}summary{cursor:pointer;font-weight:600}
svg{max-width:100%;height:auto;font:12px ui-monospace,monospace}.fig{overflow-x:auto}
.stage{fill:#dafbe1;stroke:#1a7f37}.stage.died{fill:#ffebe9;stroke:#cf222e;stroke-width:2}
.stage.unreached{fill:#f6f8fa;stroke:#8c959f;stroke-dasharray:4 3}.stage-label{font-size:12px}.stage-label.unreached{fill:#8c959f}
.stage-label.died{fill:#cf222e;font-weight:700}.link{stroke:#57606a;stroke-width:1.5}.link.unreached{stroke-dasharray:3 3}
.arrowhead{fill:#57606a}p.death{color:#cf222e;font-weight:600}.death,.cross,.death-stage{fill:#cf222e;font-weight:700}.cross{font-size:16px}
.host{fill:#f6f8fa}.host-name,.time,.axis{fill:#57606a}.end-name{font-weight:700}.life{stroke:#8c959f}
.rung{stroke:#0550ae;stroke-width:1.6}.rung.died{stroke:#cf222e}.rung-label{fill:#1b1f24}
.reached{fill:#54aeff}.died-bar{fill:#cf222e}.value{fill:#1b1f24}
.s0{fill:#cf222e}.s1{fill:#bf8700}.s2{fill:#8250df}.s3{fill:#0969da}.s4{fill:#1a7f37}.s5{fill:#57606a}
.fig.narrow{display:none}
@media (max-width:600px){body{font-size:14px;padding:6px}.fig svg{max-width:none;width:640px}
.fig.wide{display:none}.fig.narrow{display:block}.fig.narrow svg{max-width:100%;width:100%}}
@media print{details>summary{list-style:none}nav{display:none}.drop{break-inside:avoid}}
`;

/** The page. `title` names what it reports. */
export function reportHtml(traces: ReportTrace[], merged: Merged | null, title: string): string {
  const kinds = traces.map((t, i) => dropKinds(t, traces.length > 1 ? `t${i + 1}-` : ''));
  const index = traces
    .flatMap((t, i) =>
      kinds[i]!.map(
        (k) =>
          `<li><a href="#${k.anchor}">${traces.length > 1 ? `${esc(t.name)}: ` : ''}✗ ${esc(k.path.death?.stage ?? '')} — ${esc(k.path.death?.by ?? '')}</a> · ${k.packets.length} packets${k.first.drop?.reason ? ` · ${esc(k.first.drop.reason)}` : ''}</li>`,
      ),
    )
    .join('\n');
  const lost = (merged?.connections.slice(0, MAX_CONNECTIONS) ?? []).flatMap((c, i) => {
    const n = c.trips.filter((x) => x.path === 'lost-on-path').length;
    return n
      ? [
          `<li><a href="#trips-${i + 1}">✗ lost on the path between ${esc(merged!.hosts[0])} and ${esc(merged!.hosts[1])}: ${esc(flowText(c.flow))}</a> · ${n} packets</li>`,
        ]
      : [];
  });
  const summary = [...lost, index].filter(Boolean).join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body><h1>${esc(title)}</h1>
<nav><h2>Summary</h2>${summary ? `<ul>${summary}</ul>` : '<p>No packet was dropped or lost.</p>'}</nav>
${merged ? mergedSection(merged) : ''}
${traces.map((t, i) => traceSection(t, kinds[i]!)).join('\n')}
<script>addEventListener('beforeprint',()=>document.querySelectorAll('details').forEach(d=>d.open=true))</script>
</body></html>
`;
}
