/**
 * Silent wrong turns a newcomer takes, each of which now says what happened and what to do: a
 * misspelt variable, a staging dir that does not exist or sits on a disk, a transport that needs
 * a launcher, an MPI library that cannot be used under mpirun, a group-map pattern that matches
 * nothing, a token that did not arrive, a worker with the wrong token.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MPI_ENV, mpirun } from '../../transport-mpi/test/mpirun.js';
import { type Fleet, makeFleet } from './coord-fixture.js';
import { startCoordProcess } from './coord-process.js';
import { CLI_SOURCE, runCli, SOURCE_NODE_ARGS } from './run-cli.js';

let fleet: Fleet;
let env: NodeJS.ProcessEnv;
beforeAll(async () => {
  fleet = await makeFleet(2);
  env = {
    HOTWEIGHTS_STAGING_DIR: fleet.stagingDir,
    HOTWEIGHTS_STATE_DIR: join(fleet.dir, 'state'),
    HOTWEIGHTS_SOURCE_ROOTS: fleet.dir,
  };
});
afterAll(() => fleet.cleanup());

describe('wrong turns', { timeout: 120_000 }, () => {
  it('a misspelt HOTWEIGHTS_* variable is named, with the one that was meant', async () => {
    const r = await runCli(['transports'], { env: { ...env, HOTWEIGHTS_BUCKETMB: '8' } });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      'hotweights: warning: HOTWEIGHTS_BUCKETMB is not a hotweights variable, ignored (did you mean HOTWEIGHTS_BUCKET_MB?)',
    );
  });

  it('a staging dir that does not exist is an error, one on a disk a warning', async () => {
    const missing = join(fleet.dir, 'no-such-staging');
    const r = await runCli(['replicate', '--plan', fleet.planV0, '--world-size', '2'], {
      env: { ...env, HOTWEIGHTS_STAGING_DIR: missing },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error [HW_STAGING]: staging dir ${missing} (HOTWEIGHTS_STAGING_DIR) does not exist`,
    );
    const onDisk = join(fleet.dir, 'disk-staging');
    mkdirSync(onDisk);
    const ok = await runCli(['replicate', '--plan', fleet.planV0, '--world-size', '2', '--no-metrics'], {
      env: { ...env, HOTWEIGHTS_STAGING_DIR: onDisk },
    });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toContain(`warning: staging dir ${onDisk} is not on a memory filesystem (tmpfs)`);
  });

  it('HOTWEIGHTS_TRANSPORT=mpi without mpirun says to start the job with mpirun', async () => {
    const r = await runCli(['replicate', '--plan', fleet.planV0, '--world-size', '2'], {
      env: { ...env, HOTWEIGHTS_TRANSPORT: 'mpi' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'HOTWEIGHTS_TRANSPORT=mpi: the mpi transport runs only in a job its launcher started, and this `hotweights replicate` was not started by one: run `mpirun -n N hotweights replicate …`',
    );
  });

  it('under mpirun with an unusable MPI library the error is the MPI reason, not a fallback to local', async () => {
    const job = await mpirun(
      2,
      [
        process.execPath,
        ...SOURCE_NODE_ARGS,
        CLI_SOURCE,
        'replicate',
        '--plan',
        fleet.planV0,
        '--no-metrics',
      ],
      { env: { ...env, ...MPI_ENV, HOTWEIGHTS_MPI_LIBRARY: '/nonexistent/libmpi.so.40' } },
    );
    expect(job.code).not.toBe(0);
    expect(job.stderr).toContain(
      'error [HW_NO_TRANSPORT]: 2 ranks started by openmpi need a transport that connects processes, and none is available (',
    );
    expect(job.stderr).toContain('; mpi: /nonexistent/libmpi.so.40 not found;');
    expect(job.stderr).toContain('/nonexistent/libmpi.so.40');
    expect(job.stderr).not.toContain('rendezvous.dir');
  });

  it('a group-map pattern that matches no tensor is named', async () => {
    const r = await runCli(
      [
        'plan',
        '--next',
        join(fleet.dir, 'm_v0.json'),
        '--world-size',
        '2',
        '--group-map',
        '{"a.bin": [0], "layers.*": [1]}',
        '--output',
        join(fleet.dir, 'gm.json'),
      ],
      { env },
    );
    expect(r.stderr).toContain(
      'hotweights: warning: --group-map pattern "layers.*" matches no tensor of v0 (globs on tensor names: * and ?)',
    );
    expect(r.stderr).not.toContain('pattern "a.bin"');
  });

  it('a token that is set but empty (its file was missing) refuses to start the coordinator', async () => {
    const r = await runCli(['coord-serve', '--endpoint', 'tcp://127.0.0.1:0', '--metrics-port', 'off'], {
      env: { ...env, HOTWEIGHTS_COORD_TOKEN: '' },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('HOTWEIGHTS_COORD_TOKEN is set but empty');
  });

  it('a worker with a wrong or missing token exits non-zero, saying so', async () => {
    const coord = await startCoordProcess({ HOTWEIGHTS_COORD_TOKEN: 'right' });
    try {
      for (const token of ['wrong', undefined]) {
        const r = await runCli(
          [
            'worker',
            '--endpoint',
            coord.endpoint,
            '--pub-endpoint',
            coord.pubEndpoint,
            '--metrics-port',
            'off',
          ],
          { env: { ...env, RANK: '0', WORLD_SIZE: '1', HOTWEIGHTS_COORD_TOKEN: token } },
        );
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('[HW_COORD_UNAUTHORIZED]');
      }
    } finally {
      await coord.stop();
    }
  });
});
