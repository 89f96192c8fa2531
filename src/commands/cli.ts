// Entry point: parses the command line, runs the command it names (trace, demo, compare, merge), and
// turns every failure into one line on stderr and a non-zero exit code.
import { CompareError, type Progress } from '../capture/trace-file.js';
import { runAgent } from './agent.js';
import { across } from './across.js';
import { runCompare } from './compare.js';
import { runDemo } from './demo.js';
import { runDoctor } from './doctor.js';
import { runMerge } from './merge.js';
import { runReport } from './report.js';
import { parseCommandLine, USAGE, UsageError } from './options.js';
import { ProgressLine } from './progress.js';
import { trace, UserError } from './trace.js';
import { findVersion, versionText } from './version.js';

/** compare and merge, with a progress line on stderr when it is a terminal. */
function withProgress<T>(run: (progress?: Progress) => T): T {
  const line = process.stderr.isTTY ? new ProgressLine(process.stderr) : null;
  try {
    return run(line ? (label, pos, size) => line.update(label, pos, size) : undefined);
  } finally {
    line?.end();
  }
}

export async function main(argv: string[]): Promise<number> {
  try {
    const cmd = parseCommandLine(argv);
    switch (cmd.kind) {
      case 'help':
        process.stdout.write(USAGE + '\n');
        return 0;
      case 'version':
        process.stdout.write(versionText(findVersion()) + '\n');
        return 0;
      case 'trace':
        if (cmd.options.across) return await across({ ...cmd.options, across: cmd.options.across }, argv);
        await trace(cmd.options);
        return 0;
      case 'demo':
        await runDemo(cmd.scenario, cmd.options);
        return 0;
      case 'compare':
        process.stdout.write(withProgress((p) => runCompare(cmd.capture, cmd.trace, p)) + '\n');
        return 0;
      case 'merge':
        process.stdout.write(withProgress((p) => runMerge(cmd.traces, cmd.json, p)) + '\n');
        return 0;
      case 'report':
        process.stderr.write(withProgress((p) => runReport(cmd.traces, cmd.output, p)) + '\n');
        return 0;
      case 'doctor':
        return runDoctor(cmd.json);
      case 'agent':
        await runAgent(cmd.options);
        return 0;
    }
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`pathtrace: ${e.message} (see pathtrace --help)\n`);
      return 2;
    }
    if (e instanceof UserError || e instanceof CompareError) {
      process.stderr.write(`pathtrace: ${e.message}\n`);
      return 1;
    }
    const err = e as Error;
    process.stderr.write(`pathtrace: internal error: ${err.message}\n`);
    if (process.env.PATHTRACE_DEBUG) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
