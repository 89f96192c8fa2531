// `pathtrace demo`: the source articles' experiments, in a lab of namespaces
// that the demo creates and removes (also on Ctrl-C).
import { across } from './across.js';
import { checkPrivileges, trace, UserError, usesTui } from './trace.js';
import { Lab } from '../lab/lab.js';
import { NGINX_BIN, startNginx, type Nginx } from '../lab/nginx.js';
import type { HookName } from '../trace/kernel-names.js';
import type { Place, TraceOptions } from '../trace/options.js';
import type { Summary } from '../report/summary.js';
import { missingTools } from '../trace/tools.js';

type ClientResult = Awaited<ReturnType<Lab['connect']>>;

export interface Scenario {
  title: string;
  router?: boolean;
  /** The port traced and the namespace traced. */
  port: number;
  traced(lab: Lab): string;
  /** Rules as a user would type them, with where they go. */
  rules(lab: Lab): { netns: string; where: string; argv: [string, ...string[]] }[];
  /** Servers and settings; returns a note on what the application saw, if it can tell. */
  setup(lab: Lab): Promise<(() => string) | void>;
  client(lab: Lab): Promise<ClientResult>;
  /** What to look for in the output: said when the run showed its drops at the hook `shows`. */
  lesson: string;
  shows?: HookName;
  /** Programs it runs beyond ip and iptables, with their package. */
  needs?: [string, string][];
  /** Two namespaces traced at once and merged (--netns twice), named client and server. */
  both?(lab: Lab): [Place, Place];
}

export const PORT = 3306;
const CONNECT_MS = 4500; // the client's SYN at 0 s and its retransmissions

const mysqlLike = (extra: string[]): Pick<Scenario, 'port' | 'traced' | 'rules' | 'setup' | 'client'> => ({
  port: PORT,
  traced: (lab) => lab.server.netns,
  rules: (lab) => [{ netns: lab.server.netns, where: 'server', argv: ['iptables', '-I', ...extra, '-j', 'DROP'] }],
  setup: async (lab) => {
    await lab.listen('tcp', PORT);
  },
  client: (lab) => lab.connect('tcp', lab.server.v4, PORT, CONNECT_MS),
});

