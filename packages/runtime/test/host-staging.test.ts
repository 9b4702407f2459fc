import { spawn } from 'node:child_process';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StagingError } from '@hotweights/core';
import { afterAll, describe, expect, it } from 'vitest';
import { HostStaging } from '../src/host-staging.js';
import { spawnRank } from './spawn-ranks.js';

const root = mkdtempSync(join('/dev/shm', 'hw-staging-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const bucket = (id: number, size: number) => ({ bucket_id: id, size, consumer_ranks: [0], items: [] });

describe('host staging', { timeout: 60_000 }, () => {
  it('stages buckets as shared-memory segments named by version, rank and bucket', async () => {
    const dir = mkdtempSync(join(root, 's-'));
    const staging = await HostStaging.open({ dir, rank: 2 });
    expect(staging.zeroCopy).toBe(true);
    const a = await staging.allocate('v1/ft', bucket(0, 5000));
    const b = await staging.allocate('v1/ft', bucket(1, 0));
    a.bytes.fill(0xab);
    await staging.seal('v1/ft', 0);
    expect(a.segment?.path).toMatch(/hotweights\.p\d+\.[0-9a-f]+\.v1_ft_[0-9a-f]{8}\.r2\.b0\.seg$/);
    // The segment file holds exactly what was written through the view (zero-copy mapping).
    const onDisk = readFileSync(a.segment?.path as string);
    expect(onDisk.length).toBe(5000);
    expect(onDisk.every((x) => x === 0xab)).toBe(true);
    expect(staging.get('v1/ft', 0)).toBe(a);
    expect(staging.list('v1/ft').map((s) => s.bucketId)).toEqual([0, 1]);
    expect(b.bytes.length).toBe(0);
    // A bucket dropped while the update runs is reused (renamed, same memory) for its next bucket.
    await staging.drop('v1/ft', 0);
    expect(existsSync(a.segment?.path as string)).toBe(false);
    const c = await staging.allocate('v1/ft', bucket(2, 4000));
    expect(c.bytes.buffer).toBe(a.bytes.buffer);
    expect(readdirSync(dir).filter((n) => n.endsWith('.b2.seg'))).toHaveLength(1);
    // Once nothing is staged, no spare is kept: an idle process holds no shared memory.
    await staging.allocate('v1/ft', bucket(3, 3000));
    await staging.drop('v1/ft', 3);
    expect(readdirSync(dir).some((n) => n.includes('.spare.'))).toBe(true);
    await staging.release('v1/ft');
    expect(staging.list('v1/ft')).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
    await staging.close();
  });

  it('refuses a bucket that does not fit before writing anything', async () => {
    const dir = mkdtempSync(join(root, 'full-'));
    const staging = await HostStaging.open({ dir });
    const err = await staging.allocate('v1', bucket(0, 2 ** 50)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StagingError);
    expect((err as StagingError).code).toBe('HW_STAGING_NO_SPACE');
    expect((err as Error).message).toMatch(/not enough shared memory in .* for bucket 0 of v1/);
    await expect(staging.ensureCapacity(2 ** 50, 'the whole update')).rejects.toThrowError(
      /the whole update/,
    );
    expect(readdirSync(dir)).toEqual([]);
    await staging.close();
  });

  it('reclaims segments left by a crashed run on the next start, and only those', async () => {
    const dir = mkdtempSync(join(root, 'stale-'));
    const live = await HostStaging.open({ dir });
    await live.allocate('v-live', bucket(0, 100));
    const crashed = spawnRank(fileURLToPath(new URL('./fixtures/stage-and-die.ts', import.meta.url)), [dir]);
    const path = await new Promise<string>((resolve) => {
      let out = '';
      crashed.child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
    });
    expect(existsSync(path)).toBe(true);
    crashed.child.kill('SIGKILL');
    await crashed.done;
    expect(existsSync(path)).toBe(true);
    const next = await HostStaging.open({ dir });
    expect(existsSync(path)).toBe(false);
    // The live process's segment is untouched.
    expect(live.list('v-live')).toHaveLength(1);
    expect(existsSync(live.get('v-live', 0)?.segment?.path as string)).toBe(true);
    expect(await next.reclaimStale()).toBe(0);
    await live.close();
    await next.close();
  });

  it("reclaims a dead worker's rendezvous dir and leaves foreign and other users' entries alone", async () => {
    const dir = mkdtempSync(join(root, 'foreign-'));
    const dead = await deadPid();
    const make = (name: string, files: Record<string, string>) => {
      mkdirSync(join(dir, name));
      for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, name, f), text);
    };
    make('hw-rdv-dead', { 'rank.0.pid': String(dead), 'rank.1.pid': String(dead) });
    make('hw-rdv-live', { 'rank.0.pid': String(dead), 'rank.1.pid': String(process.pid) });
    make('hw-rdv-joining', {}); // no rank yet: its ranks may still be starting
    writeFileSync(join(dir, 'foreign'), 'not ours');
    writeFileSync(join(dir, 'hw-rdv-file'), 'not a directory');
    // Named like a crashed run's segment but owned by another user (as root: chown it to nobody).
    const othersName = `hotweights.p${dead}.0000.v.r0.b0.seg`;
    writeFileSync(join(dir, othersName), 'x');
    if (process.getuid?.() === 0) chownSync(join(dir, othersName), 65534, 65534);
    const ownName = `hotweights.p${dead}.0001.v.r0.b0.seg`;
    writeFileSync(join(dir, ownName), 'x');

    const staging = await HostStaging.open({ dir });
    expect(readdirSync(dir).sort()).toEqual(
      [
        'foreign',
        'hw-rdv-file',
        'hw-rdv-joining',
        'hw-rdv-live',
        ...(process.getuid?.() === 0 ? [othersName] : []),
      ].sort(),
    );
    expect(existsSync(join(dir, ownName))).toBe(false);
    await staging.close();
  });
});

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => child.once('exit', r));
  return child.pid as number;
}
