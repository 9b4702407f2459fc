/**
 * The update state machine: planned -> begun -> precommitted -> committed | aborted. A plan is
 * submitted, begun (its required ranks fixed), precommitted rank by rank with the digest of what
 * each staged, and committed once every required rank has voted yes (or aborted).
 */
import { CoordinatorError, type Plan, SchemaError } from '@hotweights/core';
import { computePlanDigest, type JsonObject, validatePlan } from '@hotweights/manifest';
import { expectedDigest, requiredRanks, rollbackDigest } from '../digest.js';
import { checkParams, ERROR_CODES, RawJson } from '../protocol.js';
import { ACTIVE_STATES, type UpdateRecord, type UpdateView } from '../types.js';
import { fleetWorldSize } from './fleet.js';
import { requireLeaseKey } from './lease-key.js';

import { checkBool, checkManifestDoc } from './params.js';
import { type CoordinatorState, holderOf, refused } from './state.js';

export async function submitPlan(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  let plan: Plan;
  try {
    plan = validatePlan(p.plan, 'params.plan');
  } catch (err) {
    if (err instanceof SchemaError) {
      throw new CoordinatorError(ERROR_CODES.badParams, `submit_plan: ${err.message}`, { cause: err });
    }
    throw err;
  }
  const digest = computePlanDigest(plan);
  if (digest !== plan.digest) {
    throw new CoordinatorError(
      ERROR_CODES.badParams,
      `submit_plan: params.plan.digest: expected ${digest} (the plan's content does not match its digest: edited or corrupted)`,
    );
  }
  let manifest: JsonObject | undefined;
  if (p.manifest !== undefined && p.manifest !== null) {
    manifest = checkManifestDoc('submit_plan', p.manifest);
    if (manifest.version !== plan.version) {
      throw new CoordinatorError(
        ERROR_CODES.badParams,
        `submit_plan: params.manifest.version: expected ${JSON.stringify(plan.version)} (the plan's version), got ${JSON.stringify(manifest.version)}`,
      );
    }
  }
  const existing = s.updates.get(plan.version);
  if (existing && ACTIVE_STATES.includes(existing.state)) {
    throw refused(
      `submit_plan: version ${plan.version} is ${existing.state}; abort it before replacing its plan`,
    );
  }
  // A committed version may be deployed again once the fleet rolled back from it.
  if (existing?.state === 'committed' && s.current.version === plan.version) {
    throw refused(`submit_plan: version ${plan.version} is already committed; publish a new version`);
  }
  await s.backend.set(`plan:${plan.version}`, plan);
  if (manifest) await s.backend.set(`manifest:${plan.version}`, manifest);
  else await s.backend.delete(`manifest:${plan.version}`);
  await s.putUpdate({
    version: plan.version,
    state: 'planned',
    plan_digest: plan.digest,
    prev_version: plan.prev_version,
    total_bytes: plan.total_bytes,
    buckets: plan.buckets.length,
    required_ranks: [],
    precommits: {},
    auto_commit: true,
    reason: null,
    has_manifest: manifest !== undefined,
    submitted_at: Date.now(),
    begun_at: null,
    finished_at: null,
  });
  await s.emit('plan', { version: plan.version, plan_digest: plan.digest });
  return {
    version: plan.version,
    state: 'planned',
    plan_digest: plan.digest,
    buckets: plan.buckets.length,
  };
}

