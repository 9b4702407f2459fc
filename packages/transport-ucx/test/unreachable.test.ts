/**
 * Two hosts (network namespaces) where host 0's kernel refuses new TCP connections to host 1 at
 * once (EHOSTUNREACH), as it does for a few seconds after a link comes back: the control star
 * still works, UCX's endpoint to host 1 does not. Joining tries the endpoint again until the host
 * is reachable, and gives up by name after HOTWEIGHTS_UCX_RETRIES attempts.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAB_PORT, type LabProcess, NetnsLab } from './netns.js';
import { jsonLines, PACKAGE_ROOT, SOURCE_NODE_ARGS } from './ranks.js';

const FIXTURE = join(PACKAGE_ROOT, 'test/fixtures/reach-rank.ts');

interface Outcome {
  rank: number;
  ok?: boolean;
  error?: string;
  code?: string;
}

describe('a host the kernel calls unreachable while joining', () => {
  let lab: NetnsLab;
  beforeAll(() => {
    lab = NetnsLab.create(2);
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  /**
   * Starts rank 0, then rank 1 once rank 0 listens: the few join attempts the failing case allows
   * are for rank 0's endpoint to rank 1, not for a rank 0 that a loaded machine starts late.
   */
  async function start(env: NodeJS.ProcessEnv, onRank0?: (rank0: LabProcess) => void): Promise<LabProcess[]> {
    const spawnRank = (index: number) =>
      lab.spawn(index, process.execPath, [...SOURCE_NODE_ARGS, FIXTURE], {
        RANK: String(index),
        WORLD_SIZE: '2',
        MASTER_ADDR: lab.host(0).address,
        MASTER_PORT: String(LAB_PORT),
        ...env,
      });
    const rank0 = spawnRank(0);
    onRank0?.(rank0);
    await Promise.race([
      lab.listening(0, LAB_PORT),
      rank0.done.then((d) => {
        throw new Error(`rank 0 exited before it listened: ${d.stderr}`);
      }),
    ]);
    return [rank0, spawnRank(1)];
  }

  async function outcomes(ranks: LabProcess[]): Promise<{ out: Outcome[]; stderr: string[] }> {
    const done = await Promise.all(ranks.map((r) => r.done));
    return {
      out: done.map((d) => jsonLines<Outcome>(d.stdout)[0] as Outcome),
      stderr: done.map((d) => d.stderr),
    };
  }

  it('is tried again until it can be reached, and the bucket lands on both', async () => {
    lab.unreachable(0, 1, LAB_PORT);
    let restored = false;
    // Reachable again only once rank 0 has said it is waiting for host 1: the retry is what is tested.
    const ranks = await start({ HOTWEIGHTS_UCX_RETRY_DELAY_MS: '100' }, (rank0) =>
      rank0.onErrorLine((line) => {
        if (!restored && line.includes('cannot reach rank 1 yet')) {
          restored = true;
          lab.reachable(0);
        }
      }),
    );
    const { out, stderr } = await outcomes(ranks);
    expect(restored, stderr.join('\n')).toBe(true);
    expect(stderr[0]).toMatch(/rank 0 cannot reach rank 1 yet \(ucp_ep_create to rank 1: .*UCX status -6\)/);
    expect(out).toEqual([
      { rank: 0, ok: true },
      { rank: 1, ok: true },
    ]);
  });

  it('fails by name once HOTWEIGHTS_UCX_RETRIES attempts are spent, and the other rank does not wait on it', async () => {
    lab.unreachable(0, 1, LAB_PORT);
    try {
      const { out } = await outcomes(
        await start({ HOTWEIGHTS_UCX_RETRIES: '3', HOTWEIGHTS_UCX_RETRY_DELAY_MS: '50' }),
      );
      expect(out[0]?.code).toBe('HW_TIMEOUT');
      expect(out[0]?.error).toMatch(
        /rank 0 could not reach rank 1 in 4 attempts: ucp_ep_create to rank 1: .*HOTWEIGHTS_UCX_RETRIES/,
      );
      expect(out[1]?.ok).toBeUndefined();
      expect(out[1]?.error).toBe('ucx: rank 0 left before the job started');
    } finally {
      lab.reachable(0);
    }
  });
});
