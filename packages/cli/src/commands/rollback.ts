/** `hotweights rollback --target DIR`: makes the previous version live again, instantly. */
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import { AdapterError } from '@hotweights/core';
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
    program
      .command('rollback')
      .description('Make the previous version live again in a target directory (every rank-<r> in it)')
      .requiredOption('--target <dir>', 'the directory given to `hotweights replicate --target`')
      .option('--json', 'print the result as JSON')
      .action(async (opts: { target: string; json?: boolean }) => {
        const c = ctx();
        const dirs = targetDirs(opts.target);
        if (dirs.length === 0) {
          throw new AdapterError(
            `${opts.target}: no hotweights target here (no current link, no rank-<r> dirs)`,
          );
        }
        // Check every rank has something to roll back to before flipping any of them.
        const adapters = dirs.map(
          (d, i) => new DirectoryAdapter({ target: d, ...(i === 0 ? { stateDir: c.config.stateDir } : {}) }),
        );
        for (const a of adapters) {
          if ((await a.previousVersion()) === null) {
            throw new AdapterError(`${a.layout.root}: nothing to roll back to: no previous version is kept`);
          }
        }
        const results: { target: string; from: string | null; to: string; pause_ms: number }[] = [];
        for (const a of adapters) {
          const from = await a.currentVersion();
          const to = await a.rollback();
          results.push({ target: a.layout.root, from, to, pause_ms: a.lastSwitchSeconds * 1000 });
        }
        if (opts.json) c.json({ rolled_back: results });
        else
          for (const r of results)
            c.out(`${r.target}: rolled back from ${r.from} to ${r.to} (pause ${r.pause_ms.toFixed(1)} ms)`);
      });
  },
};
