import { readFileSync } from 'node:fs';
import {
  ConfigError,
  loadConfig,
  REPLACED_VARIABLES,
  readLaunchContext,
  readMasterAddress,
  renderConfigTable,
  renderReplacedVariables,
  replacedVariableNotices,
  unknownVariables,
  VARIABLES,
} from '@hotweights/core';
import { describe, expect, it } from 'vitest';

describe('config', () => {
  it('names HOTWEIGHTS_* variables it does not know, with the closest known one', () => {
    expect(
      unknownVariables({
        HOTWEIGHTS_BUCKETMB: '8',
        HOTWEIGHTS_STAGNG_DIR: '/x',
        HOTWEIGHTS_NOT_A_THING_AT_ALL: '1',
        HOTWEIGHTS_BUCKET_MB: '8',
        PATH: '/bin',
      }),
    ).toEqual([
      { name: 'HOTWEIGHTS_BUCKETMB', suggestion: 'HOTWEIGHTS_BUCKET_MB' },
      { name: 'HOTWEIGHTS_NOT_A_THING_AT_ALL', suggestion: undefined },
      { name: 'HOTWEIGHTS_STAGNG_DIR', suggestion: 'HOTWEIGHTS_STAGING_DIR' },
    ]);
    expect(unknownVariables({ HOTWEIGHTS_TRANSPORT: 'local' })).toEqual([]);
  });

  it('refuses a coordinator token that is set but empty (a token file that was not read)', () => {
    expect(() => loadConfig({ HOTWEIGHTS_COORD_TOKEN: '' })).toThrow(
      /HOTWEIGHTS_COORD_TOKEN is set but empty .*unset it to run without auth/,
    );
    expect(loadConfig({}).coordToken).toBeUndefined();
    expect(loadConfig({ HOTWEIGHTS_COORD_TOKEN: 's3cret' }).coordToken).toBe('s3cret');
  });

  it('uses documented defaults when nothing is set', () => {
    const c = loadConfig({});
    expect(c.inflightBuckets).toBe(4);
    expect(c.coordBackend).toBe('memory');
    expect(c.hash).toBe('blake3');
    expect(c.transport).toBeUndefined();
  });

  it('reads values and honours seed-document aliases', () => {
    const c = loadConfig({
      HOTWEIGHTS_IPC_INFLIGHT_BUCKETS: '6',
      HOTWEIGHTS_COORD_BACKEND: 'redis',
      HOTWEIGHTS_TRANSPORT: 'mpi',
    });
    expect(c.inflightBuckets).toBe(6);
    expect(c.coordBackend).toBe('redis');
    expect(c.transport).toBe('mpi');
    // the new name wins over the alias
    expect(
      loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: '2', HOTWEIGHTS_IPC_INFLIGHT_BUCKETS: '6' }).inflightBuckets,
    ).toBe(2);
  });

  it('rejects bad values naming the variable and the expectation', () => {
    expect(() => loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: 'four' })).toThrowError(
      /HOTWEIGHTS_INFLIGHT_BUCKETS="four": expected an integer/,
    );
    expect(() => loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: '0' })).toThrowError(ConfigError);
    expect(() => loadConfig({ HOTWEIGHTS_COORD_BACKEND: 'etcd' })).toThrowError(
      /expected one of memory, redis/,
    );
    expect(() => loadConfig({ HOTWEIGHTS_IPC_INFLIGHT_BUCKETS: '-1' })).toThrowError(
      /HOTWEIGHTS_IPC_INFLIGHT_BUCKETS=-1/,
    );
  });

  it('reads rank and world size from torchrun and mpirun variables', () => {
    expect(readLaunchContext({})).toMatchObject({ rank: 0, worldSize: 1, launcher: 'none' });
    expect(readLaunchContext({ RANK: '2', WORLD_SIZE: '4', LOCAL_RANK: '0' })).toMatchObject({
      rank: 2,
      worldSize: 4,
      localRank: 0,
      launcher: 'env',
    });
    expect(readLaunchContext({ OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '3' })).toMatchObject({
      rank: 1,
      worldSize: 3,
      launcher: 'openmpi',
    });
    expect(() => readLaunchContext({ RANK: '4', WORLD_SIZE: '4' })).toThrowError(
      /RANK=4 is not below WORLD_SIZE=4/,
    );
  });

  it("reads MASTER_ADDR/MASTER_PORT from a transport's rendezvous first, then the environment", () => {
    const env = { MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500' };
    expect(readMasterAddress(undefined, env)).toEqual({ host: '10.0.0.1', port: 29500 });
    expect(readMasterAddress({ MASTER_ADDR: '127.0.0.1', MASTER_PORT: '2' }, env)).toEqual({
      host: '127.0.0.1',
      port: 2,
    });
    expect(readMasterAddress(undefined, {})).toEqual({
      missing: 'no rendezvous: set MASTER_ADDR and MASTER_PORT (rank 0 listens there)',
    });
    expect(readMasterAddress(undefined, { MASTER_ADDR: 'h', MASTER_PORT: '70000' })).toEqual({
      missing: 'MASTER_PORT="70000" is not a TCP port (1..65535)',
    });
  });

  it('docs/CONFIG.md holds the generated table (run `npm run docs:config` after changing VARIABLES)', () => {
    const doc = readFileSync(new URL('../../../docs/CONFIG.md', import.meta.url), 'utf8');
    expect(doc).toContain(renderConfigTable());
    for (const v of VARIABLES) expect(doc).toContain(v.name);
  });

  it('names each replaced seed variable that is set, with what to use instead', () => {
    expect(replacedVariableNotices({ HOTWEIGHTS_USE_GDS: '1', HOTWEIGHTS_BUCKET_MB: '8' })).toEqual([
      'HOTWEIGHTS_USE_GDS is not read by this hotweights: GPUDirect Storage is not implemented: device staging is filled from host memory (docs/TRANSPORTS.md)',
    ]);
    expect(replacedVariableNotices({ HOTWEIGHTS_BCAST_CHUNK_MB: '' })[0]).toContain(
      'HOTWEIGHTS_UCX_CHUNK_MB',
    );
    expect(replacedVariableNotices({})).toEqual([]);
    // ... and is not also warned about as an unknown name.
    expect(unknownVariables({ HOTWEIGHTS_USE_GDS: '1' })).toEqual([]);
  });

  it('a variable is either read or listed as replaced, never both, and docs/CONFIG.md lists the replaced ones', () => {
    const read = new Set(
      VARIABLES.flatMap((v) => [v.name, ...((v as { aliases?: string[] }).aliases ?? [])]),
    );
    expect(REPLACED_VARIABLES.filter((v) => read.has(v.name)).map((v) => v.name)).toEqual([]);
    const doc = readFileSync(new URL('../../../docs/CONFIG.md', import.meta.url), 'utf8');
    expect(doc).toContain(renderReplacedVariables());
  });

  it('no other module reads HOTWEIGHTS_* variables', async () => {
    const { execFileSync } = await import('node:child_process');
    const root = new URL('../../../', import.meta.url).pathname;
    let out = '';
    try {
      out = execFileSync('git', ['grep', '-lE', "env(\\.|\\[')HOTWEIGHTS_", '--', 'packages/*/src/**.ts'], {
        cwd: root,
        encoding: 'utf8',
      });
    } catch (err) {
      // git grep exits 1 when nothing matches: that is the passing case
      expect((err as { status?: number }).status).toBe(1);
    }
    expect(out.split('\n').filter(Boolean)).toEqual([]);
  });
});
