// `pathtrace --version`: the version, the libbpf the addon runs with and what this kernel offers, so that
// a report says what ran where.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { effectiveCaps, missingCaps } from './caps.js';
import { native } from '../trace/native.js';

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

export interface Found {
  version: string;
  kernel: string; // "6.1.0-35-amd64 x86_64"
  addon:
    { libbpf: string; btf: boolean; btfError?: string; netfilterLinks: boolean; bpfLoop: boolean } | { error: string };
  /** Probing for BPF program types needs the rights to load them. */
  privileged: boolean;
  kprobes: boolean; // the kprobe PMU libbpf attaches through
}

/** The text of --version. Pure. */
export function versionText(f: Found): string {
  const lines = [`pathtrace ${f.version}`];
  if ('error' in f.addon) return [...lines, `addon: ${f.addon.error}`].join('\n');
  const yes = (b: boolean) => (b ? 'yes' : 'no');
  lines.push(`libbpf ${f.addon.libbpf.replace(/^v/, '')} (carried with the addon)`);
  const links = f.privileged ? yes(f.addon.netfilterLinks) : 'run as root to tell';
  lines.push(
    `kernel ${f.kernel}: BTF ${f.addon.btf ? 'yes' : `no (${f.addon.btfError})`}; BPF netfilter links ${links}; ` +
      `kprobes ${yes(f.kprobes)}; bpf_loop ${f.addon.bpfLoop ? 'yes (filter expressions run)' : 'no (no filter expressions: Linux 5.17+)'}`,
  );
  return lines.join('\n');
}

export function findVersion(): Found {
  let addon: Found['addon'];
  try {
    const n = native();
    addon = {
      libbpf: n.libbpfVersion(),
      ...n.kernelFeatures(),
      bpfLoop: 'BPF_FUNC_loop' in n.kernelEnum('bpf_func_id'),
    };
  } catch (e) {
    addon = { error: (e as Error).message };
  }
  return {
    version: packageVersion(),
    kernel: `${os.release()} ${os.machine()}`,
    addon,
    privileged: missingCaps(effectiveCaps(), false).length === 0,
    kprobes: existsSync('/sys/bus/event_source/devices/kprobe'),
  };
}
