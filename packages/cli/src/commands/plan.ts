/** `hotweights plan`: delta plan between two manifests, packed into buckets (docs/PLANNING.md). */
import { freemem } from 'node:os';
import { resolve } from 'node:path';
import { ConfigError, MAX_WORLD_SIZE, type Manifest, PlanVerificationError } from '@hotweights/core';
import {
  type ColumnarManifest,
  checkManifestFileUnchanged,
  loadManifest,
  readCommittedManifest,
  toColumnar,
  useEntryCheck,
  useKeyOrderCheck,
} from '@hotweights/manifest';
import {
  type ConsumerOptions,
  createPlan,
  formatBytes,
  nativeEntryCheck,
  nativeKeyOrderCheck,
  parseGroupMap,
  parseTpGroups,
  planDeltaCounts,
  stagePlan,
  verifyPlan,
  type WrittenPatches,
  writePatches,
} from '@hotweights/planner';
import { recordSourceRoot } from '@hotweights/runtime/source-roots';
import type { CommandModule } from '../command.js';
import type { CliContext } from '../context.js';

/**
 * Where `plan --coord-endpoint` gets the current manifest. The coordinator integration registers
 * it (setCoordinatorManifestSource); without one, the flag is an error that says so.
 */
export type CoordinatorManifestSource = (
  endpoint: string,
  modelId: string | null,
  ctx: CliContext,
) => Promise<Manifest | null>;

let coordinatorSource: CoordinatorManifestSource | undefined;

export function setCoordinatorManifestSource(source: CoordinatorManifestSource | undefined): void {
  coordinatorSource = source;
}

/** Bounds for `--auto`: below 16 MiB per-bucket overheads dominate; above 2 GiB buffers get unwieldy. */
export const AUTO_BUCKET_MIN = 16 * 1024 * 1024;
export const AUTO_BUCKET_MAX = 2 * 1024 * 1024 * 1024;

/** `--auto --alpha A`: a fraction of the memory staging can use (free host memory here). */
export function autoBucketBytes(alpha: number, freeBytes: number): { bytes: number; clamped: boolean } {
  const raw = Math.floor(alpha * freeBytes);
  const bytes = Math.min(AUTO_BUCKET_MAX, Math.max(AUTO_BUCKET_MIN, raw));
  // Whole MiB keeps plans readable and aligned.
  return { bytes: Math.floor(bytes / (1024 * 1024)) * 1024 * 1024, clamped: bytes !== raw };
}

interface PlanFlags {
  next: string;
  prev?: string;
  output: string;
  bucketMb?: string;
  auto?: boolean;
  alpha?: string;
  alignment?: string;
  groupMap?: string;
  tpGroups?: string;
  tpAuto?: boolean;
  worldSize?: string;
  sourceRank?: string;
  checkpoint?: string;
  strict?: boolean;
  json?: boolean;
  coordEndpoint?: string;
  patches?: boolean;
  prevCheckpoint?: string;
  patchFile?: string;
}

function intFlag(value: string | undefined, flag: string, min: number, max?: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || (max !== undefined && n > max))
    throw new ConfigError(
      `${flag} ${value}: expected an integer ${max === undefined ? `>= ${min}` : `in ${min}..${max}`}`,
    );
  return n;
}

