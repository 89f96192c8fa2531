// The full-screen UI as a session sink: ink renders the store on the
// alternate screen; on exit the screen is restored and the text summary printed.
import { render, type Instance } from 'ink';
import { createElement } from 'react';
import type { DeviceNames, Journey } from '../correlate/journey.js';
import { formatSummary, type Style } from '../output/text.js';
import type { ReadyInfo, Sink } from '../output/sink.js';
import type { Summary } from '../report/summary.js';
import { App } from './App.js';
import type { LiveStats, TuiStore } from './store.js';

export class TuiSink implements Sink {
  private ink: Instance | null = null;

  constructor(
    private readonly store: TuiStore,
    private readonly devices: () => DeviceNames,
    private readonly style: Style,
    private readonly color: boolean,
    private readonly onQuit: () => void,
  ) {}

  ready(info: ReadyInfo): void {
    this.store.setReady(info);
    for (const u of info.unavailable) this.store.note(`not traced: ${u.point}: ${u.reason}`);
    process.stdout.write('\x1b[?1049h'); // the alternate screen: the terminal comes back as it was
    const devices = { name: (i: number) => this.devices().name(i) };
    this.ink = render(
      createElement(App, { store: this.store, devices, theme: { color: this.color }, onQuit: this.onQuit }),
      {
        exitOnCtrlC: false,
        patchConsole: false,
      },
    );
  }

  packet(j: Journey): void {
    this.store.add(j);
  }

  note(message: string): void {
    this.store.note(message);
  }

  stats(s: LiveStats): void {
    this.store.setStats(s);
  }

  /** Closes the UI; safe to call more than once. */
  close(): void {
    if (!this.ink) return;
    this.ink.unmount();
    this.ink = null;
    process.stdout.write('\x1b[?1049l');
  }

  summary(s: Summary): void {
    this.close();
    process.stdout.write(formatSummary(s, this.style) + '\n');
  }
}
