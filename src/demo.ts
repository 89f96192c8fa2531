// `pathtrace demo`: the source articles' experiments, in a lab of namespaces
// that the demo creates and removes (also on Ctrl-C).
import { checkPrivileges, trace } from './cli.js';
import { Lab } from './lab/lab.js';
import type { TraceOptions } from './options.js';

export interface Scenario {
  name: string;
  title: string;
  /** The rule the server gets, as a user would type it. */
  rule: string[];
  /** What to look for in the output. */
  lesson: string;
}

export const PORT = 3306;

export const SCENARIOS: Record<string, Scenario> = {
  'local-in': {
    name: 'local-in',
    title: 'SYN dropped at LOCAL_IN',
    rule: ['iptables', '-I', 'INPUT', '-p', 'tcp', '--dport', String(PORT), '-j', 'DROP'],
    lesson: 'tcpdump on the server would show every SYN arriving, yet the server never answers: ' +
      'the SYNs die at LOCAL_IN, after the capture point and before TCP, so TCP has no state for them.',
  },
  'local-out': {
    name: 'local-out',
    title: 'SYN-ACK dropped at LOCAL_OUT',
    rule: ['iptables', '-I', 'OUTPUT', '-p', 'tcp', '--sport', String(PORT), '-j', 'DROP'],
    lesson: 'tcpdump on the server would show the same SYN retransmissions and no SYN-ACK, as if the server ignored them; ' +
      'in fact TCP received each SYN (SYN_RECV) and answered, and its SYN-ACKs die at LOCAL_OUT, before the capture point.',
  },
};

const CONNECT_MS = 4500; // the client's SYN at 0 s and its retransmissions at 1 s and 3 s

export async function runDemo(name: string, options: TraceOptions): Promise<void> {
  const scenario = SCENARIOS[name];
  checkPrivileges(true);
  const say = (s: string) => process.stderr.write(`demo: ${s}\n`);
  let lab: Lab | null = null;
  const abort = () => { lab?.destroy(); process.exit(130); };
  process.once('SIGINT', abort); // until the trace takes over Ctrl-C
  try {
    lab = new Lab();
    const { client, server } = lab;
    lab.exec(server.netns, scenario.rule[0], scenario.rule.slice(1));
    await lab.listen('tcp', PORT);
    say(`${scenario.title}`);
    say(`client ${client.v4} (netns ${client.netns}) connects to server ${server.v4}:${PORT} (netns ${server.netns})`);
    say(`server rule: ${scenario.rule.join(' ')}`);
    say(`tracing the server's namespace for ${CONNECT_MS / 1000} s...`);
    process.off('SIGINT', abort);

    let result: Awaited<ReturnType<Lab['connect']>> | undefined;
    await trace({ ...options, ports: [PORT], protos: ['tcp'], netns: server.netns, duration: null }, (session) => {
      lab!.connect('tcp', server.v4, PORT, CONNECT_MS)
        .then((r) => { result = r; })
        .catch(() => {})
        .finally(() => setTimeout(() => session.stop('demo-done'), 300));
    });
    if (result) say(`the client's view: ${result.ok ? `connected, got ${JSON.stringify(result.data)}` : `connect failed (${result.error}) after ${(result.ms / 1000).toFixed(1)} s`}`);
    say(scenario.lesson);
  } finally {
    process.off('SIGINT', abort);
    lab?.destroy();
  }
}
