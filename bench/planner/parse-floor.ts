/**
 * The floor for loading two JSON manifests: read both files and JSON.parse them, nothing else.
 * Prints one JSON line like plan-run.ts. Usage: parse-floor.ts <prev.json> <next.json>
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';

const paths = process.argv.slice(2);
const t0 = performance.now();
// One after the other, like the planner loads its two manifests.
const docs: { entries: { count: number } }[] = [];
for (const p of paths) docs.push(JSON.parse(await readFile(p, 'utf8')));
const t1 = performance.now();
console.log(
  JSON.stringify({
    total_ms: t1 - t0,
    entries: docs.reduce((s, d) => s + d.entries.count, 0),
    peak_rss: process.resourceUsage().maxRSS * 1024,
  }),
);
