/**
 * Tests acting as the workers they registered: the lease key of each register reply, kept by
 * worker id, goes with every later call as that worker (as the worker agent does).
 */
import type { CoordinatorClient, UpdateView } from '../src/index.js';

const keys = new Map<string, string>();

export interface Registered {
  readonly worker_id: string;
  readonly lease_key: string;
}

export async function registerAs(
  client: CoordinatorClient,
  params: Record<string, unknown>,
): Promise<Registered> {
  const id = typeof params.worker_id === 'string' ? params.worker_id : undefined;
  const known = id === undefined ? undefined : keys.get(id);
  const r = await client.call<Registered>('register', { ...(known ? { lease_key: known } : {}), ...params });
  keys.set(r.worker_id, r.lease_key);
  return r;
}

export function leaseKeyOf(workerId: string): string | undefined {
  return keys.get(workerId);
}

export function precommitAs(
  client: CoordinatorClient,
  args: { version: string; rank: number; digest: string; workerId: string },
): Promise<UpdateView> {
  return client.precommit({ ...args, leaseKey: keys.get(args.workerId) ?? null });
}

export function heartbeatAs(
  client: CoordinatorClient,
  params: { worker_id: string } & Record<string, unknown>,
) {
  return client.call('heartbeat', { ...params, lease_key: keys.get(params.worker_id) ?? null });
}

export function reportHaveAs(
  client: CoordinatorClient,
  version: string,
  rank: number,
  bucketIds: number[],
  workerId = `w${rank}`,
) {
  return client.reportHave(version, rank, bucketIds, { workerId, leaseKey: keys.get(workerId) ?? '' });
}
