// The full-screen view of --netns twice: each namespace's stages side by side, live, and between them each
// connection's merge verdict (redrawn from what both traced so far), the clocks below. q stops both traces;
// the final merge is printed when the screen is restored.
import { Box, render, Text, useInput, useStdout, type Instance } from 'ink';
import { createElement, useEffect, useState } from 'react';
import { clockText, flowText } from '../output/merge.js';
import type { Merged } from '../report/merge.js';
import type { TraceRecord } from '../output/records.js';
import { StagesView, type Theme } from './App.js';
import { stageView } from '../pictures/path.js';
import { deathStage, stagesReached, type StageCounts } from './stages.js';

export class AcrossStore {
  version = 0;
  readonly stages: [StageCounts, StageCounts] = [new Map(), new Map()];
  readonly packets: [number, number] = [0, 0];
  merged: Merged | null = null;
  readonly notes: string[] = [];

  constructor(readonly hosts: [string, string]) {}

  record(host: 0 | 1, r: TraceRecord): void {
    if (r.type !== 'packet') return;
    this.packets[host]++;
    const j = stageView(r);
    const died = deathStage(j);
    for (const s of stagesReached(j)) {
      const c = this.stages[host].get(s) ?? { reached: 0, died: 0 };
      c.reached++;
      if (s === died) c.died++;
      this.stages[host].set(s, c);
    }
    this.version++;
  }

  message(host: 0 | 1, line: string): void {
    this.notes.push(`[${this.hosts[host]}] ${line.replace(/^pathtrace: /, '')}`);
    if (this.notes.length > 50) this.notes.shift();
    this.version++;
  }

  setMerged(m: Merged): void {
    this.merged = m;
    this.version++;
  }
}

export function AcrossView({ store, theme, onQuit }: { store: AcrossStore; theme: Theme; onQuit: () => void }) {
  const [, setVersion] = useState(store.version);
  useEffect(() => {
    const t = setInterval(() => setVersion(store.version), 250);
    return () => clearInterval(t);
  }, [store]);
  useInput((input) => {
    if (input === 'q') onQuit();
  });
  const { stdout } = useStdout();
  const columns = stdout.columns || 100,
    rows = stdout.rows || 30;
  const [a, b] = store.hosts;
  const m = store.merged;
  const connections = (m?.connections ?? []).slice(-Math.max(1, rows - 16));
  return (
    <Box flexDirection="column" width={columns} height={rows}>
      <Text wrap="truncate">
        <Text bold>pathtrace</Text>
        {` · ${a} ⇄ ${b} · ${store.packets[0]} / ${store.packets[1]} packets`}
      </Text>
      <Box flexDirection="row">
        {([0, 1] as const).map((i) => (
          <Box key={store.hosts[i]} flexDirection="column" width="50%" paddingRight={1}>
            <Text bold wrap="truncate">{`${store.hosts[i]} (${store.packets[i]} packets)`}</Text>
            <StagesView stages={store.stages[i]} theme={theme} />
          </Box>
        ))}
      </Box>
      <Text bold>{`between ${a} and ${b}`}</Text>
      <Box flexDirection="column" flexGrow={1}>
        {connections.length ? (
          connections.map((c) => <Text key={c.flow} wrap="truncate">{`${flowText(c.flow)} · ${c.verdict}`}</Text>)
        ) : (
          <Text dimColor>no packet between them yet</Text>
        )}
      </Box>
      <Text wrap="truncate" dimColor>
        {m ? clockText(m) : ''}
      </Text>
      <Text wrap="truncate" color={theme.color ? 'yellow' : undefined}>
        {store.notes.at(-1) ?? ''}
      </Text>
      <Text dimColor>q stops both traces and prints the merge</Text>
    </Box>
  );
}

/** Draws the view on the alternate screen until close(). */
export function showAcross(store: AcrossStore, color: boolean, onQuit: () => void): { close(): void } {
  process.stdout.write('\x1b[?1049h');
  let ink: Instance | null = render(createElement(AcrossView, { store, theme: { color }, onQuit }), {
    exitOnCtrlC: false,
    patchConsole: false,
  });
  return {
    close() {
      if (!ink) return;
      ink.unmount();
      ink = null;
      process.stdout.write('\x1b[?1049l');
    },
  };
}
