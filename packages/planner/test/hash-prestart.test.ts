import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { afterAll, describe, expect, it } from 'vitest';
import { hashRanges, startHashWorkers } from '../src/hash-pool.js';
import { prestartHashWorkers, takePrestartedHashWorkers } from '../src/hash-prestart.js';
import { DEFAULT_CHUNK_BYTES, DEFAULT_PIECE_BYTES, type HashWorkerReply } from '../src/hash-runner.js';
import { bytes, tempDir } from './fixtures.js';

const tmp = tempDir('hash-prestart');
afterAll(() => tmp.cleanup());
const MIB = 1024 * 1024;
const defaults = { chunkBytes: DEFAULT_CHUNK_BYTES, pieceBytes: DEFAULT_PIECE_BYTES, shm: true };

describe('hash workers started before the command loads', () => {
  it('are taken by the next startHashWorkers and hash its tasks', async () => {
    const path = join(tmp.path, 'a.bin');
    const data = bytes(8 * MIB, 1);
    writeFileSync(path, data);
    const [early] = prestartHashWorkers(1);
    if (!early) throw new Error('no worker started');
    let hashedByEarly = 0;
    early.worker.on('message', (m: HashWorkerReply) => {
      if ('hexes' in m && m.hexes) hashedByEarly += m.hexes.length;
    });
    // Eight 1 MiB tasks on one worker (the main thread left out): the early one.
    const tasks = Array.from({ length: 8 }, (_, i) => ({ path, ranges: [{ offset: i * MIB, length: MIB }] }));
    const options = { algo: 'blake3', threads: 1, mainThread: false } as const;
    const started = startHashWorkers(options);
    const got = await hashRanges(tasks, { ...options, started });
    expect(got).toEqual(
      tasks.map((_, i) => [new Blake3Hasher().update(data.subarray(i * MIB, (i + 1) * MIB)).digest('hex')]),
    );
    expect(hashedByEarly).toBe(tasks.length);
    // Handed over once: nothing is left for another call.
    expect(takePrestartedHashWorkers(defaults, 1)).toEqual([]);
  });

  it('are stopped, not used, when the call wants other settings or fewer workers', async () => {
    const [a, b] = prestartHashWorkers(2);
    if (!a || !b) throw new Error('no workers started');
    const exits = [once(a.worker, 'exit'), once(b.worker, 'exit')];
    expect(takePrestartedHashWorkers({ ...defaults, pieceBytes: 2 * MIB }, 2)).toEqual([]);
    await Promise.all(exits);

    const [c, d] = prestartHashWorkers(2);
    if (!c || !d) throw new Error('no workers started');
    const stopped = once(d.worker, 'exit');
    const taken = takePrestartedHashWorkers(defaults, 1);
    expect(taken.map((w) => w.worker)).toEqual([c.worker]);
    await stopped;
    await c.worker.terminate();
  });

  it('do not keep a process alive that never hashes', () => {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
    const prestart = pathToFileURL(join(import.meta.dirname, '../src/hash-prestart.ts')).href;
    const run = spawnSync(
      process.execPath,
      [
        '--conditions=@hotweights/source',
        '--import',
        tsx,
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(prestart)}); m.prestartHashWorkers(1); console.log('started');`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    );
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('started');
    expect({ status: run.status, signal: run.signal }).toEqual({ status: 0, signal: null });
  });
});
