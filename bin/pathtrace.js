#!/usr/bin/env node
// Starts the compiled CLI (dist/), built by scripts/setup.sh or `npm run build`.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/commands/cli.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('pathtrace: not built yet; run scripts/setup.sh (or npm run build)\n');
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
