// `pathtrace doctor`: what this host offers, read as checks. Each check is what was found and, for what is
// missing, what that costs a trace and the command that fixes it (where one does). Pure: facts.ts finds the
// facts, this says what they mean.
import type { NetfilterMechanism } from '../trace/native.js';
import type { Unavailable } from '../trace/netfilter-mechanism.js';

export interface DoctorFacts {
  version: string;
  kernel: { release: string; machine: string };
  /** The C library this process runs with; null where it is not glibc (musl). */
  glibc: string | null;
  /** The highest GLIBC_ version the addon and the libraries it carries ask for; null when none could be read. */
  addonNeedsGlibc: string | null;
  addon: { libbpf: string } | { error: string };
  btf: { ok: true } | { ok: false; error: string };
  /** Capabilities a trace lacks; empty when it may load and attach. */
  missingCaps: string[];
  /** Links to the netfilter hooks (6.4+); null when the addon could not ask (not loaded, not allowed). */
  netfilterLinks: boolean | null;
  /** A tracer loaded and attached as a trace would, asked for trampolines; null when not tried. */
  load: LoadFacts | { error: string } | null;
  /** The kprobe PMU libbpf attaches kprobes through. */
  kprobes: boolean;
  bpfLoop: boolean | null;
  /** The libpcap that loaded, or why none did. */
  libpcap: { name: string } | { error: string };
  tools: { nft: string | null; iptables: string | null; iptablesLegacy: boolean; tcpdump: boolean };
  /** Container tools found on PATH. */
  runtimes: string[];
  /** The Debian-style kernel package for this architecture (linux-image-amd64), for the fixes. */
  kernelPackage: string;
}

export interface LoadFacts {
  /** What the kernel allowed of trampolines: loaded and attached to nf_hook_slow. */
  trampolines: boolean;
  /** Why trampolines that loaded did not attach (arm64 before 6.4); else absent. */
  trampolinesUnattached?: string;
  /** How the hooks would be traced without links: trampolines, kprobes, or none. */
  fallback: NetfilterMechanism;
  dropReasons: boolean;
  /** Points that did not attach, with what each costs (the netfilter tracers aside). */
  unattached: Unavailable[];
}

export interface Check {
  name: string;
  /** true: present; false: missing; null: not tried, or not needed here. */
  ok: boolean | null;
  found: string;
  costs?: string;
  fix?: string;
}

const KERNEL_FIX = (pkg: string) => `a newer kernel: apt install ${pkg} (Debian 12's 6.1), or your distribution's`;

/** Dotted versions compared: negative, zero or positive, as a sort wants. */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [a, b].map((v) => v.split('.').map(Number));
  for (let i = 0; i < Math.max(x!.length, y!.length); i++) {
    const d = (x![i] ?? 0) - (y![i] ?? 0);
    if (d) return d;
  }
  return 0;
}

/** The tracer's load, where it was tried and succeeded. */
const loaded = (f: DoctorFacts): LoadFacts | null => (f.load && 'fallback' in f.load ? f.load : null);

const NOT_TRIED = 'not tried (needs the rights to load BPF)';
const NO_EXPRESSIONS = 'no tcpdump filter expressions (--port, --host and --proto still filter)';

function addonCheck(f: DoctorFacts): Check {
  const needs = f.addonNeedsGlibc ? `; needs glibc ≥ ${f.addonNeedsGlibc}` : '';
  if ('libbpf' in f.addon)
    return { name: 'addon', ok: true, found: `loads (libbpf ${f.addon.libbpf.replace(/^v/, '')}${needs})` };
  const tooOld = f.glibc && f.addonNeedsGlibc && compareVersions(f.glibc, f.addonNeedsGlibc) < 0;
  return {
    name: 'addon',
    ok: false,
    found: f.addon.error,
    costs: 'nothing can be traced',
    fix: tooOld
      ? `this system's glibc ${f.glibc} is older than the ${f.addonNeedsGlibc} the addon needs: build it here (bash scripts/setup.sh from the source)`
      : 'bash scripts/setup.sh (from the source) builds it for this system',
  };
}

