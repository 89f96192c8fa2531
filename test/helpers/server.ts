// The release package on a minimal server (test/package/server.test.ts):
// `npm run package`'s tarball installed, with the network cut, into a Debian minbase root that has only Node
// (node-linux-<arch> from npm, and npm), iproute2 and nftables (plus iptables and kmod: scripts/kernels/minroot.sh
// says why), then that root booted under its Debian's own kernel (scripts/kernels/boot.sh) running
// test/package/guest.sh, whose sections the tests read.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { type TestContext } from 'node:test';
import { ROOT } from './paths.js';

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** This environment, without what points at this machine's files (NODE_EXTRA_CA_CERTS: the server has no such file). */
function env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete e.NODE_EXTRA_CA_CERTS;
  return e;
}

const sh = (cmd: string, args: string[], extra: NodeJS.ProcessEnv = {}) =>
  execFileSync(cmd, args, {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: env(extra),
    maxBuffer: 64 << 20,
  });

/** boot.sh's output (the guest's stdout and stderr) and exit code. */
function boot(kernel: string, root: string, command: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [path.join(ROOT, 'scripts/kernels/boot.sh'), kernel, command], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: env({ PATH, PATHTRACE_VM_ROOT: root }),
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** The guest's sections ("=== NAME" lines start them). */
function sections(out: string): Map<string, string> {
  const m = new Map<string, string>();
  let name = '';
  for (const line of out.split('\n')) {
    const head = /^=== (\S+)$/.exec(line);
    if (head) name = head[1];
    else m.set(name, (m.get(name) ?? '') + line + '\n');
  }
  return m;
}

let tarball: string | undefined;

/** The package installed offline on a minimal root of suite and arch (minroot.sh), that root booted under its
 *  own Debian's kernel running guest.sh: the guest's sections, and its output to show when an assertion fails. */
export async function server(
  t: TestContext,
  suite: string,
  kernel: string,
  arch: 'x64' | 'arm64' = 'x64',
): Promise<{ s: Map<string, string>; say: string }> {
  tarball ??= sh('bash', ['scripts/package.sh']).trim().split('\n').pop()!;
  const base = sh('bash', ['scripts/kernels/minroot.sh', suite, arch === 'x64' ? 'amd64' : arch]).trim();
  const root = mkdtempSync('/var/tmp/pathtrace-server-');
  t.after(() => rmSync(root, { recursive: true, force: true }));
  sh('cp', ['-a', `${base}/.`, root]); // device nodes too

  // A Node runtime as npm ships it (node-linux-<arch>; Debian 11's nodejs is 12) and npm, laid out under /usr/local
  // as Node's own tarball does.
  const node = sh('bash', ['scripts/node-linux.sh', arch]).trim();
  mkdirSync(path.join(root, 'usr/local/bin'), { recursive: true });
  copyFileSync(path.join(node, 'bin/node'), path.join(root, 'usr/local/bin/node'));
  chmodSync(path.join(root, 'usr/local/bin/node'), 0o755);
  const npm = path.dirname(path.dirname(realpathSync(execFileSync('which', ['npm'], { encoding: 'utf8' }).trim())));
  mkdirSync(path.join(root, 'usr/local/lib/node_modules'), { recursive: true });
  sh('cp', ['-a', npm, path.join(root, 'usr/local/lib/node_modules/npm')]);
  symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(root, 'usr/local/bin/npm'));
  copyFileSync(path.join(ROOT, tarball), path.join(root, 'root', tarball));
  copyFileSync(path.join(ROOT, 'test/package/guest.sh'), path.join(root, 'root/guest.sh'));

  // Installed as a user would, with no network at all (a namespace of its own): by the server's own npm, or, in
  // an arm64 root, which this machine cannot run, by this machine's npm into the root's /usr/local.
  const install = `npm install -g --offline --no-audit --no-fund`;
  const command =
    arch === 'x64'
      ? `mount -t proc proc "$0/proc" && chroot "$0" ${install} /root/${tarball}`
      : `${install} --prefix "$0/usr/local" "$0/root/${tarball}"`;
  sh('unshare', ['--net', '--mount', '--', 'sh', '-c', command, root], {
    PATH: `${path.dirname(process.execPath)}:${PATH}`,
  });

  const { code, out } = await boot(kernel, root, 'bash /root/guest.sh');
  const say = `guest output:\n${out}`;
  assert.equal(code, 0, say);
  return { s: sections(out), say };
}

/** The guest's trace section: a LOCAL_IN drop by the nft rule guest.sh adds, named by table and chain. */
export function assertTracedDrop(s: Map<string, string>, say: string): void {
  const trace = s.get('trace') ?? '';
  assert.match(trace, /^exit 0$/m, say);
  const records = trace
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
  assert.equal(records[0]?.type, 'ready', say);
  const packets = records.filter((r) => r.type === 'packet');
  assert.ok(packets.length >= 2, say);
  for (const p of packets) {
    assert.equal(p.fate, 'dropped', say);
    assert.equal(p.drop.hook, 'LOCAL_IN', say);
    assert.equal(p.drop.table, 'guard', say);
    assert.equal(p.drop.chain, 'input', say);
  }
  assert.equal(records.at(-1)?.stopped_by, 'count', say);
  assert.match(s.get('demo') ?? '', /LOCAL_IN ✗ dropped/, say);
}
