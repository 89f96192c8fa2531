// The programs pathtrace runs beside itself. All are optional for a trace: a missing one disables only
// what needs it, and that is said once at start; a command that cannot work without one refuses in a line.
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/** Whether `name` is an executable on PATH (or, given a path, there). */
export function onPath(name: string, PATH = process.env.PATH ?? ''): boolean {
  const dirs = name.includes('/') ? [''] : PATH.split(':').filter(Boolean);
  return dirs.some((d) => {
    try {
      accessSync(path.join(d, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** What a trace loses for the rule readers it lacks: nft, and the iptables-save of each backend. Pure. */
export function missingToolNotes(has: (name: string) => boolean): string[] {
  const iptables = ['iptables-nft-save', 'iptables-legacy-save'].some((t) => has(t));
  if (has('nft')) return [];
  return [
    iptables
      ? "nft is not installed: a drop in a table nft made is told by its hook and chain's priority, not by its rule (apt install nftables)"
      : 'neither nft nor iptables is installed: a drop in netfilter is told by its hook, not by its table, chain and rule (apt install nftables)',
  ];
}

/** The tools a command needs, missing ones as "ip (iproute2)"; empty when all are there. */
export function missingTools(needs: [tool: string, pkg: string][], has: (name: string) => boolean = onPath): string[] {
  return needs
    .filter(([t]) => !has(t))
    .map(([t, pkg]) => (path.basename(t) === pkg ? pkg : `${path.basename(t)} (${pkg})`));
}