function netfilterCheck(f: DoctorFacts): Check {
  const name = 'netfilter';
  if (f.netfilterLinks) return { name, ok: true, found: 'hooks traced by BPF netfilter links (Linux 6.4+)' };
  const load = loaded(f);
  if (!load) return { name, ok: null, found: NOT_TRIED };
  if (load.fallback === 'trampolines' || load.fallback === 'kprobes')
    return {
      name,
      ok: true,
      found: `hooks traced by ${load.fallback === 'trampolines' ? 'trampolines' : 'kprobes'} on nf_hook_slow (no netfilter links: Linux < 6.4)`,
    };
  return {
    name,
    ok: false,
    found: 'neither netfilter links (Linux 6.4+), trampolines nor kprobes',
    costs: 'hooks, tables and rules cannot be named; device, drop and TCP points still work',
    fix: KERNEL_FIX(f.kernelPackage),
  };
}

function trampolinesCheck(f: DoctorFacts): Check {
  const name = 'trampolines';
  const load = loaded(f);
  if (!load) return { name, ok: null, found: NOT_TRIED };
  if (load.trampolines) return { name, ok: true, found: 'fentry/fexit load and attach' };
  const costs =
    "XDP and tc programs' own verdicts are not seen (a drop there names the program attached)" +
    (f.netfilterLinks ? '' : '; the hooks fall back to kprobes');
  // arm64 attaches them through ftrace direct calls, which it has from 6.4 on.
  if (load.trampolinesUnattached)
    return {
      name,
      ok: false,
      found: `fentry/fexit load but do not attach to nf_hook_slow: ${load.trampolinesUnattached}`,
      costs,
      fix:
        f.kernel.machine === 'aarch64'
          ? `a kernel of 6.4 or later, where arm64 attaches them: apt install -t bookworm-backports ${f.kernelPackage} (Debian 12), or your distribution's`
          : KERNEL_FIX(f.kernelPackage),
    };
  return {
    name,
    ok: false,
    found: 'fentry/fexit refused by this kernel',
    costs,
    fix: 'none from here: the kernel is built or locked down without them (Debian, Ubuntu and RHEL kernels have them)',
  };
}

function kprobesCheck(f: DoctorFacts): Check {
  const load = loaded(f);
  // Needed where a trace falls back to them: no links, and trampolines refused (known only once loaded).
  const needed = f.netfilterLinks === false && load !== null && !load.trampolines;
  if (f.kprobes) return { name: 'kprobes', ok: true, found: needed ? 'present: they trace the hooks' : 'present' };
  return {
    name: 'kprobes',
    ok: needed ? false : null,
    found: needed ? 'none (no kprobe PMU)' : 'none (not needed here: links or trampolines trace the hooks)',
    ...(needed
      ? { costs: 'the hooks cannot be traced', fix: 'a kernel with CONFIG_KPROBES (every distribution has)' }
      : {}),
  };
}

function dropReasonsCheck(f: DoctorFacts): Check {
  const load = loaded(f);
  if (!load) return { name: 'drop reasons', ok: null, found: NOT_TRIED };
  if (load.dropReasons) return { name: 'drop reasons', ok: true, found: 'kfree_skb names them (Linux 5.17+)' };
  return {
    name: 'drop reasons',
    ok: false,
    found: 'kfree_skb has none (Linux < 5.17)',
    costs: 'a drop is named by the function that freed it, its reason inferred or null',
    fix: KERNEL_FIX(f.kernelPackage),
  };
}

function bpfLoopCheck(f: DoctorFacts): Check {
  if (f.bpfLoop === null) return { name: 'bpf_loop', ok: null, found: 'not known (the addon did not load)' };
  if (f.bpfLoop) return { name: 'bpf_loop', ok: true, found: 'filter expressions run in the kernel' };
  return {
    name: 'bpf_loop',
    ok: false,
    found: 'this kernel has no bpf_loop (Linux < 5.17)',
    costs: NO_EXPRESSIONS,
    fix: KERNEL_FIX(f.kernelPackage),
  };
}

function libpcapCheck(f: DoctorFacts): Check {
  if ('name' in f.libpcap) return { name: 'libpcap', ok: true, found: `${f.libpcap.name}: expressions compile` };
  return {
    name: 'libpcap',
    ok: false,
    found: f.libpcap.error,
    costs: NO_EXPRESSIONS,
    fix: 'apt install libpcap0.8 (Debian, Ubuntu), or dnf install libpcap',
  };
}

