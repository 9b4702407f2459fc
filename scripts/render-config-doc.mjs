// Regenerates the variable table in docs/CONFIG.md from packages/core's VARIABLES.
import { readFileSync, writeFileSync } from 'node:fs';
import { renderConfigTable } from '../packages/core/dist/index.js';

const path = new URL('../docs/CONFIG.md', import.meta.url);
const doc = readFileSync(path, 'utf8');
const begin = '<!-- config-table:begin -->';
const end = '<!-- config-table:end -->';
const start = doc.indexOf(begin);
const stop = doc.indexOf(end);
if (start < 0 || stop < 0) throw new Error('docs/CONFIG.md lacks the config-table markers');
writeFileSync(path, `${doc.slice(0, start + begin.length)}\n${renderConfigTable()}${doc.slice(stop)}`);
