// What `pathtrace doctor` finds on this host: the addon and what it needs, the kernel's BTF and features, and,
// with the rights to, a tracer loaded and attached as a trace would (asked for trampolines, so that what the
// kernel refuses shows), then detached. Reads; changes nothing on the host.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { effectiveCaps, missingCaps } from '../commands/caps.js';
import { packageVersion } from '../commands/version.js';
import { addressBytes } from '../trace/address.js';
import { LIBPCAP_NAMES } from '../trace/expression.js';
import { ADDON_PATH, native, type Native, type NetfilterMechanism } from '../trace/native.js';
import { attachTracer, netfilterTracing, TRAMPOLINES_UNATTACHED, unattached } from '../trace/netfilter-mechanism.js';
import { PROTO_TCP } from '../trace/record.generated.js';
import { onPath } from '../trace/tools.js';
import { compareVersions, type DoctorFacts, type LoadFacts } from './checks.js';

/** The highest GLIBC_x.y a file asks for (its version references, read as text). */
export function glibcNeeded(bytes: Buffer): string | null {
  let max: string | null = null;
  for (const m of bytes.toString('latin1').matchAll(/GLIBC_(\d+\.\d+(?:\.\d+)?)/g)) {
    const v = m[1]!;
    if (!max || compareVersions(v, max) > 0) max = v;
  }
  return max;
}

/** The addon and the shared libraries carried beside it. */
function addonNeedsGlibc(): string | null {
  const dir = path.dirname(ADDON_PATH);
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.node') || /\.so(\.\d+)*$/.test(f));
  } catch {
    return null;
  }
  const needs = files.map((f) => glibcNeeded(readFileSync(path.join(dir, f)))).filter((v): v is string => !!v);
  return needs.length ? needs.reduce((a, b) => (compareVersions(a, b) >= 0 ? a : b)) : null;
}

/** The first line a tool prints of its version, or null when it is not there. */
function toolVersion(tool: string, args: string[]): string | null {
  if (!onPath(tool)) return null;
  try {
    return execFileSync(tool, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 })
      .split('\n')[0]!
      .trim();
  } catch {
    return null;
  }
}

/** A tracer as a trace loads it, in this namespace, taking no packet (a port and an address of the benchmark
 *  range no one uses); its points attached, read, and everything detached. */
function loadProbe(n: Native, ask: NetfilterMechanism, links: boolean): LoadFacts | { error: string } {
  const make = (netfilter: NetfilterMechanism) =>
    new n.Tracer({
      netns: statSync('/proc/self/ns/net').ino,
      protos: PROTO_TCP,
      ports: [9],
      hosts: [addressBytes('198.18.255.254')],
      ringBytes: 1 << 20,
      netfilter,
    });
  let tracer;
  try {
    tracer = make(ask);
  } catch (e) {
    return { error: (e as Error).message };
  }
  try {
    const attached = attachTracer(tracer, () => make('kprobes'));
    tracer = attached.tracer;
    const statuses = attached.statuses;
    const points = statuses.filter((s) => s.attached).map((s) => s.point);
    const failed = statuses.filter((s) => !s.attached).map((s) => unattached(s.point, s.error));
    const loaded = tracer.netfilterMode();
    const { traced, unavailable } = netfilterTracing(ask, loaded, points, failed);
    // The hooks' tracing is a check of its own; with links, the hook tracers are not what a trace uses.
    const rest = unavailable.filter(
      (u) => u.point !== 'netfilter' && !(links && /^(fentry|fexit|kprobe|kretprobe)\//.test(u.point)),
    );
    const unattachedReason = failed.find((u) => u.point === 'netfilter trampolines')?.reason;
    return {
      trampolines: loaded === 'trampolines' && points.includes('fentry/nf_hook_slow'),
      ...(unattachedReason?.startsWith(TRAMPOLINES_UNATTACHED)
        ? { trampolinesUnattached: unattachedReason.slice(TRAMPOLINES_UNATTACHED.length + 2) }
        : {}),
      fallback: traced,
      dropReasons: tracer.dropReasons(),
      unattached: rest,
    };
  } catch (e) {
    return { error: (e as Error).message };
  } finally {
    tracer.close();
  }
}

/** The first of the names tcpdump's library goes by that loads and compiles; else why none did. */
function libpcapFound(n: Native): DoctorFacts['libpcap'] {
  const name = LIBPCAP_NAMES.find((l) => {
    try {
      n.compileExpression('tcp', [l]);
      return true;
    } catch {
      return false;
    }
  });
  if (name) return { name };
  try {
    n.compileExpression('tcp', LIBPCAP_NAMES);
    return { name: LIBPCAP_NAMES.join(' or ') };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

/** pretend: PATHTRACE_PRETEND_KERNEL_LACKS's list, as a trace takes it (btf, netfilter, trampolines). */
export function findFacts(pretend: string[]): DoctorFacts {
  const arch = os.machine() === 'x86_64' ? 'amd64' : os.machine() === 'aarch64' ? 'arm64' : os.machine();
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  const caps = missingCaps(effectiveCaps(), true);
  const facts: DoctorFacts = {
    version: packageVersion(),
    kernel: { release: os.release(), machine: os.machine() },
    glibc: report.header?.glibcVersionRuntime ?? null,
    addonNeedsGlibc: addonNeedsGlibc(),
    addon: { error: '' },
    btf: { ok: false, error: 'not known (the addon did not load)' },
    missingCaps: caps,
    netfilterLinks: null,
    load: null,
    kprobes: existsSync('/sys/bus/event_source/devices/kprobe'),
    bpfLoop: null,
    libpcap: { error: 'not known (the addon did not load)' },
    tools: {
      nft: toolVersion('nft', ['--version'])?.replace(/ \(.*\)$/, '') ?? null,
      iptables: toolVersion('iptables', ['-V']),
      iptablesLegacy: onPath('iptables-legacy'),
      tcpdump: onPath('tcpdump'),
    },
    runtimes: ['podman', 'docker', 'crictl', 'nerdctl'].filter((t) => onPath(t)),
    kernelPackage: `linux-image-${arch}`,
  };
  let n: Native;
  try {
    n = native();
    facts.addon = { libbpf: n.libbpfVersion() };
  } catch (e) {
    facts.addon = { error: (e as Error).message };
    return facts;
  }
  const k = n.kernelFeatures();
  facts.btf =
    k.btf && !pretend.includes('btf')
      ? { ok: true }
      : {
          ok: false,
          error: k.btfError ?? "cannot load the kernel's BTF (CONFIG_DEBUG_INFO_BTF, /sys/kernel/btf/vmlinux)",
        };
  facts.bpfLoop = 'BPF_FUNC_loop' in n.kernelEnum('bpf_func_id');
  facts.libpcap = libpcapFound(n);
  if (caps.length || !facts.btf.ok) return facts;
  facts.netfilterLinks = k.netfilterLinks && !pretend.includes('netfilter');
  facts.load = loadProbe(n, pretend.includes('trampolines') ? 'kprobes' : 'trampolines', facts.netfilterLinks);
  return facts;
}
