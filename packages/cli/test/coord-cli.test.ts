import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinatorClient, expectedDigest } from '@hotweights/coordinator';
import type { Plan } from '@hotweights/core';
import { computePlanDigest, loadPlan } from '@hotweights/manifest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeFleet } from './coord-fixture.js';
import { type CoordProcess, startCoordProcess } from './coord-process.js';
import { runCli } from './run-cli.js';

function plan(version: string, consumers: number[]): Plan {
  const body: Omit<Plan, 'digest'> = {
    schema: 'hotweights.plan',
    plan_version: 1,
    version,
    prev_version: null,
    model_id: null,
    created_at: '2026-01-01T00:00:00.000Z',
    hash_algo: 'sha256',
    source: { root: '/nonexistent', rank: 0 },
    next_manifest: { digest: 'sha256:00', path: null },
    bucket_bytes: 64,
    alignment: 8,
    total_bytes: 8,
    checkpoint_bytes: 8,
    world_size: null,
    buckets: [
      {
        bucket_id: 0,
        size: 8,
        consumer_ranks: consumers,
        items: [
          {
            key: 'a:0',
            tensor: 'a',
            shard_rank: 0,
            kind: 'file',
            nbytes: 8,
            hash: `sha256:${'0'.repeat(64)}`,
            uri: 'a.bin',
            file_offset: 0,
            dtype: null,
            shape: null,
            offset: 0,
          },
        ],
      },
    ],
    removed: [],
  };
  return { ...body, digest: computePlanDigest(body) };
}

const TOKEN = 'cli-test-token-9f8e7d';
let dir: string;
let coord: CoordProcess;

/**
 * Registers stand-in workers holding `ranks` (ids w<rank>), as `hotweights worker` would; returns
 * each rank's lease key (from its register reply).
 */
