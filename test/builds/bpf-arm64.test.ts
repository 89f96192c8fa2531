// The BPF programs compile for arm64 as well, by the build's own rules (CMake's bpf_skeletons target with
// BPF_ARCH=arm64, as scripts/prebuild.sh arm64 builds them, from the x86 BTF's vmlinux.h): their kprobes read
// arguments from arm64's registers (struct user_pt_regs, relocated by CO-RE), every other program type is the
// same object on both. No root; about twenty seconds.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/paths.js';

test('every BPF program compiles for arm64; the kprobes read user_pt_regs', (t) => {
  if (spawnSync('sh', ['-c', 'command -v clang && command -v bpftool']).status !== 0)
    return t.skip('needs clang and bpftool (scripts/setup.sh)');
  const out = mkdtempSync(path.join(os.tmpdir(), 'pathtrace-arm64-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  for (const args of [
    ['-S', ROOT, '-B', out, '-G', 'Ninja', '-DBPF_ARCH=arm64'],
    ['--build', out, '--target', 'bpf_skeletons'],
  ]) {
    const r = spawnSync('cmake', args, { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 0, `cmake ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  }
  for (const variant of ['pathtrace', 'device_verdicts', 'agent'].flatMap((v) => [v, `${v}_compat`]))
    assert.ok(existsSync(path.join(out, 'gen', `${variant}.skel.h`)), `no ${variant}.skel.h`);
  // The netfilter kprobes (the tracer's object) take their arguments from arm64's registers.
  assert.ok(readFileSync(path.join(out, 'gen', 'pathtrace.bpf.o')).includes('user_pt_regs'), 'no user_pt_regs');
});