export const SCENARIOS: Record<string, Scenario> = {
  'local-in': {
    title: 'SYN dropped at LOCAL_IN',
    ...mysqlLike(['INPUT', '-p', 'tcp', '--dport', String(PORT)]),
    shows: 'LOCAL_IN',
    lesson:
      'tcpdump on the server would show every SYN arriving, yet the server never answers: ' +
      'the SYNs die at LOCAL_IN, after the capture point and before TCP, so TCP has no state for them.',
  },
  'local-out': {
    title: 'SYN-ACK dropped at LOCAL_OUT',
    ...mysqlLike(['OUTPUT', '-p', 'tcp', '--sport', String(PORT)]),
    shows: 'LOCAL_OUT',
    lesson:
      'tcpdump on the server would show the same SYN retransmissions and no SYN-ACK, as if the server ignored them; ' +
      'in fact TCP received each SYN (SYN_RECV) and answered, and its SYN-ACKs die at LOCAL_OUT, before the capture point.',
  },
  'app-response': {
    title: 'nginx answers, but its response and FIN are dropped at LOCAL_OUT',
    port: 80,
    needs: [[NGINX_BIN, 'nginx']],
    traced: (lab) => lab.server.netns,
    rules: (lab) => [
      {
        netns: lab.server.netns,
        where: 'server',
        argv: ['iptables', '-I', 'OUTPUT', '-p', 'tcp', '--sport', '80', '--tcp-flags', 'SYN', 'NONE', '-j', 'DROP'],
      },
    ],
    setup: async (lab) => {
      // An orphaned FIN_WAIT1 socket gives up after one retransmission: the abort comes within the demo.
      lab.sysctl(lab.server.netns, 'net.ipv4.tcp_orphan_retries', '1');
      const nginx: Nginx = await startNginx(lab, lab.server, 80);
      return () => {
        const log = nginx.accessLog().trim();
        return log ? `nginx's access log: ${log.split('\n').pop()}` : "nginx's access log is empty";
      };
    },
    client: (lab) =>
      lab.connect('tcp', lab.server.v4, 80, CONNECT_MS, lab.client, '--send', 'GET / HTTP/1.0\r\nHost: lab\r\n\r\n'),
    shows: 'LOCAL_OUT',
    lesson:
      "the request reached nginx (it read it and logged it) while the client kept retransmitting it: nginx's response " +
      'and FIN died at LOCAL_OUT before tcpdump could see them, the server socket sat in FIN_WAIT1 and was aborted ' +
      '(TCPAbortOnTimeout), and tcpdump alone would say the server never got the request.',
  },
  forward: {
    title: 'through a router with DNAT: the replies are dropped at FORWARD',
    router: true,
    port: 80,
    traced: (lab) => lab.router!.netns,
    rules: (lab) => [
      {
        netns: lab.router!.netns,
        where: 'router',
        argv: [
          'iptables',
          '-t',
          'nat',
          '-A',
          'PREROUTING',
          '-p',
          'tcp',
          '--dport',
          '80',
          '-j',
          'DNAT',
          '--to-destination',
          `${lab.server.v4}:8080`,
        ],
      },
      {
        netns: lab.router!.netns,
        where: 'router',
        argv: ['iptables', '-A', 'FORWARD', '-p', 'tcp', '--sport', '8080', '-j', 'DROP'],
      },
    ],
    setup: async (lab) => {
      await lab.listen('tcp', 8080);
    },
    client: (lab) => lab.connect('tcp', lab.router!.toClient.v4, 80, CONNECT_MS),
    shows: 'FORWARD',
    lesson:
      "the router rewrote each SYN to the server's address and forwarded it; the server answered, and its SYN-ACKs " +
      "died in the router's FORWARD hook: tcpdump on the router would show them arriving from the server and never leaving.",
  },
  across: {
    title: 'client and server traced at once; a router neither traces drops the SYNs between them',
    router: true,
    port: PORT,
    traced: (lab) => lab.client.netns,
    both: (lab) => [{ netns: lab.client.netns }, { netns: lab.server.netns }],
    rules: (lab) => [
      {
        netns: lab.router!.netns,
        where: 'router',
        argv: ['iptables', '-A', 'FORWARD', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP'],
      },
    ],
    setup: async (lab) => {
      await lab.listen('tcp', PORT);
    },
    client: (lab) => lab.connect('tcp', lab.server.v4, PORT, CONNECT_MS),
    lesson:
      "each SYN left the client's eth0 and never reached the server's: lost on the path, in a host neither end " +
      "traced (here the router's FORWARD chain). tcpdump on both ends shows only that it left and never arrived; the " +
      'merge says it of every packet, and that neither end dropped it.',
  },
};

/** The lesson, when the run showed what it is about; else what it showed instead (a kernel or a host that
 *  differs: the demo must not teach what did not happen). */
export function lessonOf(scenario: Scenario, summary: Summary | null): string {
  if (!scenario.shows || !summary) return scenario.lesson;
  if (summary.drops.some((d) => d.hook === scenario.shows)) return scenario.lesson;
  const seen = summary.drops.map((d) => `${d.count} at ${d.hook ?? d.location} (${d.reason ?? 'no reason'})`);
  return (
    `this run did not show what the demo is about (drops at ${scenario.shows}): ` +
    `${summary.packets} packets, ${seen.length ? `drops ${seen.join(', ')}` : 'no drops'}`
  );
}

function describe(r: ClientResult | undefined): string {
  if (!r) return 'no result';
  return r.ok ? `got ${JSON.stringify(r.data)}` : `failed (${r.error}) after ${(r.ms / 1000).toFixed(1)} s`;
}

export async function runDemo(name: string, options: TraceOptions): Promise<void> {
  const scenario = SCENARIOS[name];
  if (!scenario) throw new UserError(`no demo scenario '${name}'`);
  checkPrivileges(true);
  const lacking = missingTools([['ip', 'iproute2'], ['iptables', 'iptables'], ...(scenario.needs ?? [])]);
  if (lacking.length)
    throw new UserError(`demo ${name} needs ${lacking.join(', ')}: apt install them, or trace your own traffic`);
  const say = (s: string) => process.stderr.write(`demo: ${s}\n`);
  let lab: Lab | null = null;
  const abort = () => {
    lab?.destroy();
    process.exit(130);
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const sig of signals) process.once(sig, abort); // until the trace takes them over
  try {
    lab = new Lab({ router: scenario.router });
    const { client, server } = lab;
    const appView = await scenario.setup(lab);
    const rules = scenario.rules(lab);
    for (const r of rules) lab.exec(r.netns, r.argv[0], r.argv.slice(1));
    const traced = scenario.traced(lab);
    say(scenario.title);
    say(
      `client ${client.v4} (netns ${client.netns}), server ${server.v4} (netns ${server.netns})` +
        (lab.router
          ? `, router ${lab.router.toClient.v4} / ${lab.router.toServer.v4} (netns ${lab.router.netns})`
          : ''),
    );
    for (const r of rules) say(`${r.where} rule: ${r.argv.join(' ')}`);
    say(
      scenario.both
        ? `tracing port ${scenario.port} in the client's and the server's netns at once for ${CONNECT_MS / 1000} s...`
        : `tracing port ${scenario.port} in netns ${traced} for ${CONNECT_MS / 1000} s...`,
    );
    for (const sig of signals) process.off(sig, abort);

    let result: ClientResult | undefined;
    if (scenario.both) {
      const code = await across(
        { ...options, across: scenario.both(lab) },
        ['--port', String(scenario.port), '--proto', 'tcp'],
        ['client', 'server'],
        (stop) => {
          scenario
            .client(lab!)
            .then((r) => {
              result = r;
            })
            .catch((e) => say(`the client failed to run: ${(e as Error).message}`))
            .finally(() => setTimeout(stop, 300));
        },
      );
      if (code !== 0) throw new UserError('demo across: a trace failed (see above)');
      if (result) say(`the client's view: ${describe(result)}`);
      say(scenario.lesson);
      return;
    }
    const traceOptions: TraceOptions = {
      ...options,
      ports: [scenario.port],
      protos: ['tcp'],
      place: { netns: traced },
      duration: null,
    };
    // In the UI the trace stays open when the client is done, to be explored; q ends it.
    const ui = usesTui(traceOptions);
    const summary = await trace(traceOptions, (session) => {
      scenario
        .client(lab!)
        .then((r) => {
          result = r;
        })
        .catch((e) => say(`the client failed to run: ${(e as Error).message}`))
        .finally(() => {
          if (ui)
            session.note(
              `demo: the client is done (${describe(result)}); look for this: ${scenario.lesson} Press q to quit.`,
            );
          else setTimeout(() => session.stop('demo-done'), 300);
        });
    });
    if (result) say(`the client's view: ${describe(result)}`);
    if (appView) say(appView());
    say(lessonOf(scenario, summary));
  } finally {
    for (const sig of signals) process.off(sig, abort);
    lab?.destroy();
  }
}
