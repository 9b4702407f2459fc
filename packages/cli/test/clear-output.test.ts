/**
 * Output that used to mislead: a second rollback is a switch forward, status speaks in units and
 * says what "no record" means, both transports count verified items alike, and a checkpoint that
 * changed after publish is named as the likely cause of a hash mismatch.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MPI_ENV, mpirun } from '../../transport-mpi/test/mpirun.js';
import { type Fleet, makeFleet } from './coord-fixture.js';
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

const replicate = (plan: string, target: string, extra: string[] = []) =>
  runCli(['replicate', '--plan', plan, '--commit', '--target', target, '--no-metrics', ...extra], { env });

describe('clear output', { timeout: 120_000 }, () => {
  it('rollback says it switches to the previous version, and a second one switches back', async () => {
    const target = join(fleet.dir, 'rb');
    expect((await replicate(fleet.planV0, target)).code).toBe(0);
    expect((await replicate(fleet.planV1, target)).code).toBe(0);
    const first = await runCli(['rollback', '--target', target], { env });
    expect(first.stdout).toMatch(
      /rank-0: switched from v1 to the previous version v0 \(pause [\d.]+ ms\); rollback again switches back to v1/,
    );
    const second = await runCli(['rollback', '--target', target], { env });
    expect(second.stdout).toMatch(
      /rank-0: switched from v0 to the previous version v1 .*switches back to v0/,
    );
  });

  it('status gives sizes in units and says what an empty record means', async () => {
    const r = await runCli(['status'], {
      env: { ...env, HOTWEIGHTS_STATE_DIR: join(fleet.dir, 'empty-state') },
    });
    expect(r.stdout).toMatch(/segment\(s\) of running processes \(\d+(\.\d)? (B|KiB|MiB|GiB) in all\)/);
    expect(r.stdout).toContain("fleet workers' versions are in their targets and the coordinator");
  });

  it('local and mpi report the same verified item count for the same plan', async () => {
    const local = await replicate(fleet.planV0, join(fleet.dir, 'count-local'));
    const job = await mpirun(
      2,
      [
        process.execPath,
        ...SOURCE_NODE_ARGS,
        CLI_SOURCE,
        'replicate',
        '--plan',
        fleet.planV0,
        '--commit',
        '--target',
        join(fleet.dir, 'count-mpi'),
        '--no-metrics',
      ],
      { env: { ...env, ...MPI_ENV } },
    );
    expect(job.code, job.stderr).toBe(0);
    const count = (out: string) => /(\d+) item\(s\) verified on rank 0/.exec(out)?.[1];
    expect(count(job.stdout)).toBeDefined();
    expect(count(local.stdout)).toBe(count(job.stdout));
  });

  it('a checkpoint changed after publish: the mismatch says to publish and plan again', async () => {
    writeFileSync(join(fleet.ckptA, 'b.bin'), Buffer.alloc(40 * 1024, 7));
    const r = await replicate(fleet.planV0, join(fleet.dir, 'changed'));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /does not match its hash: .* \(if the checkpoint changed after it was published, publish and plan it again\)/,
    );
  });
});
