// Tells when the traced namespace's ruleset changed, without reading it: nftables announces every
// change (nft, iptables-nft, set elements) on a netlink group the addon listens to; iptables-legacy
// announces nothing, but its tables' list (what moves the probes) is cheap to compare.
import { native } from '../trace/native.js';
import { legacyTableNames } from './read.js';

/** How long a burst of changes (an iptables-restore of thousands of rules) may go on before it is read anyway. */
const MAX_DEFER_MS = 2000;
/** Quiet time after a change before reading: one reading for a burst. */
const QUIET_MS = 200;
/** Legacy tables are looked for this often (entering the namespace costs a thread). */
const LEGACY_EVERY_MS = 1000;

export class RulesetWatch {
  private dirtySince: number | null = null;
  private lastChange = 0;
  private legacy: string;
  private legacyAt = 0;

  private constructor(
    private readonly nsPath: string,
    private fd: number,
  ) {
    this.legacy = this.legacyTables();
  }

  /** null when the kernel or the namespace does not let us listen (then poll). */
  static open(nsPath: string): RulesetWatch | null {
    try {
      return new RulesetWatch(nsPath, native().nftablesWatch(nsPath));
    } catch {
      return null;
    }
  }

  private legacyTables(): string {
    return legacyTableNames(this.nsPath)?.join('|') ?? this.legacy;
  }

  /** Whether the ruleset should be read now: it changed, and the burst is over (or has gone on for long). */
  due(now = Date.now()): boolean {
    let legacy = this.legacy;
    if (now - this.legacyAt >= LEGACY_EVERY_MS) {
      legacy = this.legacyTables();
      this.legacyAt = now;
    }
    if (native().nftablesChanges(this.fd) > 0 || legacy !== this.legacy) {
      this.legacy = legacy;
      this.lastChange = now;
      this.dirtySince ??= now;
    }
    if (this.dirtySince === null) return false;
    if (now - this.lastChange < QUIET_MS && now - this.dirtySince < MAX_DEFER_MS) return false;
    this.dirtySince = null;
    return true;
  }

  close(): void {
    if (this.fd >= 0) native().closeFd(this.fd);
    this.fd = -1;
  }
}
