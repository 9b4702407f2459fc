/** `hotweights publish`: manifest of a checkpoint directory (see docs/PLANNING.md). */
import { basename, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ConfigError } from '@hotweights/core';
import {
  formatBytes,
  MANIFEST_FORMATS,
  type ManifestFormat,
  publish,
  writeManifest,
} from '@hotweights/planner';
import { recordSourceRoot } from '@hotweights/runtime/source-roots';
import type { CommandModule } from '../command.js';

interface PublishFlags {
  checkpoint: string;
  version: string;
  modelId?: string;
  output?: string;
  hash?: string;
  threads?: string;
  allowInsideCheckpoint?: boolean;
  followSymlinks?: boolean;
  format?: string;
  json?: boolean;
}

/** Default output: `<checkpoint name>-<version>.manifest[.json]` in the current directory. */
function defaultOutput(checkpoint: string, version: string, format: ManifestFormat): string {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_');
  const ext = format === 'json' ? '.manifest.json' : '.manifest';
  return resolve(`${safe(basename(resolve(checkpoint)))}-${safe(version)}${ext}`);
}

export const publishCommand: CommandModule = {
  name: 'publish',
  register(program, ctx) {
    program
      .command('publish')
      .description(
        'Build the manifest of a checkpoint directory: one hashed entry per tensor and per other file',
      )
      .requiredOption(
        '--checkpoint <dir>',
        'checkpoint directory (safetensors shards, index, config, tokenizer)',
      )
      .requiredOption('--version <version>', 'version name of this checkpoint, e.g. 2025-09-11 or v3')
      .option('--model-id <id>', 'model the checkpoint belongs to (scopes the committed-version record)')
      .option(
        '--output <file>',
        'manifest path (default: ./<checkpoint>-<version>.manifest, or .manifest.json with --format json)',
      )
      .option(
        '--format <format>',
        'binary (default: manifest_version 3, fast to load) or json (manifest_version 2, readable); both load everywhere',
      )
      .option(
        '--hash <algo>',
        'blake3 (default, HOTWEIGHTS_HASH), xxh3-64 (faster, non-cryptographic) or sha256',
      )
      .option('--threads <n>', 'hashing threads (default: HOTWEIGHTS_HASH_THREADS or every core)')
      .option('--allow-inside-checkpoint', 'allow writing the manifest inside the checkpoint directory')
      .option(
        '--follow-symlinks',
        'follow symlinks that lead out of the checkpoint (listed in the output); otherwise they are refused',
      )
      .option('--json', 'print a JSON summary')
      .action(async (opts: PublishFlags) => {
        const c = ctx();
        const format = (opts.format ?? 'binary') as ManifestFormat;
        if (!MANIFEST_FORMATS.includes(format))
          throw new ConfigError(`--format ${opts.format}: expected one of ${MANIFEST_FORMATS.join(', ')}`);
        const output = resolve(opts.output ?? defaultOutput(opts.checkpoint, opts.version, format));
        let threads = c.config.hashThreads;
        if (opts.threads !== undefined) {
          threads = Number(opts.threads);
          if (!Number.isSafeInteger(threads) || threads < 1)
            throw new ConfigError(`--threads ${opts.threads}: expected an integer >= 1`);
        }
        const started = performance.now();
        let lastDraw = 0;
        const followed: Array<{ path: string; target: string }> = [];
        const m = await publish({
          followSymlinks: opts.followSymlinks === true,
          onFollowedLink: (path, target) => followed.push({ path, target }),
          checkpoint: opts.checkpoint,
          version: opts.version,
          modelId: opts.modelId ?? null,
          hash: opts.hash ?? c.config.hash,
          threads,
          exclude: [output],
          onProgress: c.interactive
            ? (p) => {
                const now = performance.now();
                if (now - lastDraw < 100 && p.bytesDone < p.bytesTotal) return;
                lastDraw = now;
                const pct = p.bytesTotal ? Math.floor((100 * p.bytesDone) / p.bytesTotal) : 100;
                const rate = p.bytesDone / Math.max(0.001, (now - started) / 1000);
                process.stderr.write(
                  `\rhashing ${formatBytes(p.bytesDone)} / ${formatBytes(p.bytesTotal)} (${pct}%) ${formatBytes(rate)}/s   `,
                );
              }
            : undefined,
        });
        if (c.interactive) process.stderr.write('\n');
        await writeManifest(m, output, {
          checkpoint: opts.checkpoint,
          allowInsideCheckpoint: opts.allowInsideCheckpoint,
          format,
        });
        // The roots published here are the ones a source rank on this host may read.
        await recordSourceRoot(c.config.stateDir, opts.checkpoint);
        const seconds = (performance.now() - started) / 1000;
        let tensors = 0;
        for (let i = 0; i < m.size; i++) if (m.kindOf(i) === 'tensor') tensors++;
        const shards = m.files.filter((f) => f.kind === 'safetensors').length;
        const summary = {
          manifest: output,
          version: m.version,
          model_id: m.model_id,
          hash_algo: m.hash_algo,
          digest: m.digest,
          entries: m.size,
          tensors,
          safetensors_files: shards,
          other_files: m.files.length - shards,
          total_bytes: m.total_bytes,
          seconds: Math.round(seconds * 1000) / 1000,
          ...(followed.length ? { followed_symlinks: followed } : {}),
        };
        if (opts.json) c.json(summary);
        else {
          for (const f of followed) c.out(`followed symlink ${f.path} -> ${f.target} (--follow-symlinks)`);
          c.out(
            `published ${m.version}: ${tensors} tensors in ${shards} safetensors file(s), ${summary.other_files} other file(s), ` +
              `${formatBytes(m.total_bytes)} hashed with ${m.hash_algo} in ${seconds.toFixed(2)} s ` +
              `(${formatBytes(m.total_bytes / Math.max(seconds, 0.001))}/s) -> ${output}`,
          );
        }
      });
  },
};