async function holdRanks(endpoint: string, ranks: number[], worldSize: number): Promise<string[]> {
  const client = new CoordinatorClient(endpoint, { token: TOKEN, timeoutMs: 5000 });
  try {
    const keys: string[] = [];
    for (const rank of ranks) {
      const r = await client.call<{ lease_key: string }>('register', {
        rank,
        world_size: worldSize,
        worker_id: `w${rank}`,
      });
      keys[rank] = r.lease_key;
    }
    return keys;
  } finally {
    client.close();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hw-coord-cli-'));
  // Long leases: this test precommits by hand, with no worker processes holding the ranks.
  coord = await startCoordProcess({ HOTWEIGHTS_COORD_TOKEN: TOKEN, HOTWEIGHTS_LEASE_S: '600' });
}, 60_000);
afterAll(async () => {
  await coord?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('control-plane commands against a real coord-serve', { timeout: 120_000 }, () => {
  it('submits, begins, refuses commit without quorum, precommits and commits', async () => {
    const p = plan('v1', [0, 1]);
    const planFile = join(dir, 'plan.json');
    await writeFile(planFile, JSON.stringify(p));
    const env = { HOTWEIGHTS_COORD: coord.endpoint, HOTWEIGHTS_COORD_TOKEN: TOKEN };

    const submit = await runCli(['coord-submit-plan', '--plan', planFile], { env });
    expect(submit.stderr).toBe('');
    expect(submit.stdout).toContain('plan for v1 submitted (1 bucket(s)');
    expect(submit.code).toBe(0);

    const begin = await runCli(
      ['begin', '--version', 'v1', '--no-auto-commit', '--endpoint', coord.endpoint],
      {
        env,
      },
    );
    expect(begin.stdout).toContain('update v1: begun, precommitted 0/2 (waiting for rank(s) 0, 1)');

    const early = await runCli(['commit', '--version', 'v1'], { env });
    expect(early.code).toBe(1);
    expect(early.stderr).toContain('hotweights: error [HW_COORD_NO_QUORUM]: commit v1: no quorum yet');

    const again = await runCli(['begin', '--version', 'v1'], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('[HW_COORD_REFUSED]');

    // The right digest is public (get_plan): a vote from no worker holding the rank is refused.
    const forged = await runCli(
      ['precommit', '--version', 'v1', '--rank', '0', '--digest', expectedDigest(p, 0)],
      { env },
    );
    expect(forged.code).toBe(1);
    expect(forged.stderr).toContain('[HW_COORD_NOT_HOLDER]: precommit v1: rank 0 is held by no live worker');

    const keys = await holdRanks(coord.endpoint, [0, 1], 2);
    // The holder's id is public (coord-status): without its lease key the vote is still refused.
    const shown = await runCli(['coord-status', '--json'], { env });
    expect(shown.stdout).toMatch(/"worker_id": "w0"/);
    expect(shown.stdout).not.toMatch(/key_hash|lease_key/);
    for (const key of keys) expect(shown.stdout).not.toContain(key);
    const keyless = await runCli(
      ['precommit', '--version', 'v1', '--rank', '0', '--worker-id', 'w0', '--digest', expectedDigest(p, 0)],
      { env },
    );
    expect(keyless.code).toBe(1);
    expect(keyless.stderr).toContain(
      '[HW_COORD_LEASE_KEY]: precommit v1 for rank 0: no lease key for worker w0',
    );
    const bad = await runCli(
      [
        'precommit',
        '--version',
        'v1',
        '--rank',
        '0',
        '--worker-id',
        'w0',
        '--lease-key',
        keys[0] ?? '',
        '--digest',
        'sha256:00',
      ],
      { env },
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('HW_COORD_DIGEST_MISMATCH');

    // The key by flag (rank 0) or from HOTWEIGHTS_LEASE_KEY (rank 1).
    for (const rank of [0, 1]) {
      const byFlag = rank === 0 ? ['--lease-key', keys[rank] ?? ''] : [];
      const ok = await runCli(
        [
          'precommit',
          '--version',
          'v1',
          '--rank',
          String(rank),
          '--worker-id',
          `w${rank}`,
          ...byFlag,
          '--digest',
          expectedDigest(p, rank),
        ],
        { env: rank === 0 ? env : { ...env, HOTWEIGHTS_LEASE_KEY: keys[rank] ?? '' } },
      );
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
    }
    const status = await runCli(['coord-status', '--json'], { env });
    expect(JSON.parse(status.stdout).active).toMatchObject({ version: 'v1', state: 'precommitted' });

    const commit = await runCli(['commit', '--version', 'v1'], { env });
    expect(commit.stdout).toContain('update v1: committed, precommitted 2/2');
    const text = await runCli(['coord-status'], { env });
    expect(text.stdout).toContain('current version: v1');
    expect(text.stdout).toContain('in progress: (none)');
  });

  it('refuses mutating commands without the token and never prints it', async () => {
    const p = plan('v2', [0]);
    const planFile = join(dir, 'plan2.json');
    await writeFile(planFile, JSON.stringify(p));
    const noToken = await runCli(['coord-submit-plan', '--plan', planFile, '--endpoint', coord.endpoint], {
      env: { HOTWEIGHTS_COORD_TOKEN: undefined },
    });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toContain('[HW_COORD_UNAUTHORIZED]');
    const wrong = await runCli(['abort', '--endpoint', coord.endpoint], {
      env: { HOTWEIGHTS_COORD_TOKEN: 'nope' },
    });
    expect(wrong.stderr).toContain('[HW_COORD_UNAUTHORIZED]');
    // Reading needs no token.
    const status = await runCli(['coord-status', '--endpoint', coord.endpoint], {
      env: { HOTWEIGHTS_COORD_TOKEN: undefined },
    });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain('auth token');
    for (const r of [noToken, wrong, status]) expect(r.stdout + r.stderr).not.toContain(TOKEN);
    expect(coord.output()).not.toContain(TOKEN);
  });

  it('says clearly when there is no endpoint or nobody answers', async () => {
    const none = await runCli(['coord-status'], { env: { HOTWEIGHTS_COORD: '' } });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(
      'no coordinator endpoint: pass --endpoint tcp://HOST:PORT or set HOTWEIGHTS_COORD',
    );
    const badUrl = await runCli(['coord-status', '--endpoint', 'localhost:5555']);
    expect(badUrl.stderr).toContain('expected tcp://HOST:PORT');
    const silent = await runCli(['coord-status', '--endpoint', 'tcp://127.0.0.1:9', '--timeout', '0.5']);
    expect(silent.code).toBe(1);
    expect(silent.stderr).toContain(
      '[HW_TIMEOUT]: coordinator at tcp://127.0.0.1:9 did not answer status within 0.5 s',
    );
  });

  it('plan --coord-endpoint plans against the manifest the last commit made current', async () => {
    const fleet = await makeFleet(1);
    // A coordinator of its own: the first test's fleet has two ranks, this plan one.
    const coord = await startCoordProcess({ HOTWEIGHTS_COORD_TOKEN: TOKEN, HOTWEIGHTS_LEASE_S: '600' });
    try {
      const [key = ''] = await holdRanks(coord.endpoint, [0], 1);
      const env = { HOTWEIGHTS_COORD: coord.endpoint, HOTWEIGHTS_COORD_TOKEN: TOKEN };
      const none = await runCli(
        [
          'plan',
          '--next',
          join(fleet.dir, 'm_v0.json'),
          '--coord-endpoint',
          coord.endpoint,
          '--bucket-mb',
          '1',
          '--output',
          join(fleet.dir, 'p0.json'),
        ],
        { env },
      );
      expect(none.code).toBe(0);
      expect((await loadPlan(join(fleet.dir, 'p0.json'))).prev_version).toBeNull();

      const submitted = await runCli(['coord-submit-plan', '--plan', fleet.planV0], { env });
      expect(submitted.stdout).toContain('with its manifest');
      await runCli(['begin', '--version', 'v0'], { env });
      const p0 = await loadPlan(fleet.planV0);
      const pre = await runCli(
        [
          'precommit',
          '--version',
          'v0',
          '--rank',
          '0',
          '--worker-id',
          'w0',
          '--digest',
          expectedDigest(p0, 0),
        ],
        { env: { ...env, HOTWEIGHTS_LEASE_KEY: key } },
      );
      expect(pre.stdout).toContain('update v0: committed');

      const out = join(fleet.dir, 'p1.json');
      const planned = await runCli(
        [
          'plan',
          '--next',
          join(fleet.dir, 'm_v1.json'),
          '--coord-endpoint',
          coord.endpoint,
          '--bucket-mb',
          '1',
          '--output',
          out,
        ],
        { env },
      );
      expect(planned.stderr).toContain(`previous: coordinator ${coord.endpoint}`);
      expect(planned.code).toBe(0);
      const p1 = await loadPlan(out);
      expect(p1.prev_version).toBe('v0');
      // Only what changed moves: b.bin changed and c.bin is new; a.bin is identical.
      expect(p1.buckets.flatMap((b) => b.items.map((it) => it.uri)).sort()).toEqual(['b.bin', 'c.bin']);
    } finally {
      await coord.stop();
      await fleet.cleanup();
    }
  });
});
