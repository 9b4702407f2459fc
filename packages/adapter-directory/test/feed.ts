/** Feeding a preparation as a rank's staging would: bucket bytes read from the plan's checkpoint. */
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import type { Manifest, Plan, PlanBucket } from '@hotweights/core';
import { expect } from 'vitest';

/** A bucket's bytes as staging holds them: each item read from the checkpoint the plan names. */
export function bytesOf(plan: Plan, bucket: PlanBucket): Uint8Array {
  const out = new Uint8Array(bucket.size);
  for (const item of bucket.items) {
    const fd = openSync(join(plan.source.root, item.uri), 'r');
    try {
      readSync(fd, out, item.offset, item.nbytes, item.file_offset);
    } finally {
      closeSync(fd);
    }
  }
  return out;
}

/** The error `p` rejects with (the test fails when it resolves). */
export async function refusal(p: Promise<unknown>): Promise<Error & { code?: string; details?: unknown }> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  return err as Error & { code?: string };
}

/** Prepares `plan`, feeding every bucket but those `skip` accepts, and finishes. */
export async function land(
  adapter: DirectoryAdapter,
  plan: Plan,
  manifest: Manifest,
  skip: (b: PlanBucket) => boolean = () => false,
): Promise<void> {
  const prep = await adapter.beginPrepare({ plan, manifest });
  for (const b of plan.buckets) if (!skip(b)) await prep.bucket(b, bytesOf(plan, b));
  await prep.finish();
}

/** Whether two files hold the same bytes. */
export const same = (a: string, b: string): boolean => Buffer.compare(readFileSync(a), readFileSync(b)) === 0;

/** Open descriptors of this process on files under `dir`. */
export const openUnder = (dir: string): string[] =>
  readdirSync('/proc/self/fd')
    .map((fd) => {
      try {
        return readlinkSync(join('/proc/self/fd', fd));
      } catch {
        return '';
      }
    })
    .filter((p) => p.startsWith(`${dir}/`));

/** A new adapter on `target` with `plan` landed and committed: the live version a test starts from. */
export async function landedIn(
  target: string,
  plan: Plan,
  manifest: Manifest,
): Promise<{ target: string; adapter: DirectoryAdapter }> {
  const adapter = new DirectoryAdapter({ target });
  await land(adapter, plan, manifest);
  await adapter.commit(plan.version);
  return { target, adapter };
}