export async function getPlan(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const { version, withManifest } = checkParams('get_plan', (c) => ({
    version: p.version === undefined ? undefined : c.string(p.version, 'version', { nonEmpty: true }),
    withManifest: p.with_manifest === undefined ? false : checkBool(c, p.with_manifest, 'with_manifest'),
  }));
  const target = version ?? s.active()?.version;
  if (!target)
    throw new CoordinatorError(ERROR_CODES.notFound, 'get_plan: no update in progress and no version given');
  const u = s.updates.get(target);
  const meta = `"state":${JSON.stringify(u?.state ?? null)},"begun_at":${JSON.stringify(u?.begun_at ?? null)}`;
  const manifestJson = async () =>
    u?.has_manifest
      ? JSON.stringify((await s.backend.get<JsonObject>(`manifest:${target}`)) ?? null)
      : 'null';
  if (s.activePlan?.version === target) {
    // Every worker fetches the active plan (and manifest): serialise them once per update.
    s.activeJson ??= { plan: JSON.stringify(s.activePlan), manifest: undefined };
    if (withManifest) s.activeJson.manifest ??= await manifestJson();
    const m = withManifest ? `,"manifest":${s.activeJson.manifest}` : '';
    return new RawJson(`{"plan":${s.activeJson.plan},${meta}${m}}`);
  }
  const plan = await s.backend.get<Plan>(`plan:${target}`);
  if (!plan) throw new CoordinatorError(ERROR_CODES.notFound, `get_plan: no plan for version ${target}`);
  const m = withManifest ? `,"manifest":${await manifestJson()}` : '';
  return new RawJson(`{"plan":${JSON.stringify(plan)},${meta}${m}}`);
}

export async function begin(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('begin', (c) => ({
    version: c.string(p.version, 'version', { nonEmpty: true }),
    auto_commit: p.auto_commit === undefined ? true : checkBool(c, p.auto_commit, 'auto_commit'),
  }));
  const active = s.active();
  if (active) {
    throw refused(
      `begin ${args.version}: update ${active.version} is ${active.state}; commit or abort it first`,
    );
  }
  const u = s.updates.get(args.version);
  if (!u)
    throw refused(`begin ${args.version}: no plan submitted for this version (coord-submit-plan first)`);
  if (u.state !== 'planned') {
    throw refused(`begin ${args.version}: the update is ${u.state}; submit its plan again to retry`);
  }
  if (u.prev_version !== null && s.current.version !== null && u.prev_version !== s.current.version) {
    throw refused(
      `begin ${args.version}: the plan is a delta from ${u.prev_version} but the current version is ${s.current.version}; plan again against the current manifest`,
    );
  }
  const plan = await s.backend.get<Plan>(`plan:${args.version}`);
  if (!plan)
    throw new CoordinatorError(ERROR_CODES.internal, `begin ${args.version}: the stored plan is missing`);
  const registered = [...new Set([...s.workers.values()].map((w) => w.rank))];
  s.activePlan = plan;
  s.activeJson = undefined;
  s.have.set(args.version, {});
  await s.backend.set(`have:${args.version}`, {});
  const begun: UpdateRecord = {
    ...u,
    kind: 'update',
    from_version: s.current.version,
    state: 'begun',
    auto_commit: args.auto_commit,
    required_ranks: requiredRanks(plan, registered),
    precommits: {},
    reason: null,
    begun_at: Date.now(),
  };
  await s.putUpdate(begun);
  await s.emit('begin', {
    version: begun.version,
    plan_digest: begun.plan_digest,
    required_ranks: begun.required_ranks,
  });
  // Nobody to wait for (an empty plan with no workers): the quorum is already there.
  if (begun.required_ranks.length === 0) return reachQuorum(s, begun);
  return s.view(begun);
}

