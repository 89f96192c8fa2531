import { test } from 'node:test';
import assert from 'node:assert/strict';
import { failureCollector } from '../kernels/matrix.js';

test("the matrix keeps each failed test's block for its summary, and nothing of the tests that passed", () => {
  const c = failureCollector();
  const tap = [
    '# Subtest: one',
    'ok 1 - one',
    '# Subtest: two',
    'not ok 2 - two',
    '  ---',
    "  error: 'Expected values to be strictly equal'",
    '  ...',
    '# Subtest: three',
    'ok 3 - three',
  ];
  for (const l of tap) c.line(l);
  assert.deepEqual(c.failures, ["not ok 2 - two\n  ---\n  error: 'Expected values to be strictly equal'\n  ..."]);
});

test("the matrix keeps boot.sh's account of a VM that failed, up to the next line not its own", () => {
  const c = failureCollector();
  const log = [
    'boot.sh: building /var/cache/pathtrace-kernels/initramfs/6.12.cpio.gz',
    'boot.sh: 6.12: the VM ended before running the command',
    'boot.sh: qemu (1):',
    "  qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory",
    'boot.sh: console (last 40 lines):',
    'boot.sh: 6.12: the guest never ran the command: booting it once more',
    'TAP version 13',
  ];
  for (const l of log) c.line(l);
  assert.deepEqual(c.failures, [log.slice(1, 6).join('\n')]);
});