async function previousManifest(
  opts: PlanFlags,
  next: ColumnarManifest,
  c: CliContext,
  prevLoad?: Promise<Manifest>,
): Promise<{ prev: Manifest | null; source: string }> {
  // The previous manifest is only looked up by key where the layout changed: index it lazily.
  if (opts.prev)
    return {
      prev: await (prevLoad ?? loadManifest(opts.prev, { lazyIndex: true, map: true })),
      source: resolve(opts.prev),
    };
  // Seed behaviour: with a coordinator configured (HOTWEIGHTS_COORD), prev is its current version.
  const endpoint = opts.coordEndpoint ?? (coordinatorSource ? c.config.coordEndpoint : undefined);
  if (endpoint) {
    if (!coordinatorSource)
      throw new ConfigError(
        `--coord-endpoint ${endpoint}: this hotweights has no coordinator integration installed; pass --prev instead`,
      );
    const prev = await coordinatorSource(endpoint, next.model_id, c);
    return {
      prev,
      source: prev ? `coordinator ${endpoint}` : `coordinator ${endpoint} (no current version)`,
    };
  }
  const prev = await readCommittedManifest(c.config.stateDir, next, { lazyIndex: true, map: true });
  // A delta from a version to itself is never meant: another model's record under the same
  // (default) model id, or a checkpoint published again under the committed name.
  if (prev && prev.version === next.version)
    throw new ConfigError(
      `the version committed last on this host (recorded in ${c.config.stateDir}) is also named ${next.version}${next.model_id ? '' : ' (manifests without --model-id share one record)'}: pass --prev MANIFEST to choose the base, or publish each model with its own --model-id`,
    );
  return {
    prev,
    source: prev
      ? `last committed version ${prev.version} (${c.config.stateDir})`
      : `no committed version recorded in ${c.config.stateDir}`,
  };
}

/**
 * With --patches (or HOTWEIGHTS_PATCHES=1): encodes the changed tensors against the previous
 * version's checkpoint and records the patch file as a root the source rank may read.
 */
async function planPatches(
  opts: PlanFlags,
  c: CliContext,
  prev: Manifest | null,
  next: Manifest,
  nextRoot: string,
  bucketBytes: number,
): Promise<WrittenPatches | undefined> {
  if (!(opts.patches ?? c.config.patches)) {
    if (opts.prevCheckpoint || opts.patchFile)
      throw new ConfigError('--prev-checkpoint and --patch-file need --patches');
    return undefined;
  }
  if (!prev)
    throw new ConfigError(
      '--patches: there is no previous version to patch against (pass --prev, or plan without --patches)',
    );
  const prevRoot = opts.prevCheckpoint ?? prev.checkpoint_root;
  if (!prevRoot)
    throw new ConfigError(
      `--patches: the previous manifest (version ${prev.version}) does not record its checkpoint directory: pass --prev-checkpoint DIR`,
    );
  const written = await writePatches({
    prev,
    next,
    prevRoot,
    nextRoot,
    output: opts.patchFile ?? `${opts.output}.patches`,
    maxPatchBytes: bucketBytes,
  });
  await recordSourceRoot(c.config.stateDir, written.file.path);
  return written;
}

