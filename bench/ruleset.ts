// What a large ruleset costs pathtrace (issue "Right answers on real hosts"): a kube-proxy-sized
// iptables-nft ruleset in the traced namespace, beside an empty one, in the same run. Per round:
// time to ready, CPU of pathtrace and its children (nft, iptables-save) while idle, and the time from
// a connection refused by kube-proxy's "has no endpoints" REJECT (the packet's time) to the record naming the rule.
import { readFileSync } from 'node:fs';
import { Lab } from '../src/lab/lab.js';
import { startPathtrace } from './traced.js';
import { emptyService, kubeProxyRuleset, type KubeProxyShape } from '../test/fixtures/rulesets/kube-proxy.js';

/** 830 Services of 2 endpoints and 20 without: 6,683 rules, the size that cost 65 % of a core before. */
export const KUBE_PROXY_SHAPE: KubeProxyShape = { services: 830, endpoints: 2, empty: 20 };
const IDLE_S = 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU seconds of a process and of its children it has waited for. */
function cpuSeconds(pid: number): number {
  const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1];
  if (rest === undefined) throw new Error(`/proc/${pid}/stat: no ") " after the command name`);
  const f = rest.split(' ');
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
}

interface RulesetRound {
  rules: number;
  readyMs: number;
  idleCpuPct: number;
  attributionMs: number | null;
  rule: string | null;
}

async function round(kubeProxy: boolean): Promise<RulesetRound> {
  const lab = new Lab();
  try {
    const srv = lab.server.netns;
    let rules = 0;
    if (kubeProxy) {
      const rs = kubeProxyRuleset(KUBE_PROXY_SHAPE);
      lab.exec(srv, 'iptables-restore', [], rs.text);
      rules = rs.rules;
    }
    // Service addresses are routed out of the server's device, as a node routes them.
    lab.ip(srv, 'route', 'add', '198.19.0.0/16', 'dev', lab.server.ifname);
    const { child, readyMs, output } = await startPathtrace(['--netns', srv, '--port', '80']);
    await sleep(1000); // the first reading's tail and the start-up settle
    const cpu0 = cpuSeconds(child.pid!);
    await sleep(IDLE_S * 1000);
    const idleCpuPct = ((cpuSeconds(child.pid!) - cpu0) / IDLE_S) * 100;
    // A connection to a Service without endpoints: rejected in filter OUTPUT → KUBE-SERVICES.
    const svc = kubeProxy ? emptyService(KUBE_PROXY_SHAPE) : { ip: '198.19.255.1', port: 80 };
    if (!kubeProxy)
      lab.exec(srv, 'iptables', ['-A', 'OUTPUT', '-d', svc.ip, '-p', 'tcp', '--dport', '80', '-j', 'REJECT']);
    const t0 = Date.now();
    const client = lab.connect('tcp', svc.ip, svc.port, 500, lab.server);
    let attributionMs: number | null = null;
    let rule: string | null = null;
    while (Date.now() - t0 < 5000) {
      const rec = output()
        .split('\n')
        .filter((l) => l.includes('"type":"packet"'))
        .map((l) => JSON.parse(l))
        .find((p) => p.fate === 'dropped');
      if (rec) {
        // From the packet's own time (it was dropped as it started) to its record, named.
        attributionMs = Date.now() - rec.time_us / 1000;
        rule = rec.drop.rule?.text ?? (rec.drop.candidates ? `guess: ${rec.drop.candidates.join(' | ')}` : null);
        break;
      }
      await sleep(5);
    }
    await client;
    child.kill('SIGINT');
    await new Promise((r) => child.on('exit', r));
    return { rules, readyMs, idleCpuPct, attributionMs, rule };
  } finally {
    lab.destroy();
  }
}

function median(xs: number[]): number {
  const m = [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  if (m === undefined) throw new Error('median of no rounds');
  return m;
}

/** Rounds of both, interleaved; the lines to print. */
export async function rulesetBench(rounds: number): Promise<string[]> {
  const results: Record<'empty' | 'kube', RulesetRound[]> = { empty: [], kube: [] };
  for (let r = 1; r <= rounds; r++) {
    for (const kube of r % 2 ? [false, true] : [true, false]) {
      const x = await round(kube);
      results[kube ? 'kube' : 'empty'].push(x);
      process.stderr.write(
        `ruleset round ${r}/${rounds} ${kube ? `kube-proxy (${x.rules} rules)` : 'empty'}: ready ${x.readyMs} ms, ` +
          `idle CPU ${x.idleCpuPct.toFixed(1)} %, attribution ${x.attributionMs === null ? '-' : x.attributionMs.toFixed(0)} ms: ${x.rule}\n`,
      );
    }
  }
  const lines = [
    `large ruleset (${rounds} rounds, median; idle over ${IDLE_S} s; CPU of pathtrace and its children, % of one core):`,
  ];
  for (const [label, xs] of [
    ['empty ruleset', results.empty],
    [`kube-proxy, ${results.kube[0]?.rules} rules`, results.kube],
  ] as const) {
    const att = xs.map((x) => x.attributionMs).filter((x): x is number => x !== null);
    lines.push(
      `  ${label.padEnd(26)} ready ${median(xs.map((x) => x.readyMs))} ms · idle CPU ${median(xs.map((x) => x.idleCpuPct)).toFixed(1)} % · ` +
        `attribution ${att.length ? `${median(att).toFixed(0)} ms` : 'none'} (${att.length}/${xs.length} named: ${xs[0]?.rule})`,
    );
  }
  lines.push('  targets with the kube-proxy ruleset: idle CPU < 2 %, ready < 1500 ms, attribution < 1000 ms');
  return lines;
}
