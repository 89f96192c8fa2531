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