export async function precommit(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('precommit', (c) => ({
    version: c.string(p.version, 'version', { nonEmpty: true }),
    rank: c.count(p.rank, 'rank'),
    digest: c.string(p.digest, 'digest', { nonEmpty: true }),
    worker_id: c.nullableString(p.worker_id, 'worker_id'),
    lease_key: c.nullableString(p.lease_key ?? null, 'lease_key'),
  }));
  const u = s.updates.get(args.version);
  if (!u) throw refused(`precommit ${args.version}: no such update`);
  if (!ACTIVE_STATES.includes(u.state)) throw refused(`precommit ${args.version}: the update is ${u.state}`);
  if (!u.required_ranks.includes(args.rank)) {
    throw refused(
      `precommit ${args.version}: rank ${args.rank} is not part of this update (ranks ${u.required_ranks.join(', ')})`,
    );
  }
  // A vote counts only from the worker that holds the rank: anyone can compute the digest from
  // the open get_plan and read the holder's id from status, nobody else holds its lease key.
  const holder = holderOf(s, args.rank);
  if (!holder || holder.worker_id !== args.worker_id) {
    throw new CoordinatorError(
      ERROR_CODES.notHolder,
      `precommit ${args.version}: rank ${args.rank} is ${holder ? `held by worker ${holder.worker_id}` : 'held by no live worker'}, not by ${args.worker_id ?? '(no worker id)'}: a precommit counts only from the worker that holds the rank`,
    );
  }
  requireLeaseKey(holder, args.lease_key, `precommit ${args.version} for rank ${args.rank}`);
  const plan = s.activePlan;
  if (!plan || plan.version !== args.version) {
    throw new CoordinatorError(ERROR_CODES.internal, `precommit ${args.version}: the plan is not loaded`);
  }
  if (plan.world_size !== null && plan.world_size !== holder.world_size) {
    throw refused(
      `precommit ${args.version}: worker ${holder.worker_id} registered for world size ${holder.world_size}, the plan was made for ${plan.world_size}`,
    );
  }
  const expected =
    u.kind === 'rollback'
      ? rollbackDigest(u.version, u.from_version ?? null)
      : expectedDigest(plan, args.rank);
  if (args.digest !== expected) {
    throw new CoordinatorError(
      ERROR_CODES.digestMismatch,
      `precommit ${args.version}: rank ${args.rank} staged something else than the plan assigns it (digest ${args.digest.slice(0, 24)}…, expected ${expected.slice(0, 24)}…)`,
    );
  }
  const updated: UpdateRecord = {
    ...u,
    precommits: {
      ...u.precommits,
      [String(args.rank)]: { digest: args.digest, worker_id: args.worker_id, at: Date.now() },
    },
  };
  await s.putUpdate(updated);
  await s.emit('precommit', { version: u.version, rank: args.rank });
  const view = s.view(updated);
  if (u.state === 'begun' && view.missing_ranks.length === 0) return reachQuorum(s, updated);
  return view;
}

async function reachQuorum(s: CoordinatorState, u: UpdateRecord): Promise<UpdateView> {
  const q: UpdateRecord = { ...u, state: 'precommitted' };
  await s.putUpdate(q);
  await s.emit('quorum', { version: q.version });
  if (q.auto_commit) return finishCommit(s, q);
  return s.view(q);
}

export async function commit(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('commit', (c) => ({
    version: c.string(p.version, 'version', { nonEmpty: true }),
  }));
  const u = s.updates.get(args.version);
  if (!u) throw refused(`commit ${args.version}: no such update`);
  if (u.state === 'committed') return s.view(u);
  if (u.state === 'begun') {
    const missing = s.view(u).missing_ranks;
    throw new CoordinatorError(
      ERROR_CODES.noQuorum,
      `commit ${args.version}: no quorum yet: rank(s) ${missing.join(', ')} have not precommitted`,
    );
  }
  if (u.state !== 'precommitted') throw refused(`commit ${args.version}: the update is ${u.state}`);
  return finishCommit(s, u);
}

async function finishCommit(s: CoordinatorState, u: UpdateRecord): Promise<UpdateView> {
  const now = Date.now();
  const committed: UpdateRecord = { ...u, state: 'committed', finished_at: now };
  const manifest = u.has_manifest ? await s.backend.get<JsonObject>(`manifest:${u.version}`) : undefined;
  if (manifest) await s.backend.set('current_manifest', manifest);
  s.current = {
    version: u.version,
    manifest_digest: manifest ? String(manifest.digest ?? '') || null : s.current.manifest_digest,
    committed_at: now,
  };
  await s.backend.set('current', s.current);
  await s.putUpdate(committed);
  await clearActive(s, u.version);
  s.metrics?.updates.inc({ result: 'committed' });
  await s.emit('commit', { version: u.version, plan_digest: u.plan_digest });
  return s.view(committed);
}

