// What a packaged install says about itself and about what the server lacks: --version's text, the
// addon's load failures, and the tools a trace or a demo runs beside it.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { addonFailure, addonPath, ADDON_PATH } from '../../src/trace/native.js';
import { missingToolNotes, missingTools, onPath } from '../../src/trace/tools.js';
import { versionText, type Found } from '../../src/commands/version.js';

test('--version: the version, the carried libbpf and what the kernel offers; without root, what it cannot tell', () => {
  const found: Found = {
    version: '0.1.0',
    kernel: '6.1.0-35-amd64 x86_64',
    privileged: true,
    kprobes: true,
    addon: { libbpf: 'v1.4', btf: true, netfilterLinks: false, bpfLoop: true },
  };
  assert.equal(
    versionText(found),
    'pathtrace 0.1.0\nlibbpf 1.4 (carried with the addon)\n' +
      'kernel 6.1.0-35-amd64 x86_64: BTF yes; BPF netfilter links no; kprobes yes; bpf_loop yes (filter expressions run)',
  );
  assert.match(
    versionText({ ...found, addon: { ...found.addon, bpfLoop: false } as Found['addon'] }),
    /; bpf_loop no \(no filter expressions: Linux 5\.17\+\)$/,
  );
  assert.match(versionText({ ...found, privileged: false }), /BPF netfilter links run as root to tell;/);
  assert.match(
    versionText({
      ...found,
      addon: {
        libbpf: 'v1.4',
        btf: false,
        btfError: 'no /sys/kernel/btf/vmlinux',
        netfilterLinks: false,
        bpfLoop: false,
      },
    }),
    /BTF no \(no \/sys\/kernel\/btf\/vmlinux\)/,
  );
  assert.equal(
    versionText({ ...found, addon: { error: 'cannot load the native addon (x)' } }),
    'pathtrace 0.1.0\naddon: cannot load the native addon (x)',
  );
});

test("the addon: this tree's build when there is one, else the one prebuilt for this machine", () => {
  const has =
    (...files: string[]) =>
    (p: string) =>
      files.some((f) => p.endsWith(f));
  const built = 'build/Release/pathtrace.node';
  const x64 = 'prebuilds/linux-x64/pathtrace.node';
  assert.equal(addonPath('/p', 'x64', has(built, x64)), `/p/${built}`);
  assert.equal(addonPath('/p', 'x64', has(x64)), `/p/${x64}`);
  assert.equal(
    addonPath('/p', 'arm64', has('prebuilds/linux-arm64/pathtrace.node')),
    '/p/prebuilds/linux-arm64/pathtrace.node',
  );
  // Neither: the development tree's path, which the error names ("not built").
  assert.equal(addonPath('/p', 'arm64', has(x64)), `/p/${built}`);
});

test("the addon not loading: not built, or the loader's one line with what the prebuilt one needs", () => {
  assert.equal(
    addonFailure(new Error('Cannot find module'), false),
    `the native addon is not built (${ADDON_PATH}); run scripts/setup.sh`,
  );
  const old = new Error(
    `/lib/x86_64-linux-gnu/libc.so.6: version \`GLIBC_2.34' not found (required by ${ADDON_PATH})\n    at x`,
  );
  const why = addonFailure(old, true);
  assert.match(
    why,
    /^cannot load the native addon \(\/lib\/x86_64-linux-gnu\/libc\.so\.6: version `GLIBC_2\.34' not found/,
  );
  assert.match(why, /built for glibc 2\.34, newer than this system's; the package's prebuilt addon needs 2\.28/);
  assert.ok(!why.includes('\n'));
  assert.equal(
    addonFailure(new Error('libbpf.so.1: cannot open shared object file'), true),
    'cannot load the native addon (libbpf.so.1: cannot open shared object file)',
  );
});

test('tools: found on PATH only when executable; what a trace loses without nft, and what a demo needs', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pt-tools-'));
  try {
    writeFileSync(path.join(dir, 'nft'), '#!/bin/sh\n');
    chmodSync(path.join(dir, 'nft'), 0o755);
    writeFileSync(path.join(dir, 'iptables'), '');
    assert.equal(onPath('nft', `/nonexistent:${dir}`), true);
    assert.equal(onPath('iptables', dir), false, 'not executable');
    assert.equal(onPath('tcpdump', dir), false);
    assert.equal(onPath(path.join(dir, 'nft'), ''), true, 'a path is looked at itself');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const has =
    (...names: string[]) =>
    (n: string) =>
      names.includes(n);
  assert.deepEqual(missingToolNotes(has('nft')), []);
  assert.deepEqual(missingToolNotes(has('nft', 'iptables-nft-save')), []);
  assert.match(
    missingToolNotes(has('iptables-nft-save'))[0],
    /^nft is not installed: a drop in a table nft made is told by its hook/,
  );
  assert.match(missingToolNotes(has())[0], /^neither nft nor iptables is installed: .*\(apt install nftables\)$/);
  assert.deepEqual(
    missingTools(
      [
        ['ip', 'iproute2'],
        ['iptables', 'iptables'],
        ['/usr/sbin/nginx', 'nginx'],
      ],
      has('ip'),
    ),
    ['iptables', 'nginx'],
  );
  assert.deepEqual(missingTools([['ip', 'iproute2']], has()), ['ip (iproute2)']);
});
