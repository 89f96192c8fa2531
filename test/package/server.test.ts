// The release package on minimal servers (test/helpers/server.ts): --version, doctor, the local-in demo and a
// --port trace of a namespace lab (test/package/guest.sh) work, and no compiler or library pathtrace carries is
// installed there. Debian 12 under 6.1; Debian 11 under 5.10, with glibc 2.31, older than the build machine's
// (scripts/prebuild.sh); and Debian 12 for arm64 under its arm64 kernel in qemu-system-aarch64 (TCG: about a
// minute), with the addon scripts/prebuild.sh arm64 cross-built. Linux 6.1 on arm64 loads fentry programs but
// cannot attach them (ftrace direct calls came to arm64 in 6.4): kprobes trace the hooks there, and doctor says why.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { needsRoot } from '../helpers/pathtrace.js';
import { assertTracedDrop, server } from '../helpers/server.js';

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

test('the package on a minimal Debian 12 arm64 server: its arm64 addon loads, doctor says so, a drop is named', async (t) => {
  if (!needsRoot(t)) return;
  const { s, say } = await server(t, 'bookworm', '6.1-arm64', 'arm64');
  const [name, libbpf, kernel] = (s.get('version') ?? '').trim().split('\n');
  assert.match(name, /^pathtrace \d+\.\d+\.\d+$/, say);
  assert.match(libbpf, /^libbpf 1\.\d+ \(carried with the addon\)$/, say);
  assert.match(kernel, /^kernel 6\.1\.\S+ aarch64: BTF yes; BPF netfilter links no; kprobes yes; bpf_loop yes /, say);
  const doctor = s.get('doctor') ?? '';
  assert.match(doctor, /^pathtrace \S+ on Linux 6\.1\.\S+ aarch64, glibc 2\.36\n✓ addon /, say);
  assert.match(doctor, /\n✓ netfilter +hooks traced by kprobes on nf_hook_slow/, say);
  assert.match(
    doctor,
    /\n✗ trampolines +fentry\/fexit load but do not attach to nf_hook_slow: not supported by this kernel \(ENOTSUPP\)\n/,
    say,
  );
  assert.match(doctor, /\npathtrace can trace here\.\nexit 0\n$/, say);
  assertTracedDrop(s, say);
});
