// Locations of the repository's files, from the compiled test (dist/test/...).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const BIN = path.join(ROOT, 'bin', 'pathtrace.js');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');
