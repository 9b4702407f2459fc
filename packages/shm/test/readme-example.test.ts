/**
 * The README's first example runs as written (in a child process, on a segment of its own), and a
 * mapping longer than its file is an error to catch, not a bus error that kills the process.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { MapBeyondFileError, mapFile, mapRangeFd } from '@hotweights/shm';
import { afterAll, describe, expect, it } from 'vitest';

const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join('/dev/shm', 'hw-shm-readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('@hotweights/shm README', { timeout: 60_000 }, () => {
  it('the mapFile example runs as written', () => {
    const readme = readFileSync(join(PACKAGE_DIR, 'README.md'), 'utf8');
    const example = /```ts\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
    expect(example).toContain('mapFile(');
    const segment = join(dir, 'my-segment');
    const script = `${example.replaceAll('/dev/shm/my-segment', segment)}\nconsole.log(view.length, view[0]);\n`;
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const r = spawnSync(
      process.execPath,
      ['--conditions=@hotweights/source', '--import', tsx, '--input-type=module', '-e', script],
      // Plain output, whatever the runner's colour settings (nx sets FORCE_COLOR under CI).
      { cwd: PACKAGE_DIR, encoding: 'utf8', env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1' } },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(`${1 << 20} 42`);
    expect(readFileSync(segment)[0]).toBe(42);
  });

  it('refuses a mapping longer than the file instead of crashing on a bus error', () => {
    const path = join(dir, 'short');
    const fd = openSync(path, 'w+');
    ftruncateSync(fd, 4096);
    try {
      expect(() => mapFile(path, { length: 1 << 20 })).toThrow(MapBeyondFileError);
      expect(() => mapFile(path, { length: 1 << 20 })).toThrow(
        'cannot map bytes 0..1048576 of a file of 4096 bytes: map at most its size, or grow it first',
      );
      expect(() => mapRangeFd(fd, 4000, 200)).toThrow(MapBeyondFileError);
      expect(mapRangeFd(fd, 0, 4096).view.length).toBe(4096);
    } finally {
      closeSync(fd);
    }
  });
});
