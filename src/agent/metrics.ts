// The agent's metrics in Prometheus' terms (prom-client): the drops by their labels, with a bound on how many
// series they make, and what the agent itself went through.
import { Counter, Gauge, Registry } from 'prom-client';
import { labelNames, type DropLabels, type LabelName } from './labels.js';

export interface BuildInfo {
  version: string;
  kernel: string;
  libbpf: string;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private readonly drops: Counter<LabelName>;
  private readonly dropBytes: Counter<LabelName>;
  private readonly unkeyed: Counter;
  private readonly samplesLost: Counter;
  private readonly rulesetErrors: Counter<'netns'>;
  private readonly namespaces: Gauge;
  private readonly overflowed: Counter;
  /** The series there are, by namespace (a namespace gone takes its series with it). */
  private readonly series = new Map<string, Map<string, DropLabels>>();
  private count = 0;
  private readonly names: LabelName[];
  /** Where drops go once the series are at their cap: every label says so. */
  private readonly overflow: DropLabels;

  /** ports: the drop series have a port label (--label-ports). */
  constructor(
    build: BuildInfo,
    private readonly maxSeries: number,
    ports = false,
  ) {
    const registers = [this.registry];
    this.names = labelNames(ports);
    this.overflow = Object.fromEntries(this.names.map((n) => [n, 'overflow'])) as DropLabels;
    this.drops = new Counter({
      name: 'pathtrace_drops_total',
      help: 'Packets the kernel dropped, by network namespace, device, stage, netfilter hook, drop reason, rule and protocol',
      labelNames: this.names,
      registers,
    });
    this.dropBytes = new Counter({
      name: 'pathtrace_dropped_bytes_total',
      help: 'Bytes of the packets counted by pathtrace_drops_total, with the same labels',
      labelNames: this.names,
      registers,
    });
    this.unkeyed = new Counter({
      name: 'pathtrace_drops_unkeyed_total',
      help: 'Drops the kernel counted without their labels: its map of keys was full (they are in no other series)',
      registers,
    });
    this.samplesLost = new Counter({
      name: 'pathtrace_samples_lost_total',
      help: 'New kinds of drop counted but not logged with their first packet: the sample ring was full',
      registers,
    });
    this.rulesetErrors = new Counter({
      name: 'pathtrace_ruleset_read_errors_total',
      help: "Readings of a namespace's ruleset that failed (nft or iptables-save): its drops were not named by rule",
      labelNames: ['netns'],
      registers,
    });
    this.namespaces = new Gauge({
      name: 'pathtrace_watched_namespaces',
      help: 'Network namespaces the agent watches',
      registers,
    });
    this.overflowed = new Counter({
      name: 'pathtrace_series_overflow_total',
      help: 'Drops counted in the overflow series because the series were at --max-series',
      registers,
    });
    new Gauge({
      name: 'pathtrace_build_info',
      help: 'pathtrace version, kernel release and libbpf, as labels; always 1',
      labelNames: ['version', 'kernel', 'libbpf'],
      registers,
    }).set(build, 1);
  }

  /** Adds drops (and their bytes) to the series of these labels, or to the overflow series past the cap: the
   *  labels it counted them by. */
  add(labels: DropLabels, packets: number, bytes: number): DropLabels {
    const id = this.names.map((n) => labels[n]).join('\0');
    let of = this.series.get(labels.netns);
    if (!of?.has(id)) {
      if (this.count >= this.maxSeries) {
        labels = this.overflow;
        this.overflowed.inc(packets);
      } else {
        if (!of) this.series.set(labels.netns, (of = new Map()));
        of.set(id, labels);
        this.count++;
      }
    }
    this.drops.inc(labels, packets);
    this.dropBytes.inc(labels, bytes);
    return labels;
  }

  addUnkeyed(packets: number): void {
    if (packets > 0) this.unkeyed.inc(packets);
  }

  addSamplesLost(n: number): void {
    if (n > 0) this.samplesLost.inc(n);
  }

  rulesetError(netns: string): void {
    this.rulesetErrors.inc({ netns });
  }

  watching(n: number): void {
    this.namespaces.set(n);
  }

  /** Forgets a namespace's series (it is gone), or those of them `only` takes (a container in it is gone). */
  forget(netns: string, only?: (labels: DropLabels) => boolean): void {
    const of = this.series.get(netns);
    if (!of) return;
    for (const [id, labels] of of) {
      if (only && !only(labels)) continue;
      this.drops.remove(labels);
      this.dropBytes.remove(labels);
      of.delete(id);
      this.count--;
    }
    if (only) return;
    this.series.delete(netns);
    this.rulesetErrors.remove({ netns });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
