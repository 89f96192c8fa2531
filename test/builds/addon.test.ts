// The two builds of the addon, `npm run build:native` (cmake-js) and `npm run build:gyp` (node-gyp, through
// binding.gyp), run one after the other in a copy of the sources, make the same thing: an addon that loads
// and exports the same functions, the same BPF objects inside it, the same carried libraries, the load
// generator. No root, no BPF loaded; about two minutes (two full builds).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers/paths.js';

const EM_BPF = 247;

/** The BPF objects the skeletons embed in an addon: each ELF file inside it whose machine is BPF. */
function bpfObjects(addon: Buffer): Buffer[] {
  const found: Buffer[] = [];
  for (let at = addon.indexOf('\x7fELF', 1, 'latin1'); at >= 0; at = addon.indexOf('\x7fELF', at + 1, 'latin1')) {
    if (addon[at + 4] !== 2 || addon.readUInt16LE(at + 18) !== EM_BPF) continue; // 64-bit BPF only
    // LLVM writes the section headers last: they end the file.
    const end =
      Number(addon.readBigUInt64LE(at + 0x28)) + addon.readUInt16LE(at + 0x3a) * addon.readUInt16LE(at + 0x3c);
    found.push(addon.subarray(at, at + end));
  }
  return found;
}

/** The addon's exports, name and type, as a fresh Node loads it (the carried libraries found by RUNPATH). */
function exportsOf(addon: string): string[] {
  const r = spawnSync(
    process.execPath,
    [
      '-e',
      'const m = { exports: {} }; process.dlopen(m, process.argv[1]);' +
        'console.log(JSON.stringify(Object.keys(m.exports).sort().map((k) => k + ": " + typeof m.exports[k])))',
      addon,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `${addon} does not load: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

test('node-gyp (binding.gyp) and cmake-js build the same addon', { timeout: 20 * 60_000 }, (t) => {
  const missing = ['python3', 'make', 'cmake'].filter((tool) => !has(tool));
  if (missing.length) return t.skip(`node-gyp's build needs ${missing.join(', ')} (scripts/setup.sh installs them)`);
  const nodeDir = path.resolve(process.execPath, '..', '..');
  if (!existsSync(path.join(nodeDir, 'include', 'node', 'common.gypi'))) {
    return t.skip(
      `node-gyp needs Node's headers beside node (${nodeDir}/include/node): this Node was installed without them`,
    );
  }

  const src = mkdtempSync(path.join(os.tmpdir(), 'pathtrace-build-'));
  t.after(() => rmSync(src, { recursive: true, force: true }));
  const skip = new Set(['node_modules', 'build', 'dist', '.git']);
  cpSync(ROOT, src, {
    recursive: true,
    filter: (p) => !skip.has(path.relative(ROOT, p)) && !/^pathtrace-.*\.tgz$/.test(path.relative(ROOT, p)),
  });
  symlinkSync(path.join(ROOT, 'node_modules'), path.join(src, 'node_modules'));
  // Nothing from this machine's npm configuration (a nodedir there), and an empty node-gyp cache: the
  // build must take Node's headers from build:gyp's --nodedir, never download them.
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    npm_config_userconfig: '/dev/null',
    npm_config_devdir: path.join(src, 'node-gyp-cache'),
  };
  delete env.npm_config_nodedir;
  mkdirSync(env.npm_config_devdir!);
  const run = (script: string) => {
    const started = Date.now();
    const r = spawnSync('npm', ['run', '--silent', script], { cwd: src, env, encoding: 'utf8', maxBuffer: 64 << 20 });
    assert.equal(r.status, 0, `npm run ${script} failed:\n${(r.stdout + r.stderr).slice(-4000)}`);
    t.diagnostic(`npm run ${script}: ${((Date.now() - started) / 1000).toFixed(0)} s`);
  };

  run('build:native');
  renameSync(path.join(src, 'build'), path.join(src, 'cmake-js'));
  run('build:gyp'); // node-gyp rebuild: starts from an empty build/
  const builds = { 'cmake-js': path.join(src, 'cmake-js'), 'node-gyp': path.join(src, 'build') };

  const [cm, gyp] = Object.values(builds).map((dir) => {
    for (const file of ['Release/libbpf.so.1', 'Release/libelf.so.1', 'pathtrace-loadgen', 'pathtrace-nfq']) {
      assert.ok(existsSync(path.join(dir, file)), `${path.relative(src, dir)}/${file} is missing`);
    }
    const addon = path.join(dir, 'Release', 'pathtrace.node');
    const bytes = readFileSync(addon);
    return { bytes, exports: exportsOf(addon), bpf: bpfObjects(bytes) };
  });
  assert.ok(cm.exports.length > 10, `cmake-js's addon exports ${cm.exports.join(', ')}`);
  assert.deepEqual(gyp.exports, cm.exports, 'the same functions');
  assert.equal(
    cm.bpf.length,
    6,
    "each BPF object (the probes, the device verdicts, the agent's) twice: with and without bpf_loop",
  );
  assert.ok(
    gyp.bpf.length === cm.bpf.length && gyp.bpf.every((o, i) => o.equals(cm.bpf[i]!)),
    'the same BPF objects inside',
  );
  for (const lib of ['libbpf.so.1', 'libelf.so.1']) {
    assert.ok(
      readFileSync(path.join(builds['node-gyp'], 'Release', lib)).equals(
        readFileSync(path.join(builds['cmake-js'], 'Release', lib)),
      ),
      lib,
    );
  }
  t.diagnostic(`the two addons are ${gyp.bytes.equals(cm.bytes) ? '' : 'not '}identical byte for byte`);
});
