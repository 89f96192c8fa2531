// The traced namespace's device names, by ifindex, read again when an unknown one shows up.
import { native } from './native.js';

/** Names for what the kernel reports as numbers: devices of the traced namespace. */
export class Devices {
  private names: Record<number, string> = {};
  private refreshedAt = 0;

  constructor(private readonly netnsPath: string) {
    this.refresh();
  }

  private refresh(): void {
    try {
      this.names = native().interfaces(this.netnsPath);
    } catch {
      /* the namespace went away: keep the names we had */
    }
    this.refreshedAt = Date.now();
  }

  /** Every device of the namespace, by ifindex (read again when the last reading is a second old). */
  all(): Readonly<Record<number, string>> {
    if (Date.now() - this.refreshedAt > 1000) this.refresh();
    return this.names;
  }

  name(ifindex: number): string {
    if (!ifindex) return '';
    if (!(ifindex in this.names) && Date.now() - this.refreshedAt > 1000) this.refresh();
    return this.names[ifindex] ?? `if${ifindex}`;
  }
}
