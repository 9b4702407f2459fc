/**
 * `hotweights demo`: the whole job on this machine in a few seconds. Makes a small safetensors
 * model (base) and a fine-tune of its top layers, publishes both, plans a full deployment and a
 * delta, and runs each through the fleet flow: an embedded coordinator in this process and one
 * real `hotweights worker` process per rank, which stage, verify, precommit and flip on commit.
 * Then it byte-compares the result with the fine-tune and leaves everything in place to look at.
 * `--no-coordinator` runs the one-host launcher instead (no control plane).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, VerificationError } from '@hotweights/core';
import {
  createPlan,
  publish,
  type TensorData,
  writeManifest,
  writePlan,
  writeSafetensors,
} from '@hotweights/planner';
import { recordSourceRoot } from '@hotweights/runtime';
import type { CommandModule } from '../command.js';
import type { CliContext } from '../context.js';
import { type FleetUpdateSummary, fleetLine, fmt, runFleet } from './demo-fleet.js';
import { type ReplicateSummary, rankTarget, replicateLocally } from './replicate.js';

const MARKER = '.hotweights-demo';
const LAYERS = 8;
const TUNED = [6, 7];

function f32(rows: number, cols: number): TensorData {
  return { dtype: 'F32', shape: [rows, cols], data: randomBytes(rows * cols * 4) };
}

/** Two shards: embeddings + the first half of the layers, the rest + the head. */
function baseModel(): Record<string, Record<string, TensorData>> {
  const shards: Record<string, Record<string, TensorData>> = {
    'model-00001-of-00002.safetensors': { 'embed_tokens.weight': f32(1024, 512) },
    'model-00002-of-00002.safetensors': { 'lm_head.weight': f32(1024, 512) },
  };
  for (let l = 0; l < LAYERS; l++) {
    const shard = l < LAYERS / 2 ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors';
    const s = shards[shard] as Record<string, TensorData>;
    s[`layers.${l}.attn.weight`] = f32(512, 512);
    s[`layers.${l}.mlp.weight`] = f32(512, 1024);
    s[`layers.${l}.norm.weight`] = f32(1, 512);
  }
  return shards;
}

async function writeModel(dir: string, shards: Record<string, Record<string, TensorData>>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, tensors] of Object.entries(shards)) await writeSafetensors(join(dir, name), tensors);
  await writeFile(
    join(dir, 'config.json'),
    `${JSON.stringify({ model_type: 'demo', num_layers: LAYERS }, null, 2)}\n`,
  );
}

function line(label: string, s: ReplicateSummary): string {
  const share = s.checkpoint_bytes
    ? ` of ${fmt(s.checkpoint_bytes)} (${((100 * s.bytes_planned) / s.checkpoint_bytes).toFixed(1)}%)`
    : '';
  return `  ${label}: ${fmt(s.bytes_planned)}${share} to ${s.world_size} ranks in ${s.seconds.toFixed(3)} s (${s.throughput_gbps.toFixed(2)} GB/s), ${s.items_verified} items verified on rank 0, committed, pause ${s.pause_ms.toFixed(2)} ms`;
}

interface DemoOpts {
  dir: string;
  worldSize: string;
  coordinator: boolean;
  json?: boolean;
  adapter: string;
}

