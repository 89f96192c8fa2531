// `pathtrace doctor`: one screen of what this host offers pathtrace (or --json), exit 0 when a trace can run.
import { canTrace, doctorChecks, doctorText } from '../doctor/checks.js';
import { findFacts } from '../doctor/facts.js';

export function runDoctor(json: boolean): number {
  const facts = findFacts((process.env.PATHTRACE_PRETEND_KERNEL_LACKS ?? '').split(','));
  const checks = doctorChecks(facts);
  const ok = canTrace(checks);
  process.stdout.write(
    (json
      ? JSON.stringify({ version: facts.version, kernel: facts.kernel, glibc: facts.glibc, can_trace: ok, checks })
      : doctorText(facts, checks)) + '\n',
  );
  return ok ? 0 : 1;
}
