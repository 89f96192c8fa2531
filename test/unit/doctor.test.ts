// pathtrace doctor's reading of the facts: what is missing says what it costs and what fixes it; whether a trace
// can run; the glibc the addon asks for, read from its version references.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canTrace, doctorChecks, doctorText, type DoctorFacts } from '../../src/doctor/checks.js';
import { glibcNeeded } from '../../src/doctor/facts.js';

/** This machine's kind: links, trampolines refused, no kprobes, everything else there. */
const HOST: DoctorFacts = {
  version: '0.1.0',
  kernel: { release: '6.18.0', machine: 'x86_64' },
  glibc: '2.36',
  addonNeedsGlibc: '2.34',
  addon: { libbpf: 'v1.4' },
  btf: { ok: true },
  missingCaps: [],
  netfilterLinks: true,
  load: { trampolines: false, fallback: 'none', dropReasons: true, unattached: [] },
  kprobes: false,
  bpfLoop: true,
  libpcap: { name: 'libpcap.so.0.8' },
  tools: { nft: 'nftables v1.0.6', iptables: 'iptables v1.8.9 (nf_tables)', iptablesLegacy: true, tcpdump: true },
  runtimes: ['podman'],
  kernelPackage: 'linux-image-amd64',
};

const byName = (f: DoctorFacts) => new Map(doctorChecks(f).map((c) => [c.name, c]));

test('a host with links: can trace; refused trampolines cost the device programs their verdicts; kprobes not needed', () => {
  const c = byName(HOST);
  assert.equal(canTrace([...c.values()]), true);
  assert.match(c.get('netfilter')!.found, /BPF netfilter links/);
  assert.equal(c.get('trampolines')!.ok, false);
  assert.match(c.get('trampolines')!.costs!, /XDP and tc programs' own verdicts/);
  assert.equal(c.get('kprobes')!.ok, null);
  const text = doctorText(HOST, [...c.values()]);
  assert.match(
    text,
    /^pathtrace 0\.1\.0 on Linux 6\.18\.0 x86_64, glibc 2\.36\n✓ addon +loads \(libbpf 1\.4; needs glibc ≥ 2\.34\)/,
  );
  assert.match(text, /\n✗ trampolines +fentry\/fexit refused by this kernel\n +costs: XDP/);
  assert.match(text, /\npathtrace can trace here\.$/);
});

test('Debian 11 (5.10): hooks by trampolines; no drop reasons, no bpf_loop, each with its cost and fix', () => {
  const c = byName({
    ...HOST,
    kernel: { release: '5.10.0-33-amd64', machine: 'x86_64' },
    netfilterLinks: false,
    load: {
      trampolines: true,
      fallback: 'trampolines',
      dropReasons: false,
      unattached: [
        { point: 'qdisc_enqueue', reason: 'not in this kernel: the time a packet waits in a qdisc is not measured' },
      ],
    },
    kprobes: true,
    bpfLoop: false,
  });
  assert.match(c.get('netfilter')!.found, /trampolines on nf_hook_slow \(no netfilter links: Linux < 6\.4\)/);
  assert.deepEqual(
    [c.get('drop reasons')!.ok, c.get('drop reasons')!.fix],
    [false, "a newer kernel: apt install linux-image-amd64 (Debian 12's 6.1), or your distribution's"],
  );
  assert.match(c.get('bpf_loop')!.costs!, /no tcpdump filter expressions \(--port, --host and --proto still filter\)/);
  assert.deepEqual(c.get('qdisc_enqueue'), {
    name: 'qdisc_enqueue',
    ok: false,
    found: 'not in this kernel',
    costs: 'the time a packet waits in a qdisc is not measured',
  });
  assert.equal(c.get('kprobes')!.found, 'present');
  assert.equal(canTrace([...c.values()]), true, 'what is missing costs detail, not the trace');
});

test('what stops a trace: the addon (an older glibc), no BTF, no rights; the loading checks then not tried', () => {
  const old = byName({
    ...HOST,
    glibc: '2.31',
    addon: { error: "cannot load the native addon (GLIBC_2.34' not found)" },
  });
  assert.match(old.get('addon')!.fix!, /glibc 2\.31 is older than the 2\.34 the addon needs/);
  assert.equal(canTrace([...old.values()]), false);
  const noBtf = byName({ ...HOST, btf: { ok: false, error: "cannot load the kernel's BTF" } });
  assert.match(noBtf.get('BTF')!.fix!, /CONFIG_DEBUG_INFO_BTF/);
  assert.equal(canTrace([...noBtf.values()]), false);
  const user = byName({ ...HOST, missingCaps: ['CAP_BPF', 'CAP_NET_ADMIN'], netfilterLinks: null, load: null });
  assert.equal(user.get('privileges')!.fix, 'run as root (sudo pathtrace doctor)');
  for (const n of ['netfilter', 'trampolines', 'drop reasons']) assert.equal(user.get(n)!.ok, null, n);
  assert.equal(user.get('kprobes')!.ok, null, 'not known to be needed before loading');
  assert.equal(canTrace([...user.values()]), false);
  const refused = byName({ ...HOST, load: { error: 'program on_kfree_skb was refused' } });
  assert.equal(refused.get('load')!.ok, false);
  assert.equal(canTrace([...refused.values()]), false);
});

test('no nft: rules unnamed, said with the fix; no libpcap: no expressions', () => {
  const c = byName({
    ...HOST,
    tools: { ...HOST.tools, nft: null },
    libpcap: { error: 'filter expressions need libpcap, the library tcpdump uses (none of libpcap.so.1 loads)' },
  });
  assert.match(c.get('rule readers')!.costs!, /told by its hook and chain's priority, not by its rule/);
  assert.equal(c.get('rule readers')!.fix, 'apt install nftables, or dnf install nftables');
  assert.match(c.get('libpcap')!.fix!, /apt install libpcap0\.8/);
});

test('the glibc a binary asks for: the highest of its version references', () => {
  const bytes = Buffer.from('\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_2.4\0GLIBC_PRIVATE\0', 'latin1');
  assert.equal(glibcNeeded(bytes), '2.34');
  assert.equal(glibcNeeded(Buffer.from('no references')), null);
});

test('arm64 6.1: trampolines load but do not attach, kprobes trace the hooks; the fix is a 6.4+ kernel', () => {
  const c = byName({
    ...HOST,
    kernel: { release: '6.1.0-50-arm64', machine: 'aarch64' },
    netfilterLinks: false,
    load: {
      trampolines: false,
      trampolinesUnattached: 'not supported by this kernel (ENOTSUPP)',
      fallback: 'kprobes',
      dropReasons: true,
      unattached: [],
    },
    kprobes: true,
    kernelPackage: 'linux-image-arm64',
  });
  assert.match(c.get('netfilter')!.found, /^hooks traced by kprobes on nf_hook_slow/);
  assert.deepEqual(c.get('trampolines'), {
    name: 'trampolines',
    ok: false,
    found: 'fentry/fexit load but do not attach to nf_hook_slow: not supported by this kernel (ENOTSUPP)',
    costs:
      "XDP and tc programs' own verdicts are not seen (a drop there names the program attached); the hooks fall back to kprobes",
    fix: "a kernel of 6.4 or later, where arm64 attaches them: apt install -t bookworm-backports linux-image-arm64 (Debian 12), or your distribution's",
  });
  assert.equal(c.get('kprobes')!.found, 'present: they trace the hooks');
  assert.equal(canTrace([...c.values()]), true);
});