export const planCommand: CommandModule = {
  name: 'plan',
  register(program, ctx) {
    program
      .command('plan')
      .description(
        'Plan the bytes that move from the previous version to the next: changed tensors packed into buckets',
      )
      .requiredOption('--next <manifest>', 'manifest of the version to move to')
      .option(
        '--prev <manifest>',
        'manifest of the current version (default: the last committed version recorded locally)',
      )
      .requiredOption('--output <file>', 'where to write the plan JSON')
      .option('--bucket-mb <n>', 'bucket size in MiB (default HOTWEIGHTS_BUCKET_MB, 64)')
      .option('--auto', 'size buckets as --alpha times the memory available to staging')
      .option(
        '--alpha <fraction>',
        'with --auto: fraction of free memory per bucket (0 < A <= 1, default 0.1)',
      )
      .option('--alignment <bytes>', 'item offset alignment inside a bucket, a power of two (default 256)')
      .option('--group-map <file>', 'JSON {"<glob on tensor names>": [ranks]} giving consumer ranks')
      .option(
        '--tp-groups <json-or-file>',
        'TP groups {"<group id>": [ranks]} (default HOTWEIGHTS_TP_GROUPS)',
      )
      .option('--tp-auto', 'derive TP groups from the shard ranks in the manifest')
      .option('--world-size <n>', 'ranks 0..N-1 that consume by default (default 1)')
      .option('--source-rank <n>', 'rank that reads the checkpoint and sends (default 0)')
      .option(
        '--checkpoint <dir>',
        'checkpoint directory of --next on the source rank (default: where it was published)',
      )
      .option('--strict', 'fail (exit 1, no plan written) when verification finds problems')
      .option(
        '--coord-endpoint <endpoint>',
        'take the previous manifest from the coordinator (current version)',
      )
      .option('--json', 'print a JSON summary')
      .option(
        '--patches',
        'encode changed tensors as patches against the previous version where smaller (default HOTWEIGHTS_PATCHES; docs/PATCHES.md)',
      )
      .option(
        '--prev-checkpoint <dir>',
        'with --patches: checkpoint directory of the previous version (default: where it was published)',
      )
      .option('--patch-file <file>', 'with --patches: where the patch bytes go (default: OUTPUT.patches)')
      .action(async (opts: PlanFlags) => {
        const c = ctx();
        if (opts.auto && opts.bucketMb !== undefined)
          throw new ConfigError('--auto and --bucket-mb exclude each other');
        if (opts.alpha !== undefined && !opts.auto) throw new ConfigError('--alpha needs --auto');
        const worldSize = intFlag(opts.worldSize, '--world-size', 1, MAX_WORLD_SIZE) ?? 1;
        const sourceRank = intFlag(opts.sourceRank, '--source-rank', 0) ?? 0;
        const alignment = intFlag(opts.alignment, '--alignment', 1);
        let bucketBytes: number;
        let bucketNote: string;
        if (opts.auto) {
          const alpha = opts.alpha === undefined ? 0.1 : Number(opts.alpha);
          if (!(alpha > 0 && alpha <= 1))
            throw new ConfigError(`--alpha ${opts.alpha}: expected a fraction 0 < A <= 1`);
          const free = freemem();
          const chosen = autoBucketBytes(alpha, free);
          bucketBytes = chosen.bytes;
          bucketNote =
            `auto bucket size ${formatBytes(bucketBytes)}: alpha ${alpha} × free host memory ${formatBytes(free)}` +
            `${chosen.clamped ? `, clamped to [${formatBytes(AUTO_BUCKET_MIN)}, ${formatBytes(AUTO_BUCKET_MAX)}]` : ''}` +
            ' (no device transport is active, so host memory is the staging limit)';
        } else {
          const mb = opts.bucketMb === undefined ? c.config.bucketMb : Number(opts.bucketMb);
          if (!(Number.isFinite(mb) && mb > 0))
            throw new ConfigError(`--bucket-mb ${opts.bucketMb}: expected a number > 0`);
          bucketBytes = Math.floor(mb * 1024 * 1024);
          bucketNote = `bucket size ${formatBytes(bucketBytes)}`;
        }
        const consumers: ConsumerOptions = {
          groupMap: opts.groupMap ? parseGroupMap(opts.groupMap) : undefined,
          tpGroups:
            (opts.tpGroups ?? c.config.tpGroups)
              ? parseTpGroups((opts.tpGroups ?? c.config.tpGroups) as string)
              : undefined,
          tpAuto: opts.tpAuto,
        };
        // The addon checks the manifests' entries and stored key orders when it loads (the same
        // verdicts; a manifest it refuses is checked again in JS, which says what is wrong).
        useEntryCheck(nativeEntryCheck);
        useKeyOrderCheck(nativeKeyOrderCheck);
        // Both files are read at once (the reads overlap each other and next's validation);
        // next's errors still come first.
        // Binary manifests are mapped, not read into new memory (checked unchanged before writing).
        const prevLoad = opts.prev ? loadManifest(opts.prev, { lazyIndex: true, map: true }) : undefined;
        prevLoad?.catch(() => {});
        const next = await loadManifest(opts.next, { map: true });
        // A pattern that matches nothing is a typo or a stale map: its ranks would get nothing.
        for (const rule of consumers.groupMap ?? []) {
          let hit = false;
          for (let i = 0; i < next.size && !hit; i++) hit = rule.regex.test(next.columns.tensor.get(i));
          if (!hit)
            c.err(
              `hotweights: warning: --group-map pattern ${JSON.stringify(rule.pattern)} matches no tensor of ${next.version} (globs on tensor names: * and ?); it gives its ranks nothing`,
            );
        }
        const { prev, source } = await previousManifest(opts, next, c, prevLoad);
        const checkpointRoot = opts.checkpoint ?? next.checkpoint_root;
        if (!checkpointRoot)
          throw new ConfigError(
            `${opts.next} does not record its checkpoint directory: pass --checkpoint DIR`,
          );
        const patches = await planPatches(opts, c, prev, next, checkpointRoot, bucketBytes);
        const plan = createPlan({
          ...(patches ? { patches } : {}),
          prev,
          next,
          checkpointRoot,
          nextManifestPath: resolve(opts.next),
          bucketBytes,
          alignment,
          sourceRank,
          worldSize,
          consumers,
        });
        // The file is written beside --output while the plan and both manifests are checked, and
        // replaces --output only once they pass.
        const staged = stagePlan(plan, opts.output);
        let report: ReturnType<typeof verifyPlan>;
        try {
          // The planner chose every consumer set: an empty one means the group map or TP groups
          // miss some entries, so it is a problem here (fatal with --strict).
          report = verifyPlan(plan, {
            tpGroups: consumers.tpGroups,
            trusted: true,
            requireConsumers: true,
          });
          if (opts.strict && !report.ok)
            throw new PlanVerificationError(report.problems.map((p) => p.message));
          checkManifestFileUnchanged(next);
          if (prev) checkManifestFileUnchanged(toColumnar(prev));
          await staged.commit();
        } catch (err) {
          await staged.discard();
          throw err;
        }

        // Summary: what changed, what moves.
        const prevCol = prev ? toColumnar(prev) : null;
        // createPlan counted them while planning; the lookups below are for other plans.
        const counts = planDeltaCounts(plan);
        let changed = counts?.changed ?? 0;
        let added = counts?.added ?? 0;
        const seen = new Set<string>();
        for (const b of counts ? [] : plan.buckets)
          for (const it of b.items) {
            if (seen.has(it.key)) continue;
            seen.add(it.key);
            if (prevCol && prevCol.indexOfTensor(it.tensor, it.shard_rank) >= 0) changed++;
            else added++;
          }
        const patchCount = patches?.patches.size ?? 0;
        const patchNote = patches
          ? `; ${patchCount} of ${patches.tried} changed tensor(s) as patches (${formatBytes(patches.file.bytes)} for ${formatBytes(patches.triedBytes)}) -> ${patches.file.path}`
          : '';
        const pct = plan.checkpoint_bytes ? (100 * plan.total_bytes) / plan.checkpoint_bytes : 0;
        if (opts.json) {
          c.json({
            plan: resolve(opts.output),
            version: plan.version,
            prev_version: plan.prev_version,
            prev_source: source,
            changed,
            added,
            removed: plan.removed.length,
            buckets: plan.buckets.length,
            bucket_bytes: plan.bucket_bytes,
            total_bytes: plan.total_bytes,
            checkpoint_bytes: plan.checkpoint_bytes,
            digest: plan.digest,
            ...(patches
              ? {
                  patches: {
                    file: patches.file.path,
                    items: patchCount,
                    tried: patches.tried,
                    patch_bytes: patches.file.bytes,
                    tensor_bytes: patches.triedBytes,
                  },
                }
              : {}),
            verification: report,
          });
        } else {
          c.err(`previous: ${source}`);
          c.err(bucketNote);
          for (const p of report.problems) c.err(`problem [${p.check}]: ${p.message}`);
          for (const w of report.warnings) c.err(`warning [${w.check}]: ${w.message}`);
          c.out(
            `plan ${plan.prev_version ?? '(none)'} -> ${plan.version}: ${changed} changed, ${added} added, ${plan.removed.length} removed; ` +
              `${formatBytes(plan.total_bytes)} of ${formatBytes(plan.checkpoint_bytes)} (${pct.toFixed(1)}%) in ${plan.buckets.length} bucket(s) -> ${resolve(opts.output)}${patchNote}`,
          );
        }
      });
  },
};
