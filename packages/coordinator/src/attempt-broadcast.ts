/**
 * The usual way: every rank of the world takes part in the plan's broadcasts over the selected
 * transport (a world of one moves nothing and needs none). The pipeline lands what this rank
 * alone needs straight in the adapter's version when the adapter can, and streams the rest to the
 * adapter as buckets verify. In a world of several ranks the staged segments are kept until the
 * update ends and posted as handles, so a rank of this node that joins late can copy them.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Transport } from '@hotweights/core';
import { stageUpdate } from '@hotweights/runtime';
import { SelfTransport } from '@hotweights/transport-local';
import { type AttemptContext, type AttemptResult, consumedBy, pipelineOptions } from './attempt-context.js';
import { postHandles } from './segment-handles.js';

export async function broadcastAttempt(ctx: AttemptContext): Promise<AttemptResult> {
  const { plan, rank, services } = ctx;
  const transport = ctx.worldSize === 1 ? new SelfTransport(rank, 1) : await openTransport(ctx);
  const consumed = consumedBy(plan, rank).map((b) => b.bucket_id);
  const bytes = consumedBy(plan, rank).reduce((n, b) => n + b.size, 0);
  ctx.log(
    `update ${plan.version}: rank ${rank} over ${transport.name}: ${consumed.length} bucket(s), ${mib(bytes)} to land${rank === plan.source.rank ? `, ${plan.buckets.length} bucket(s) to send` : ''}`,
  );
  let staged: AttemptResult['staged'];
  let serving = false;
  try {
    staged = await stageUpdate({ ...pipelineOptions(ctx), transport, keepStaged: ctx.worldSize > 1 });
    serving = serveStaged(ctx, transport, consumed);
  } finally {
    if (!serving) await transport.close();
  }
  await postHandles({ ...ctx, version: plan.version }, services.staging, rank, consumed);
  const have = rank === plan.source.rank ? plan.buckets.map((b) => b.bucket_id) : consumed;
  return { staged, have };
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * A transport that can serve (ucx in a fleet met through the coordinator) keeps this rank's
 * staged buckets available to ranks that come after the broadcasts, until the update ends.
 */
function serveStaged(ctx: AttemptContext, transport: Transport, ids: readonly number[]): boolean {
  if (!transport.serve || !ctx.onServing || ctx.worldSize === 1) return false;
  for (const id of ids) {
    const bytes = ctx.services.staging.get(ctx.plan.version, id)?.bytes;
    if (bytes) transport.serve(id, bytes);
  }
  ctx.onServing(transport);
  return true;
}

/** Opens this rank's transport with a rendezvous every rank of this update derives alike. */
async function openTransport(ctx: AttemptContext): Promise<Transport> {
  const { plan, signal } = ctx;
  const id = createHash('sha256').update(`${plan.version}|${ctx.begunAt}|${plan.digest}`).digest('hex');
  const dir = join(ctx.services.config.stagingDir, `hw-rdv-${id.slice(0, 20)}`);
  ctx.onRendezvous(dir);
  await mkdir(dir, { recursive: true });
  const opening = (async () => {
    // Every rank learns every rank's node id from the coordinator, so all choose one transport.
    const nodes = ctx.exchange ? await ctx.exchange('nodes', ctx.nodeId) : undefined;
    return ctx.services.openTransport({
      plan,
      rendezvous: { dir, ...(ctx.advertiseHost ? { host: ctx.advertiseHost } : {}) },
      nodes,
      exchange: ctx.exchange,
      log: ctx.log,
    });
  })();
  return raceAbort(opening, signal, (late) => void late.close());
}

/** Settles with `p` unless `signal` aborts first; a value that arrives too late goes to `onLate`. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal, onLate: (value: T) => void): Promise<T> {
  if (signal.aborted) {
    p.then(onLate, () => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.then(onLate, () => {});
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) onLate(v);
        else resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}
