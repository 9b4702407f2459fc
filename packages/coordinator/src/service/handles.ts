/**
 * Transfer handles: node-scoped records (e.g. where a staged bucket lives in shared memory) that
 * other ranks on the node fetch and ack; each expires with its TTL.
 */
import { CoordinatorError } from '@hotweights/core';
import type { JsonObject } from '@hotweights/manifest';
import { checkParams, ERROR_CODES } from '../protocol.js';
import type { HandleRecord } from '../types.js';
import { type CoordinatorState, refused } from './state.js';

const MAX_HANDLE_BYTES = 64 * 1024;

export const handleKey = (node: string, key: string) =>
  `handle:${encodeURIComponent(node)}:${encodeURIComponent(key)}`;

export async function postHandle(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('post_handle', (c) => ({
    node_id: c.string(p.node_id, 'node_id', { nonEmpty: true }),
    key: c.string(p.key, 'key', { nonEmpty: true }),
    consumers:
      p.consumers === undefined || p.consumers === null
        ? null
        : c.array(p.consumers, 'consumers').map((x, i) => c.string(x, `consumers[${i}]`, { nonEmpty: true })),
    ttl_s:
      p.ttl_s === undefined
        ? s.opts.handleTtlS
        : typeof p.ttl_s === 'number' && p.ttl_s > 0 && p.ttl_s <= 86_400
          ? p.ttl_s
          : c.fail('ttl_s', 'a number of seconds in (0, 86400]', p.ttl_s),
  }));
  if (p.handle === undefined)
    throw new CoordinatorError(ERROR_CODES.badParams, 'post_handle: params.handle: expected a value');
  if (JSON.stringify(p.handle).length > MAX_HANDLE_BYTES) {
    throw new CoordinatorError(
      ERROR_CODES.tooLarge,
      `post_handle: params.handle: expected at most ${MAX_HANDLE_BYTES} bytes of JSON`,
    );
  }
  const now = Date.now();
  const h: HandleRecord = {
    node_id: args.node_id,
    key: args.key,
    handle: p.handle,
    consumers: args.consumers,
    acked: [],
    posted_at: now,
    expires_at: now + args.ttl_s * 1000,
  };
  const key = handleKey(args.node_id, args.key);
  s.handles.set(key, h);
  await s.backend.set(key, h, args.ttl_s * 1000);
  s.metrics?.handlesPosted.inc();
  s.refreshGauges();
  return { expires_at: h.expires_at };
}

function liveHandle(s: CoordinatorState, node: string, key: string): [string, HandleRecord] | undefined {
  const k = handleKey(node, key);
  const h = s.handles.get(k);
  if (!h || h.expires_at <= Date.now()) return undefined;
  return [k, h];
}

export function getHandle(s: CoordinatorState, p: JsonObject): unknown {
  const args = checkParams('get_handle', (c) => ({
    node_id: c.string(p.node_id, 'node_id', { nonEmpty: true }),
    key: c.string(p.key, 'key', { nonEmpty: true }),
  }));
  const found = liveHandle(s, args.node_id, args.key);
  if (!found) return { handle: null };
  s.metrics?.handlesFetched.inc();
  const [, h] = found;
  return { handle: h.handle, expires_at: h.expires_at, consumers: h.consumers, acked: h.acked };
}

/**
 * Records that `consumer` is done with a handle. The handle stays for the other consumers; it
 * goes once every listed consumer has acked (or, with no list, an ack shortens its TTL).
 */
export async function ackHandle(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('ack_handle', (c) => ({
    node_id: c.string(p.node_id, 'node_id', { nonEmpty: true }),
    key: c.string(p.key, 'key', { nonEmpty: true }),
    consumer: c.string(p.consumer, 'consumer', { nonEmpty: true }),
  }));
  const found = liveHandle(s, args.node_id, args.key);
  if (!found)
    throw new CoordinatorError(
      ERROR_CODES.notFound,
      `ack_handle: no live handle ${args.key} on node ${args.node_id}`,
    );
  const [k, h] = found;
  if (h.consumers && !h.consumers.includes(args.consumer)) {
    throw refused(`ack_handle: ${args.consumer} is not a consumer of handle ${args.key}`);
  }
  s.metrics?.handlesAcked.inc();
  const acked = [...new Set([...h.acked, args.consumer])];
  const remaining = h.consumers ? h.consumers.filter((c) => !acked.includes(c)) : null;
  if (remaining && remaining.length === 0) {
    s.handles.delete(k);
    await s.backend.delete(k);
    s.refreshGauges();
    return { removed: true, remaining: [] };
  }
  const now = Date.now();
  const grace = Math.min(s.opts.handleTtlS * 1000, 5000);
  const expires_at = remaining ? h.expires_at : Math.min(h.expires_at, now + grace);
  const next: HandleRecord = { ...h, acked, expires_at };
  s.handles.set(k, next);
  await s.backend.set(k, next, Math.max(1, expires_at - now));
  return { removed: false, remaining };
}

/** Drops handles whose TTL ran out. */
export async function expireHandles(s: CoordinatorState, now: number): Promise<void> {
  for (const [key, h] of [...s.handles]) {
    if (h.expires_at > now) continue;
    s.handles.delete(key);
    await s.backend.delete(key);
    s.metrics?.handlesExpired.inc();
  }
}
