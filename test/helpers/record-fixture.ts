// Records a correlator fixture from a real trace in a lab (as root):
//   node dist/test/helpers/record-fixture.js ok|closed|local-in|local-out|too-big test/fixtures/NAME.ndjson
// ok: a connection that works; closed: no listener (RST); local-in/local-out: the demo rules; too-big: data too big
// for a router's way out (traced there), whose ICMP errors the client's firewall drops.
import { Lab } from '../../src/lab/lab.js';
import { SCENARIOS, PORT } from '../../src/commands/demo.js';
import { BIG_DATA, dropTooBigIcmp, narrowTowardServer } from './mtu.js';
import { Pathtrace } from './pathtrace.js';

const [scenario, out] = process.argv.slice(2);
if (!scenario || !out) {
  process.stderr.write('usage: record-fixture ok|closed|local-in|local-out|too-big FILE\n');
  process.exit(2);
}
const tooBig = scenario === 'too-big';
const lab = new Lab({ router: tooBig });
try {
  const rules = SCENARIOS[scenario]?.rules(lab) ?? [];
  for (const r of rules) lab.exec(r.netns, r.argv[0], r.argv.slice(1));
  const rule = rules.length > 0;
  if (tooBig) {
    narrowTowardServer(lab);
    dropTooBigIcmp(lab, 4);
  }
  if (scenario !== 'closed') await lab.listen('tcp', PORT);
  const pt = await Pathtrace.start(['--netns', (lab.router ?? lab.server).netns, '--port', String(PORT)], {
    PATHTRACE_RECORD_EVENTS: out,
  });
  const send = tooBig ? ['--send', BIG_DATA] : [];
  const client = await lab.connect('tcp', lab.server.v4, PORT, rule ? 4500 : 1500, lab.client, ...send);
  await new Promise((r) => setTimeout(r, 300));
  const { records } = await pt.stop();
  process.stderr.write(
    `client: ${JSON.stringify(client)}; ${records.filter((r) => r.type === 'packet').length} packets\n`,
  );
} finally {
  lab.destroy();
}
