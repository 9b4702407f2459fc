/**
 * The fleet view (`status.fleet`, `hotweights status`) as an operator reads it: which ranks are
 * behind the committed version, whether they are still catching up or stuck (an error they
 * reported, or three leases behind), and a rank nobody holds. fleetView is a pure function of the
 * coordinator's state, given here directly with the time it is asked at.
 */
import { describe, expect, it } from 'vitest';
import { fleetView, fleetWorldSize } from '../src/service/fleet.js';
import type { CurrentRecord, WorkerRecord } from '../src/types.js';

const LEASE_S = 10;
const T0 = 1_000_000;

function worker(rank: number, live: string | null, extra: Partial<WorkerRecord> = {}): WorkerRecord {
  return {
    worker_id: `w${rank}`,
    rank,
    world_size: 3,
    node_id: 'n',
    host: `h${rank}`,
    pid: 100 + rank,
    registered_at: T0,
    last_seen: T0,
    lease_expires_at: T0 + LEASE_S * 1000,
    live_version: live,
    ...extra,
  };
}

function state(workers: WorkerRecord[], current: string | null) {
  const rec: CurrentRecord = { version: current, manifest_digest: null, committed_at: null };
  return {
    workers: new Map(workers.map((w) => [w.worker_id, w])),
    current: rec,
    behindSince: new Map<string, number>(),
    opts: { leaseS: LEASE_S },
  };
}

describe('fleet view', () => {
  it('names an empty fleet with the version it would be on', () => {
    expect(fleetView(state([], 'v3'), T0)).toMatchObject({
      state: 'empty',
      world_size: 0,
      summary: 'empty: no live workers (current version v3)',
      ranks: [],
    });
  });

  it('a rank nobody holds is behind; ranks behind converge for three leases, then the fleet is diverged', () => {
    const s = state([worker(0, 'v1'), worker(2, 'v0')], 'v1');
    const first = fleetView(s, T0);
    expect(first).toMatchObject({
      state: 'converging',
      world_size: 3,
      behind: [1, 2],
      summary: 'converging: 2 of 3 behind (rank 1 has no worker, rank 2 on v0)',
    });
    expect(first.ranks).toEqual([
      { rank: 0, worker_id: 'w0', host: 'h0', pid: 100, live_version: 'v1', sync_error: null, behind: false },
      { rank: 1, worker_id: null, host: null, pid: null, live_version: null, sync_error: null, behind: true },
      { rank: 2, worker_id: 'w2', host: 'h2', pid: 102, live_version: 'v0', sync_error: null, behind: true },
    ]);
    // Behind since T0, not since each look.
    expect(fleetView(s, T0 + 3 * LEASE_S * 1000 - 1).state).toBe('converging');
    const stuck = fleetView(s, T0 + 3 * LEASE_S * 1000);
    expect(stuck.state).toBe('diverged');
    expect(stuck.summary).toBe('diverged: rank 1 has no worker; rank 2 on v0');

    // Rank 2 catches up: it is no longer behind, and falling behind again starts a new wait.
    s.workers.set('w2', worker(2, 'v1'));
    expect(fleetView(s, T0 + 4 * LEASE_S * 1000).behind).toEqual([1]);
    s.workers.set('w2', worker(2, 'v0'));
    const again = fleetView(s, T0 + 5 * LEASE_S * 1000);
    expect(again.summary).toBe('diverged: rank 1 has no worker');
    expect(again.behind).toEqual([1, 2]);
  });

  it('a rank reporting why it cannot catch up makes the fleet diverged at once; a smaller fleet forgets the others', () => {
    const s = state([worker(0, 'v1'), worker(1, null, { sync_error: 'flip failed: EROFS' })], 'v1');
    expect(fleetView(s, T0)).toMatchObject({
      state: 'diverged',
      summary: 'diverged: rank 1 on nothing (flip failed: EROFS)',
    });
    expect(s.behindSince.has('1')).toBe(true);
    // The fleet re-registers with one rank: rank 1's wait is dropped.
    s.workers.clear();
    s.workers.set('w0', worker(0, 'v1', { world_size: 1 }));
    expect(fleetView(s, T0 + 1)).toMatchObject({
      state: 'converged',
      summary: 'converged: 1 of 1 live on v1',
    });
    expect([...s.behindSince.keys()]).toEqual([]);
  });

  it('the world size is the largest the live workers registered with', () => {
    expect(fleetWorldSize(state([], null))).toBe(0);
    const s = state([worker(0, null, { world_size: 2 }), worker(1, null, { world_size: 4 })], null);
    expect(fleetWorldSize(s)).toBe(4);
    // Nothing committed and nothing live: every rank is on "nothing", which is the current version.
    expect(fleetView(state([worker(0, null, { world_size: 1 })], null), T0).summary).toBe(
      'converged: 1 of 1 live on nothing',
    );
  });
});
