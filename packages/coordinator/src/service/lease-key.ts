/**
 * Per-registration secrets. Worker ids are public (`status` lists them), so an id alone proves
 * nothing: `register` hands each worker a random lease key, returned only in its reply, and every
 * later call that acts as that worker (heartbeat, precommit, report_have, re-register, take-over)
 * must present it. The coordinator keeps only the key's SHA-256 and never shows it.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { CoordinatorError } from '@hotweights/core';
import { ERROR_CODES } from '../protocol.js';
import type { StoredWorker, WorkerRecord } from '../types.js';

/** A fresh key (24 random bytes, base64url) and the hash the coordinator stores. */
export function issueLeaseKey(): { key: string; hash: string } {
  const key = randomBytes(24).toString('base64url');
  return { key, hash: hashLeaseKey(key) };
}

function hashLeaseKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Whether `key` is the worker's lease key (constant time; a record without a hash matches nothing). */
export function leaseKeyMatches(w: StoredWorker, key: string | null | undefined): boolean {
  if (typeof key !== 'string' || typeof w.key_hash !== 'string') return false;
  const given = Buffer.from(hashLeaseKey(key), 'hex');
  const stored = Buffer.from(w.key_hash, 'hex');
  return given.length === stored.length && timingSafeEqual(given, stored);
}

/** Refuses a call acting as worker `w` without its lease key. */
export function requireLeaseKey(w: StoredWorker, key: string | null | undefined, what: string): void {
  if (leaseKeyMatches(w, key)) return;
  throw new CoordinatorError(
    ERROR_CODES.badLeaseKey,
    `${what}: ${key ? 'wrong' : 'no'} lease key for worker ${w.worker_id}; only the process that registered it (and holds the key from its register reply) may act as it`,
  );
}

/** A worker record as anyone may see it: without its key hash. */
export function publicWorker(w: StoredWorker): WorkerRecord {
  const { key_hash: _hidden, ...shown } = w;
  return shown;
}