export const demoCommand: CommandModule = {
  name: 'demo',
  register(program, ctx) {
    program
      .command('demo')
      .description(
        'Publish, plan, replicate, verify and commit a small model and a fine-tune on this machine',
      )
      .option(
        '--dir <dir>',
        'where to put everything (replaced if it holds an earlier demo)',
        join(tmpdir(), 'hotweights-demo'),
      )
      .option('--world-size <n>', 'local ranks', '2')
      .option('--no-coordinator', 'replicate with the one-host launcher instead of coordinator + workers')
      .option('--json', 'print the summary as JSON')
      .option(
        '--adapter <name>',
        'where versions land: directory (default) or vllm (a stand-in vLLM server; needs a source checkout and its Python venv)',
        'directory',
      )
      .action(async (opts: DemoOpts) => {
        const c = ctx();
        const dir = resolve(opts.dir);
        if (opts.adapter !== 'directory' && opts.adapter !== 'vllm') {
          throw new ConfigError(`demo --adapter ${opts.adapter}: expected directory or vllm`);
        }
        if (opts.adapter === 'vllm' && !opts.coordinator) {
          throw new ConfigError('demo --adapter vllm runs through the coordinator: drop --no-coordinator');
        }
        const worldSize = Number(opts.worldSize);
        if (!Number.isInteger(worldSize) || worldSize < 1 || worldSize > 16) {
          throw new ConfigError(`--world-size ${opts.worldSize}: expected an integer in 1..16`);
        }
        if (existsSync(dir)) {
          const entries = await readdir(dir);
          if (entries.length > 0 && !entries.includes(MARKER)) {
            throw new ConfigError(`--dir ${dir} exists and is not an earlier demo; choose another --dir`);
          }
          await rm(dir, { recursive: true, force: true });
        }
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, MARKER), 'made by `hotweights demo`; safe to delete\n');
        const say = (text: string) => {
          if (!opts.json) c.out(text);
        };
        if (opts.adapter === 'vllm') {
          const { runVllmDemo } = await import('./demo-vllm.js');
          await runVllmDemo(c, { dir, json: opts.json === true, say });
          return;
        }

        const base = join(dir, 'checkpoints', 'base');
        const tuned = join(dir, 'checkpoints', 'finetune');
        const shards = baseModel();
        await writeModel(base, shards);
        // The fine-tune changes the top layers only (what a LoRA merge or an RL step often does).
        const ft = structuredClone(shards);
        for (const l of TUNED) {
          const s = ft['model-00002-of-00002.safetensors'] as Record<string, TensorData>;
          s[`layers.${l}.attn.weight`] = f32(512, 512);
          s[`layers.${l}.mlp.weight`] = f32(512, 1024);
        }
        await writeModel(tuned, ft);

        const m0 = await publish({ checkpoint: base, version: 'v0', modelId: 'hotweights/demo' });
        const m1 = await publish({ checkpoint: tuned, version: 'v1', modelId: 'hotweights/demo' });
        // As `hotweights publish` does: the ranks may read only checkpoints published on this host.
        for (const root of [base, tuned]) await recordSourceRoot(c.config.stateDir, root);
        const allowed = [...(c.config.sourceRoots ?? []), base, tuned];
        const cs: CliContext = { ...c, config: { ...c.config, sourceRoots: allowed } };
        const manifests = join(dir, 'manifests');
        await mkdir(manifests, { recursive: true });
        await writeManifest(m0, join(manifests, 'v0.manifest'));
        await writeManifest(m1, join(manifests, 'v1.manifest'));
        say(`published v0 (${base}) and v1 (${tuned}): ${m1.size} entries, ${fmt(m1.total_bytes)} each`);

        const plans = join(dir, 'plans');
        await mkdir(plans, { recursive: true });
        const bucketBytes = 4 << 20;
        const full = createPlan({
          prev: null,
          next: m0,
          checkpointRoot: base,
          nextManifestPath: join(manifests, 'v0.manifest'),
          bucketBytes,
          worldSize,
        });
        const delta = createPlan({
          prev: m0,
          next: m1,
          checkpointRoot: tuned,
          nextManifestPath: join(manifests, 'v1.manifest'),
          bucketBytes,
          worldSize,
        });
        await writePlan(full, join(plans, 'v0-full.json'));
        await writePlan(delta, join(plans, 'v1-delta.json'));
        say(
          `planned: full deployment of v0 (${full.buckets.length} buckets), delta v0 -> v1 (${delta.buckets.length} buckets, ${fmt(delta.total_bytes)})`,
        );

        const target = join(dir, 'target');
        let result: {
          full: ReplicateSummary | FleetUpdateSummary;
          delta: ReplicateSummary | FleetUpdateSummary;
        };
        let via: string;
        if (opts.coordinator) {
          say(`starting an embedded coordinator and ${worldSize} \`hotweights worker\` process(es)`);
          const fleet = await runFleet(cs, {
            dir,
            adapterArgs: (r) => ['--target', rankTarget(target, r, worldSize)],
            worldSize,
            updates: [
              { plan: full, next: m0 },
              { plan: delta, next: m1 },
            ],
          });
          const [first, second] = fleet.summaries as [FleetUpdateSummary, FleetUpdateSummary];
          say(fleetLine('deploy v0 (full) ', first));
          say(fleetLine('update v1 (delta)', second));
          result = { full: first, delta: second };
          via = `coordinator ${fleet.endpoint} (closed) and ${worldSize} worker process(es); logs in ${fleet.logs}`;
        } else {
          const common = { verify: true, commit: true, target, worldSize, metricsPort: false as const };
          const first = await replicateLocally(cs, { ...common, plan: join(plans, 'v0-full.json') });
          say(line('deploy v0 (full) ', first));
          const second = await replicateLocally(cs, { ...common, plan: join(plans, 'v1-delta.json') });
          say(line('update v1 (delta)', second));
          result = { full: first, delta: second };
          via = 'the one-host launcher (no coordinator)';
        }

        // Independent check: every rank's live files are byte-identical to the fine-tune.
        const files = m1.files.map((f) => f.path);
        for (let r = 0; r < worldSize; r++) {
          const live = join(rankTarget(target, r, worldSize), 'current');
          for (const f of files) {
            if (Buffer.compare(readFileSync(join(live, f)), readFileSync(join(tuned, f))) !== 0) {
              throw new VerificationError(`demo: rank ${r}: ${join(live, f)} differs from ${join(tuned, f)}`);
            }
          }
        }
        const where = rankTarget(target, 0, worldSize);
        if (opts.json) {
          c.json({
            dir,
            target,
            world_size: worldSize,
            coordinator: opts.coordinator,
            full: result.full,
            delta: result.delta,
            verified_files: files.length * worldSize,
          });
          return;
        }
        say(
          `  verified: ${files.length} files on each of ${worldSize} ranks are byte-identical to the fine-tune`,
        );
        say('');
        say(`everything is in ${dir}:`);
        say(`  ${join(where, 'current')} -> versions/v1   (the live model; previous -> versions/v0)`);
        say(`  ${plans}/          the plans (JSON); ${manifests}/ the manifests`);
        say(`  replicated through ${via}`);
        say('try:');
        say(`  hotweights status --target ${target}`);
        say(`  hotweights rollback --target ${target}`);
      });
  },
};
