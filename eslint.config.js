// Lint for the TypeScript sources, tests and benchmarks: typescript-eslint's recommended rules, no import cycles
// (a cycle is two modules that are really one; import-x/no-cycle does not follow type-only imports), and the
// layers' import rules.
import tseslint from 'typescript-eslint';
import importX from 'eslint-plugin-import-x';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';

export default tseslint.config(
  { ignores: ['dist/', 'build/', 'node_modules/', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  importX.flatConfigs.typescript,
  {
    settings: {
      'import-x/resolver-next': [
        createTypeScriptImportResolver({
          project: ['./tsconfig.json', './tsconfig.test.json'],
          noWarnOnMultipleProjects: true,
        }),
      ],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      // The layers of docs/ARCHITECTURE.md: only commands/ sees commands/; what formats (output/, tui/) never
      // sees the session that runs a trace.
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            {
              target: ['trace', 'correlate', 'rules', 'report', 'capture', 'output', 'tui', 'lab', 'agent'].map(
                (d) => `./src/${d}`,
              ),
              from: './src/commands',
              message: 'only the command layer imports commands/',
            },
            {
              target: ['trace', 'correlate', 'rules', 'report', 'capture', 'output', 'tui', 'lab'].map(
                (d) => `./src/${d}`,
              ),
              from: './src/agent',
              message: "agent/ is the agent command's engine, above the trace's: only commands/ uses it",
            },
            {
              target: ['./src/output', './src/tui'],
              from: './src/trace/session.ts',
              message: 'outputs see a trace through output/sink.ts, not the session',
            },
            {
              target: './src/capture',
              from: './src/output',
              except: ['./records.ts'],
              message: 'capture/ reads and writes captures; what formats a trace is above it (records.ts: the shapes)',
            },
            {
              // (rules/ still gives the journey the types of what it adds to it: an attribution, a queue's facts.)
              target: './src/correlate',
              from: ['./src/report', './src/output', './src/tui', './src/capture'],
              message: 'the correlator is below what reports and formats: move what both need below',
            },
          ],
        },
      ],
    },
  },
);