function rulesetCheck(f: DoctorFacts): Check {
  const { nft, iptables, iptablesLegacy } = f.tools;
  const found = [nft, iptables, iptablesLegacy ? 'iptables-legacy' : ''].filter(Boolean).join('; ');
  if (nft) return { name: 'rule readers', ok: true, found };
  return {
    name: 'rule readers',
    ok: false,
    found: found || 'neither nft nor iptables',
    costs: iptables
      ? "a drop in a table nft made is told by its hook and chain's priority, not by its rule"
      : 'a drop in netfilter is told by its hook, not by its table, chain and rule',
    fix: 'apt install nftables, or dnf install nftables',
  };
}

function runtimesCheck(f: DoctorFacts): Check {
  if (f.runtimes.length) return { name: 'containers', ok: true, found: f.runtimes.join(', ') };
  return {
    name: 'containers',
    ok: null,
    found: 'no podman, docker, crictl or nerdctl on PATH',
    costs: '--container and --pod cannot find a name (--netns /proc/PID/ns/net still works)',
  };
}

/** The checks, in the order a reader goes through them: can it load, can it trace, what each trace shows. */
export function doctorChecks(f: DoctorFacts): Check[] {
  const privileged: Check = f.missingCaps.length
    ? {
        name: 'privileges',
        ok: false,
        found: `lacking ${f.missingCaps.join(', ')}`,
        costs: 'nothing can be loaded; the checks below that load were not tried',
        fix: 'run as root (sudo pathtrace doctor)',
      }
    : { name: 'privileges', ok: true, found: 'may load BPF and enter namespaces' };
  const btf: Check = f.btf.ok
    ? { name: 'BTF', ok: true, found: '/sys/kernel/btf/vmlinux' }
    : {
        name: 'BTF',
        ok: false,
        found: f.btf.error,
        costs: 'nothing can be traced: the probes are compiled once and fitted to the kernel by its BTF',
        fix: `a kernel built with CONFIG_DEBUG_INFO_BTF (Debian 11+, Ubuntu 20.10+, RHEL 8.2+): apt install ${f.kernelPackage}`,
      };
  const unattached: Check[] =
    f.load && 'unattached' in f.load
      ? f.load.unattached.map((u) => {
          const [why, costs] = u.reason.split(/: (?=[^:]*$)/);
          return { name: u.point, ok: false, found: why ?? u.reason, ...(costs ? { costs } : {}) };
        })
      : [];
  const load: Check[] =
    f.load && 'error' in f.load
      ? [
          {
            name: 'load',
            ok: false,
            found: f.load.error,
            costs: 'nothing can be traced',
            fix: "pathtrace --debug shows libbpf's whole log",
          },
        ]
      : [];
  return [
    addonCheck(f),
    btf,
    privileged,
    ...load,
    netfilterCheck(f),
    trampolinesCheck(f),
    kprobesCheck(f),
    dropReasonsCheck(f),
    bpfLoopCheck(f),
    ...unattached,
    libpcapCheck(f),
    rulesetCheck(f),
    {
      name: 'tcpdump',
      ...(f.tools.tcpdump
        ? { ok: true, found: 'on PATH (--with-tcpdump, compare)' }
        : { ok: null, found: 'not installed', costs: '--with-tcpdump cannot run it', fix: 'apt install tcpdump' }),
    },
    runtimesCheck(f),
  ];
}

/** Whether a trace can run here: the addon loads, the kernel has BTF, the rights are there and the probes load. */
export function canTrace(checks: Check[]): boolean {
  return ['addon', 'BTF', 'privileges', 'load'].every((n) => checks.find((c) => c.name === n)?.ok !== false);
}

/** The checks as one screen of text: a mark, the name, what was found; under a missing one its cost and fix. */
export function doctorText(f: DoctorFacts, checks: Check[]): string {
  const width = Math.max(...checks.map((c) => c.name.length));
  const lines = [
    `pathtrace ${f.version} on Linux ${f.kernel.release} ${f.kernel.machine}${f.glibc ? `, glibc ${f.glibc}` : ''}`,
  ];
  for (const c of checks) {
    const mark = c.ok === true ? '✓' : c.ok === false ? '✗' : '-';
    lines.push(`${mark} ${c.name.padEnd(width)}  ${c.found}`);
    const pad = ' '.repeat(width + 4);
    if (c.costs && c.ok !== true) lines.push(`${pad}costs: ${c.costs}`);
    if (c.fix && c.ok !== true) lines.push(`${pad}fix:   ${c.fix}`);
  }
  lines.push(canTrace(checks) ? 'pathtrace can trace here.' : 'pathtrace cannot trace here: see the ✗ above.');
  return lines.join('\n');
}