export async function abort(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('abort', (c) => ({
    version: p.version === undefined ? undefined : c.string(p.version, 'version', { nonEmpty: true }),
    reason: p.reason === undefined ? undefined : c.string(p.reason, 'reason'),
  }));
  const active = s.active();
  if (!active) throw refused('abort: no update is in progress');
  if (args.version !== undefined && args.version !== active.version) {
    throw refused(`abort ${args.version}: the update in progress is ${active.version}`);
  }
  return finishAbort(s, active, (args.reason ?? 'aborted by request').slice(0, 500));
}

export async function finishAbort(s: CoordinatorState, u: UpdateRecord, reason: string): Promise<UpdateView> {
  const aborted: UpdateRecord = { ...u, state: 'aborted', reason, finished_at: Date.now() };
  await s.putUpdate(aborted);
  await clearActive(s, u.version);
  s.metrics?.updates.inc({ result: 'aborted' });
  await s.emit('abort', { version: u.version, reason });
  return s.view(aborted);
}

async function clearActive(s: CoordinatorState, version: string): Promise<void> {
  s.activePlan = undefined;
  s.activeJson = undefined;
  s.have.delete(version);
  await s.backend.delete(`have:${version}`);
  s.refreshGauges();
}

/** One update's record (the outcome an in-doubt rank asks for), or null. */
export function getUpdate(s: CoordinatorState, p: JsonObject): unknown {
  const { version } = checkParams('get_update', (c) => ({
    version: c.string(p.version, 'version', { nonEmpty: true }),
  }));
  const u = s.updates.get(version);
  return { update: u ? s.view(u) : null, current_version: s.current.version };
}

/**
 * A fleet rollback: back to the version that was current before the current one, through the same
 * two phases as an update. Every rank of the fleet votes once it can make that version live again
 * (kept beside the live one, or fetched anew from the source); on commit the current version and
 * manifest move back too.
 */
export async function rollback(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('rollback', (c) => ({
    to: p.to === undefined || p.to === null ? undefined : c.string(p.to, 'to', { nonEmpty: true }),
    auto_commit: p.auto_commit === undefined ? true : checkBool(c, p.auto_commit, 'auto_commit'),
  }));
  const active = s.active();
  if (active)
    throw refused(`rollback: update ${active.version} is ${active.state}; commit or abort it first`);
  const from = s.current.version;
  if (from === null) throw refused('rollback: nothing is committed yet');
  const cur = s.updates.get(from);
  const target = args.to ?? cur?.from_version ?? cur?.prev_version ?? null;
  if (target === null) {
    throw refused(`rollback: no version before ${from} is known; name one with --to`);
  }
  if (target === from) throw refused(`rollback: ${target} is already the current version`);
  const plan = await s.backend.get<Plan>(`plan:${target}`);
  const manifest = await s.backend.get<JsonObject>(`manifest:${target}`);
  const prior = s.updates.get(target);
  if (!plan || !manifest || !prior) {
    throw refused(
      `rollback: the coordinator holds no plan and manifest for ${target} (it was not deployed through this coordinator with its manifest)`,
    );
  }
  const world = fleetWorldSize(s);
  const ranks = new Set<number>([...s.workers.values()].map((w) => w.rank));
  for (let r = 0; r < world; r++) ranks.add(r);
  s.activePlan = plan;
  s.activeJson = undefined;
  const now = Date.now();
  const begun: UpdateRecord = {
    ...prior,
    kind: 'rollback',
    from_version: from,
    state: 'begun',
    plan_digest: plan.digest,
    auto_commit: args.auto_commit,
    required_ranks: [...ranks].sort((a, b) => a - b),
    precommits: {},
    reason: null,
    has_manifest: true,
    submitted_at: now,
    begun_at: now,
    finished_at: null,
  };
  await s.putUpdate(begun);
  await s.emit('begin', {
    version: begun.version,
    kind: 'rollback',
    from,
    plan_digest: begun.plan_digest,
    required_ranks: begun.required_ranks,
  });
  if (begun.required_ranks.length === 0) return reachQuorum(s, begun);
  return s.view(begun);
}
