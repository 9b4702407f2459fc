/**
 * Writes the synthetic previous and next manifests plan-bench uses, for profiling one run by hand:
 *   node --conditions=@hotweights/source --import tsx bench/planner/write-manifests.ts 1000000 /tmp/m [json]
 *   node --cpu-prof --conditions=@hotweights/source --import tsx bench/planner/plan-run.ts \
 *     /tmp/m/prev.manifest /tmp/m/next.manifest /tmp/m/plan.json 67108864
 * Binary manifests (`.manifest`, the default form) unless `json` is given (`.json`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeManifest, serializeManifestBinary } from '@hotweights/manifest';
import { syntheticManifest } from './synthetic-manifest.js';

const [countArg, dir, format] = process.argv.slice(2);
if (!countArg || !dir) throw new Error('usage: write-manifests.ts <entries> <dir> [binary|json]');
const n = Number(countArg);
const json = format === 'json';
const write = (name: string, m: ReturnType<typeof syntheticManifest>) =>
  writeFileSync(
    join(dir, `${name}${json ? '.json' : '.manifest'}`),
    json ? serializeManifest(m) : serializeManifestBinary(m),
  );
mkdirSync(dir, { recursive: true });
write('prev', syntheticManifest(n, 'v1'));
write('next', syntheticManifest(n, 'v2', { changedEvery: 10 }));
