// Regenerates the tables of docs/CONFIG.md from packages/core: the variables it reads (VARIABLES)
// and the seed documents' variables it replaced (REPLACED_VARIABLES).
import { readFileSync, writeFileSync } from 'node:fs';
import { renderConfigTable, renderReplacedVariables } from '../packages/core/dist/index.js';

const path = new URL('../docs/CONFIG.md', import.meta.url);
let doc = readFileSync(path, 'utf8');
for (const [marker, table] of [
  ['config-table', renderConfigTable()],
  ['replaced-variables', renderReplacedVariables()],
]) {
  const begin = `<!-- ${marker}:begin -->`;
  const end = `<!-- ${marker}:end -->`;
  const start = doc.indexOf(begin);
  const stop = doc.indexOf(end);
  if (start < 0 || stop < 0) throw new Error(`docs/CONFIG.md lacks the ${marker} markers`);
  doc = `${doc.slice(0, start + begin.length)}\n${table}${doc.slice(stop)}`;
}
writeFileSync(path, doc);
