import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { addonPath } from '@hotweights/shm';
import { describe, expect, it } from 'vitest';

const PROBE = fileURLToPath(new URL('./fixtures/lazy-probe.ts', import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

describe('loading is lazy', () => {
  it('importing @hotweights/shm opens no addon; the first call opens exactly its own', () => {
    const out = execFileSync(process.execPath, ['--conditions=@hotweights/source', '--import', TSX, PROBE], {
      encoding: 'utf8',
    });
    const report = JSON.parse(out) as { afterImport: number; afterUse: string[]; pageSize: number };
    expect(report.afterImport).toBe(0);
    expect(report.afterUse).toEqual([addonPath()]);
    expect(report.pageSize).toBeGreaterThanOrEqual(4096);
  });
});
