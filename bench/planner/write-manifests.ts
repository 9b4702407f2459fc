/**
 * Writes the synthetic previous and next manifests plan-bench uses, for profiling one run by hand:
 *   node --conditions=@hotweights/source --import tsx bench/planner/write-manifests.ts 1000000 /tmp/m
 *   node --cpu-prof --conditions=@hotweights/source --import tsx bench/planner/plan-run.ts \
 *     /tmp/m/prev.json /tmp/m/next.json /tmp/m/plan.json 67108864
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serializeManifest } from '@hotweights/core';
import { syntheticManifest } from './synthetic-manifest.js';

const [countArg, dir] = process.argv.slice(2);
if (!countArg || !dir) throw new Error('usage: write-manifests.ts <entries> <dir>');
const n = Number(countArg);
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'prev.json'), serializeManifest(syntheticManifest(n, 'v1')));
writeFileSync(join(dir, 'next.json'), serializeManifest(syntheticManifest(n, 'v2', { changedEvery: 10 })));
