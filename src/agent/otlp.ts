// --otlp URL: the agent's drop counts as OTLP metrics, and each new kind of drop (with its first packet) as an
// OTLP log record, sent over OTLP/HTTP (JSON) by the OpenTelemetry JS SDK to URL/v1/metrics and URL/v1/logs, as
// OTEL_EXPORTER_OTLP_ENDPOINT is taken.
import type { Counter } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { hostname } from 'node:os';
import { eventLine, type DropEvent, type DropLabels } from './labels.js';

export class OtlpExport {
  private readonly meters: MeterProvider;
  private readonly loggers: LoggerProvider;
  private readonly drops: Counter;
  private readonly bytes: Counter;

  constructor(url: string, intervalMs: number, version: string) {
    const base = url.replace(/\/+$/, '');
    const resource = resourceFromAttributes({
      'service.name': 'pathtrace-agent',
      'service.version': version,
      'host.name': hostname(),
    });
    this.meters = new MeterProvider({
      resource,
      readers: [
        new PeriodicExportingMetricReader({
          exporter: new OTLPMetricExporter({ url: `${base}/v1/metrics` }),
          exportIntervalMillis: intervalMs,
          exportTimeoutMillis: Math.min(intervalMs, 10_000),
        }),
      ],
    });
    const meter = this.meters.getMeter('pathtrace', version);
    this.drops = meter.createCounter('pathtrace.drops', {
      description: 'Packets the kernel dropped, by network namespace, device, stage, hook, reason, rule and protocol',
      unit: '{packet}',
    });
    this.bytes = meter.createCounter('pathtrace.dropped_bytes', {
      description: 'Bytes of the packets counted by pathtrace.drops',
      unit: 'By',
    });
    this.loggers = new LoggerProvider({
      resource,
      processors: [
        new BatchLogRecordProcessor({
          exporter: new OTLPLogExporter({ url: `${base}/v1/logs` }),
          scheduledDelayMillis: intervalMs,
        }),
      ],
    });
  }

  count(labels: DropLabels, packets: number, bytes: number): void {
    this.drops.add(packets, labels);
    this.bytes.add(bytes, labels);
  }

  /** A new kind of drop: a log record with its labels and its first packet, in OpenTelemetry's attribute names. */
  drop(e: DropEvent): void {
    this.loggers.getLogger('pathtrace').emit({
      severityNumber: SeverityNumber.WARN,
      severityText: 'WARN',
      body: eventLine(e),
      attributes: {
        ...Object.fromEntries(Object.entries(e.labels).map(([k, v]) => [`pathtrace.${k}`, v])),
        ...(e.labels.container ? { 'container.name': e.labels.container } : {}),
        ...(e.labels.k8s_pod ? { 'k8s.namespace.name': e.labels.k8s_namespace, 'k8s.pod.name': e.labels.k8s_pod } : {}),
        'network.type': e.family === 6 ? 'ipv6' : 'ipv4',
        'network.transport': e.labels.protocol,
        'source.address': e.src,
        'source.port': e.sport,
        'destination.address': e.dst,
        'destination.port': e.dport,
        'pathtrace.length': e.len,
      },
    });
  }

  /** Sends what is pending, then stops. */
  async close(): Promise<void> {
    await Promise.allSettled([this.meters.shutdown(), this.loggers.shutdown()]);
  }
}
