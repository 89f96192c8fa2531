// pathtrace doctor on this machine: as root it loads and says what the kernel offers, agreeing with what a trace
// finds (the matrix's scenarios check the same on each kernel); as another user it says what it could not try;
// a kernel without BTF (pretended) stops it; arguments it does not take are refused.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { needsRoot, runCli } from '../helpers/pathtrace.js';

interface Check {
  name: string;
  ok: boolean | null;
  found: string;
  costs?: string;
  fix?: string;
}

const doctor = (env: NodeJS.ProcessEnv = {}, uid?: number) => {
  const r = runCli(['doctor', '--json'], { env, ...(uid === undefined ? {} : { uid }) });
  const out = JSON.parse(r.stdout) as { can_trace: boolean; checks: Check[] };
  return { code: r.code, ...out, check: (n: string) => out.checks.find((c) => c.name === n)! };
};

test('as root: can trace; the kprobe PMU and BTF as the system has them; the text one screen', (t) => {
  if (!needsRoot(t)) return;
  const d = doctor();
  assert.equal(d.code, 0);
  assert.equal(d.can_trace, true);
  assert.equal(d.check('BTF').ok, existsSync('/sys/kernel/btf/vmlinux'));
  assert.equal(d.check('kprobes').found.startsWith('present'), existsSync('/sys/bus/event_source/devices/kprobe'));
  for (const c of d.checks) if (c.ok === false) assert.ok(c.costs, `${c.name}: a missing thing says what it costs`);
  const text = runCli(['doctor']);
  assert.equal(text.code, 0);
  const lines = text.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^pathtrace \S+ on Linux \S+ \S+/);
  assert.equal(lines.at(-1), 'pathtrace can trace here.');
  assert.ok(lines.length <= 40, `one screen: ${lines.length} lines`);
});

test('as another user: the rights missing, with the fix; what needs them not tried; exit 1', (t) => {
  if (!needsRoot(t)) return;
  const d = doctor({}, 65534);
  assert.equal(d.code, 1);
  assert.equal(d.check('privileges').ok, false);
  assert.equal(d.check('privileges').fix, 'run as root (sudo pathtrace doctor)');
  assert.equal(d.check('drop reasons').ok, null);
});

test('a kernel without BTF (pretended): says so with the fix, exit 1', (t) => {
  if (!needsRoot(t)) return;
  const d = doctor({ PATHTRACE_PRETEND_KERNEL_LACKS: 'btf' });
  assert.equal(d.code, 1);
  assert.match(d.check('BTF').fix!, /CONFIG_DEBUG_INFO_BTF/);
});

test('doctor takes no arguments but --json', () => {
  const r = runCli(['doctor', 'now']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^pathtrace: doctor takes no arguments \(got 'now'\)/);
});
