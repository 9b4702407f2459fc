/**
 * `hotweights rollback --target DIR`: makes the previous version live again, instantly, through
 * the adapter that holds it (`--adapter`, by default the directory adapter).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AdapterError } from '@hotweights/core';
import { type AdapterFlags, addAdapterOptions, openAdapter } from '../adapter-options.js';
import type { CommandModule } from '../command.js';

/** The target dirs under DIR: DIR itself, or DIR/rank-<r> for a multi-rank job. */
export function targetDirs(target: string): string[] {
  const root = resolve(target);
  if (existsSync(join(root, 'current')) || existsSync(join(root, 'versions'))) return [root];
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .filter((n) => /^rank-\d+$/.test(n))
    .sort((a, b) => Number(a.slice(5)) - Number(b.slice(5)))
    .map((n) => join(root, n));
}

export const rollbackCommand: CommandModule = {
  name: 'rollback',
  register(program, ctx) {
    addAdapterOptions(program.command('rollback'))
      .description('Make the previous version live again in a target directory (every rank-<r> in it)')
      .requiredOption('--target <dir>', 'the directory given to `hotweights replicate --target`')
      .option('--json', 'print the result as JSON')
      .action(async (opts: AdapterFlags & { target: string; json?: boolean }) => {
        const c = ctx();
        const dirs = targetDirs(opts.target);
        if (dirs.length === 0) {
          throw new AdapterError(
            `${opts.target}: no hotweights target here (no current link, no rank-<r> dirs)`,
          );
        }
        // Check every rank has something to roll back to before flipping any of them.
        const adapters = [];
        for (const [i, target] of dirs.entries()) {
          const options = { rank: i, worldSize: dirs.length, target, recordCommitted: i === 0 };
          adapters.push({ target, adapter: await openAdapter(c, opts, options) });
        }
        for (const { target, adapter } of adapters) {
          if (adapter.previousVersion && (await adapter.previousVersion()) === null) {
            throw new AdapterError(`${target}: nothing to roll back to: no previous version is kept`);
          }
        }
        const results: { target: string; from: string | null; to: string; pause_ms: number }[] = [];
        for (const { target, adapter } of adapters) {
          const from = await adapter.currentVersion();
          const t0 = performance.now();
          const to = await adapter.rollback();
          results.push({ target, from, to, pause_ms: performance.now() - t0 });
        }
        if (opts.json) c.json({ rolled_back: results });
        else
          for (const r of results)
            c.out(`${r.target}: rolled back from ${r.from} to ${r.to} (pause ${r.pause_ms.toFixed(1)} ms)`);
      });
  },
};
