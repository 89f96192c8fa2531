// Real rootful podman containers for the tests: a busybox image made here (no registry is reachable: busybox-static's
// binary imported as an image), each container on a namespace of the test's Lab, so that no podman network (nor its
// private range) is made. runc: this machine's cgroups refuse crun; podman's default limits exceed the sandbox's.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const IMAGE = 'localhost/pathtrace-test-busybox:latest';
const RUN_FLAGS = ['--runtime', 'runc', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

/** What the container tests lack here, as the packages to install; [] when nothing. */
export function containerToolsMissing(): string[] {
  const missing: string[] = [];
  const has = (cmd: string, args: string[]) => !spawnSync(cmd, args).error;
  if (!has('podman', ['--version'])) missing.push('podman');
  if (!has('runc', ['--version'])) missing.push('runc');
  if (!has('busybox', ['true'])) missing.push('busybox-static');
  return missing;
}

/** The test image, imported once: busybox and its applets (sh, nc, cat, sleep) at /bin. */
export function busyboxImage(): string {
  if (spawnSync('podman', ['image', 'exists', IMAGE]).status === 0) return IMAGE;
  const root = mkdtempSync(path.join(tmpdir(), 'pt-image-'));
  try {
    mkdirSync(path.join(root, 'bin'));
    copyFileSync(execFileSync('sh', ['-c', 'command -v busybox'], { encoding: 'utf8' }).trim(), `${root}/bin/busybox`);
    for (const applet of ['sh', 'nc', 'cat', 'sleep']) symlinkSync('busybox', path.join(root, 'bin', applet));
    const tar = path.join(root, '..', `${path.basename(root)}.tar`);
    execFileSync('tar', ['-C', root, '-cf', tar, '.']);
    execFileSync('podman', ['import', '-q', tar, IMAGE], { stdio: 'ignore' });
    rmSync(tar);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return IMAGE;
}

/** A container running `command` in the namespace /run/netns/NETNS; its name. Removed by removeContainer. */
export function runContainer(name: string, netns: string, command: string[]): string {
  execFileSync(
    'podman',
    ['run', '-d', '--name', name, ...RUN_FLAGS, '--network', `ns:/run/netns/${netns}`, busyboxImage(), ...command],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return name;
}

export function removeContainer(name: string): void {
  spawnSync('podman', ['rm', '-f', '-t', '0', name], { stdio: 'ignore' });
}

/** The test image, once the tests are done with it. */
export function removeImage(): void {
  spawnSync('podman', ['rmi', '-f', IMAGE], { stdio: 'ignore' });
}
