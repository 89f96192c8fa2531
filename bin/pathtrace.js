#!/usr/bin/env node
// Starts the compiled CLI (dist/), built by scripts/setup.sh or `npm run build`.
import { existsSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

// Journeys are short-lived objects made by the hundred thousand per second: a larger young generation
// collects them at a third of the cost (GC took 12 % of a request/response trace's CPU with the default).
setFlagsFromString('--max-semi-space-size=16');

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('pathtrace: not built yet; run scripts/setup.sh (or npm run build)\n');
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
