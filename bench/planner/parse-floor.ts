/**
 * The floor for loading two manifests: read both files into memory (at once, as the planner does),
 * nothing else; JSON files are also JSON.parse'd (the floor of the JSON form). Prints one JSON line
 * like plan-run.ts. Usage: parse-floor.ts <prev> <next>
 */
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';

const paths = process.argv.slice(2);
const t0 = performance.now();
const files = await Promise.all(paths.map((p) => readFile(p)));
let bytes = 0;
for (const [i, f] of files.entries()) {
  bytes += f.length;
  if (paths[i]?.endsWith('.json')) JSON.parse(f.toString('utf8'));
}
const t1 = performance.now();
console.log(JSON.stringify({ total_ms: t1 - t0, bytes, peak_rss: process.resourceUsage().maxRSS * 1024 }));
