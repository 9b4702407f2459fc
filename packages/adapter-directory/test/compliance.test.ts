import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import { runAdapterCompliance, type VersionFiles } from '@hotweights/compliance/adapter';
import { afterAll, describe, expect, it } from 'vitest';

const work = await mkdtemp(join(tmpdir(), 'hw-dir-compliance-'));
afterAll(() => rm(work, { recursive: true, force: true }));

/** Every regular file under `dir`, by relative path. */
async function filesUnder(dir: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const path = join(e.parentPath, e.name);
    out.set(relative(dir, path), await readFile(path));
  }
  return out;
}

/** What a serving process sees: `current` resolved once, then its files read. */
async function readLive(target: string): Promise<VersionFiles | null> {
  let dir: string;
  try {
    dir = await realpath(join(target, 'current'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return filesUnder(dir);
}

describe('the directory adapter', () => {
  it('passes the adapter compliance suite, leaving a foreign folder in versions/ alone', async () => {
    const target = join(work, 'suite');
    const report = await runAdapterCompliance({
      open: async () => new DirectoryAdapter({ target }),
      readLive: () => readLive(target),
      plantForeign: async () => {
        await mkdir(join(target, 'versions', 'kept-by-another-tool'), { recursive: true });
        await writeFile(join(target, 'versions', 'kept-by-another-tool', 'notes.txt'), 'mine');
        return async () =>
          (await readFile(join(target, 'versions', 'kept-by-another-tool', 'notes.txt'), 'utf8')) === 'mine';
      },
    });
    expect(report.failures).toEqual([]);
    expect(report.passed).toHaveLength(8);
  });

  it('switches `current` by renaming a symlink over it: a reader in another process never finds it missing', async () => {
    const target = join(work, 'watched');
    // Two committed versions to flip between.
    const adapter = new DirectoryAdapter({ target });
    await runAdapterCompliance({ open: async () => adapter, readLive: () => readLive(target) });
    const stop = join(work, 'stop-watching');
    // The watcher reads the link as fast as it can (no awaits) until told to stop.
    const watcher = spawn(
      process.execPath,
      [
        '-e',
        `const fs = require('node:fs');
         const link = ${JSON.stringify(join(target, 'current'))};
         let reads = 0, missing = 0; const seen = new Set();
         process.stdout.write('ready\\n');
         for (;;) {
           for (let i = 0; i < 500; i++) {
             reads++;
             try { seen.add(fs.readlinkSync(link)); } catch { missing++; }
           }
           if (fs.existsSync(${JSON.stringify(stop)})) break;
         }
         process.stdout.write(JSON.stringify({ reads, missing, seen: [...seen] }));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    let ready: () => void = () => {};
    const started = new Promise<void>((res) => {
      ready = res;
    });
    watcher.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) ready();
    });
    const exited = new Promise<number | null>((res) => watcher.on('exit', res));
    await started;
    for (let i = 0; i < 300; i++) await adapter.rollback();
    await writeFile(stop, '');
    expect(await exited).toBe(0);
    const result = JSON.parse(out.slice('ready\n'.length)) as {
      reads: number;
      missing: number;
      seen: string[];
    };
    expect(result.missing).toBe(0);
    expect(result.reads).toBeGreaterThan(0);
    expect(result.seen.every((s) => s.startsWith('versions/'))).toBe(true);
  });
});
