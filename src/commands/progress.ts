// A progress line for inputs that take a while: shown on a terminal only (a log would keep every redraw),
// from the first second on, redrawn at most twice a second, erased when done.
const bytes = (n: number) =>
  n >= 2 ** 30
    ? `${(n / 2 ** 30).toFixed(1)} GiB`
    : n >= 2 ** 20
      ? `${Math.round(n / 2 ** 20)} MiB`
      : `${Math.ceil(n / 1024)} KiB`;

/** "reading big.pcap: 37 % of 2.1 GiB". Pure. */
export function progressText(label: string, pos: number, size: number): string {
  return `reading ${label}: ${size ? Math.floor((pos * 100) / size) : 100} % of ${bytes(size)}`;
}

export class ProgressLine {
  private readonly started: number;
  private last = -Infinity;
  private shown = false;

  constructor(
    private readonly out: { write(s: string): unknown },
    private readonly now: () => number = Date.now,
  ) {
    this.started = now();
  }

  update(label: string, pos: number, size: number): void {
    const t = this.now();
    if (t - this.started < 1000 || t - this.last < 500) return;
    this.last = t;
    this.shown = true;
    this.out.write(`\r${progressText(label, pos, size)}\x1b[K`);
  }

  /** Erases the line, if one was drawn. */
  end(): void {
    if (this.shown) this.out.write('\r\x1b[K');
    this.shown = false;
  }
}
