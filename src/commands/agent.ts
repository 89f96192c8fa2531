// `pathtrace agent`: runs until stopped, counting the drops of every network namespace and serving them to
// Prometheus on --listen (/metrics, /healthz). SIGTERM and SIGINT end it with everything detached; SIGHUP looks
// for new namespaces at once.
import { createServer, type Server } from 'node:http';
import { AgentError, DropAgent } from '../agent/agent.js';
import { eventLine } from '../agent/labels.js';
import type { OtlpExport } from '../agent/otlp.js';
import { checkPrivileges, compileFor, UserError } from './trace.js';
import { packageVersion } from './version.js';

export interface AgentCommandOptions {
  listen: { host: string; port: number };
  /** OTLP/HTTP endpoint (…/v1/metrics and …/v1/logs are appended), or null. */
  otlp: string | null;
  /** --port: only drops of TCP and UDP to or from these; null: all. */
  ports: number[] | null;
  /** --label-ports: each drop series by the port of `ports` it has. */
  labelPorts: boolean;
  /** A tcpdump expression: only the drops it takes; null: all. */
  expression: string | null;
  intervalMs: number;
  maxSeries: number;
  forgetAfterMs: number;
}

const log = (line: string) => process.stderr.write(`pathtrace agent: ${line}\n`);

function serve(agent: DropAgent, o: AgentCommandOptions): Promise<Server> {
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD' }).end();
    } else if (url === '/metrics') {
      agent.metrics.text().then(
        (text) => res.writeHead(200, { 'Content-Type': agent.metrics.contentType }).end(text),
        (e: Error) => res.writeHead(500).end(`${e.message}\n`),
      );
    } else if (url === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('pathtrace agent: /metrics, /healthz\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new UserError(`cannot listen on ${o.listen.host}:${o.listen.port}: ${e.code ?? e.message}`)),
    );
    server.listen(o.listen.port, o.listen.host, () => resolve(server));
  });
}

export async function runAgent(o: AgentCommandOptions): Promise<void> {
  checkPrivileges(true);
  const expression = compileFor(o);
  let agent: DropAgent;
  // The OpenTelemetry SDK is loaded only for --otlp: an agent without it keeps its memory.
  const otlp: OtlpExport | null =
    o.otlp === null ? null : new (await import('../agent/otlp.js')).OtlpExport(o.otlp, o.intervalMs, packageVersion());
  try {
    agent = new DropAgent({
      ports: o.ports,
      expression: expression?.program ?? null,
      labelPorts: o.labelPorts,
      maxSeries: o.maxSeries,
      forgetAfterMs: o.forgetAfterMs,
      version: packageVersion(),
      log,
      onDrop: (e) => {
        log(eventLine(e));
        otlp?.drop(e);
      },
      onCount: otlp ? (labels, packets, bytes) => otlp.count(labels, packets, bytes) : undefined,
    });
  } catch (e) {
    if (e instanceof AgentError) throw new UserError(e.message);
    throw e;
  }
  let server: Server | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await agent.start();
    server = await serve(agent, o);
    log(
      `serving /metrics on ${o.listen.host}:${o.listen.port}${o.otlp ? `, sending OTLP to ${o.otlp}` : ''}, ` +
        `collecting every ${o.intervalMs / 1000} s`,
    );
    let busy = false;
    const tick = async () => {
      if (busy) return; // a slow ruleset reading: the next tick catches up
      busy = true;
      try {
        await agent.scan();
        await agent.collect();
      } catch (e) {
        log(`collecting failed: ${(e as Error).message}`);
      } finally {
        busy = false;
      }
    };
    timer = setInterval(tick, o.intervalMs);
    const hup = () => void tick();
    process.on('SIGHUP', hup);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    process.off('SIGHUP', hup);
    log('stopping: detached');
  } catch (e) {
    if (e instanceof AgentError) throw new UserError(e.message);
    throw e;
  } finally {
    clearInterval(timer);
    server?.close();
    agent.close();
    await otlp?.close();
  }
}
