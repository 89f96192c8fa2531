// The BPF programs compile for arm64 as well (clang -target bpf -D__TARGET_ARCH_arm64, the x86 vmlinux.h the
// build generated): their kprobes read arguments from arm64's registers (struct user_pt_regs, relocated by
// CO-RE), every other program type is the same object on both. No root; a few seconds per object.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/paths.js';

test('every BPF program compiles for arm64; the kprobes read user_pt_regs', (t) => {
  const vmlinux = path.join(ROOT, 'build', 'gen', 'vmlinux.h');
  if (!existsSync(vmlinux)) return t.skip('no build/gen/vmlinux.h: run npm run build first');
  if (spawnSync('sh', ['-c', 'command -v clang']).status !== 0) return t.skip('needs clang (scripts/setup.sh)');
  const out = mkdtempSync(path.join(os.tmpdir(), 'pathtrace-arm64-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  for (const source of ['pathtrace', 'device_verdicts', 'agent']) {
    for (const defines of [[], ['-DPT_NO_BPF_LOOP']]) {
      const object = path.join(out, `${source}${defines.length ? '_compat' : ''}.bpf.o`);
      const args = ['-g', '-O2', '-Wall', '-Werror', '-target', 'bpf', '-D__TARGET_ARCH_arm64', ...defines];
      const r = spawnSync(
        'clang',
        [...args, '-I', path.dirname(vmlinux), '-I', path.join(ROOT, 'bpf'), '-c', `bpf/${source}.bpf.c`, '-o', object],
        { cwd: ROOT, encoding: 'utf8' },
      );
      assert.equal(r.status, 0, `${source} ${defines.join(' ')}: ${r.stderr}`);
      // The netfilter kprobes (the tracer's object) take their arguments from arm64's registers.
      if (source === 'pathtrace')
        assert.ok(readFileSync(object).includes('user_pt_regs'), `${object} has no user_pt_regs`);
    }
  }
});
