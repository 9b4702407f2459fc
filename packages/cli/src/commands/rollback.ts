/**
 * `hotweights rollback`: makes the previous version live again.
 *
 * - `--endpoint E` (or HOTWEIGHTS_COORD): a fleet rollback. The coordinator runs it through the
 *   same two phases as an update (every rank votes once it can make the previous version live),
 *   and its current version and manifest move back too.
 * - `--target DIR`: one host's target (every rank-<r> in it), instantly, through the adapter that
 *   holds it (`--adapter`, by default the directory adapter). A target that a fleet worker serves
 *   is refused: rolling one host back would split the fleet (its worker would report
 *   the divergence and converge back); `--force` does it anyway.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AdapterError, ConfigError } from '@hotweights/core';
import { type AdapterFlags, addAdapterOptions, openAdapter } from '../adapter-options.js';
import type { CommandModule } from '../command.js';
import { describeUpdate, followUpdate } from './begin.js';
import { parseSeconds, withClient } from './coord-client.js';

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

/** Written by `hotweights worker` into its target: this directory is one rank of a fleet. */
export const FLEET_MARKER = join('.hotweights', 'fleet.json');

export interface FleetMarker {
  readonly endpoint: string;
  readonly rank: number;
  readonly world_size: number;
  /** The worker's id and lease key: a restarted worker proves with them it may take over its rank. */
  readonly worker_id?: string;
  readonly lease_key?: string;
}

export function readFleetMarker(dir: string): FleetMarker | null {
  try {
    return JSON.parse(readFileSync(join(dir, FLEET_MARKER), 'utf8')) as FleetMarker;
  } catch {
    return null;
  }
}

interface RollbackOpts extends AdapterFlags {
  target?: string;
  endpoint?: string;
  timeout?: string;
  to?: string;
  force?: boolean;
  wait?: boolean;
  waitTimeout: string;
  json?: boolean;
}

export const rollbackCommand: CommandModule = {
  name: 'rollback',
  register(program, ctx) {
    addAdapterOptions(program.command('rollback'))
      .description(
        'Make the previous version live again: the whole fleet (--endpoint, two-phase) or one target directory (--target)',
      )
      .option(
        '--endpoint <url>',
        'roll the fleet of this coordinator back (default with no --target: HOTWEIGHTS_COORD)',
      )
      .option('--target <dir>', 'the directory given to `hotweights replicate --target` (this host only)')
      .option(
        '--to <version>',
        'fleet rollback: the version to go back to (default: the one before the current)',
      )
      .option('--force', 'roll back a target that a fleet worker serves (it will report the divergence)')
      .option('--wait', 'fleet rollback: wait until every rank is live on the version (exit 1 otherwise)')
      .option('--wait-timeout <s>', 'longest wait with --wait', '600')
      .option('--timeout <s>', 'seconds to wait for the coordinator', '10')
      .option('--json', 'print the result as JSON')
      .action(async (opts: RollbackOpts) => {
        const c = ctx();
        if (opts.target === undefined) {
          if (opts.endpoint === undefined && !c.config.coordEndpoint) {
            throw new ConfigError(
              'rollback: pass --endpoint tcp://HOST:PORT (the fleet) or --target DIR (this host)',
            );
          }
          const final = await withClient(c, opts, async (client) => {
            const u = await client.rollback(opts.to === undefined ? {} : { to: opts.to });
            if (!opts.json) c.out(describeUpdate(u));
            return opts.wait ? followUpdate(c, client, u, opts) : u;
          });
          if (opts.json) c.json(final);
          return;
        }
        if (opts.endpoint !== undefined) {
          throw new ConfigError(
            'rollback: --endpoint and --target exclude each other: pick the fleet or this host',
          );
        }
        parseSeconds(opts.waitTimeout, '--wait-timeout');
        const dirs = targetDirs(opts.target);
        if (dirs.length === 0) {
          throw new AdapterError(
            `${opts.target}: no hotweights target here (no current link, no rank-<r> dirs)`,
          );
        }
        for (const d of dirs) {
          const fleet = readFleetMarker(d);
          if (fleet && !opts.force) {
            throw new AdapterError(
              `${d} is rank ${fleet.rank} of the fleet at ${fleet.endpoint}: rolling back one host would split the fleet; run \`hotweights rollback --endpoint ${fleet.endpoint}\` to roll every rank back (or --force: its worker then reports the divergence and converges back to the fleet's version)`,
            );
          }
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
        // A rollback swaps live and previous: a second one goes forward again, so say "switched".
        else
          for (const r of results)
            c.out(
              `${r.target}: switched from ${r.from} to the previous version ${r.to} (pause ${r.pause_ms.toFixed(1)} ms); rollback again switches back to ${r.from}`,
            );
      });
  },
};
