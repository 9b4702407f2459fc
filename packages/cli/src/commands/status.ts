/**
 * `hotweights status`: what this host holds. Staged segments in the staging dir (and whether
 * their owner is alive), the committed manifest recorded per model in the state dir, and with
 * --target, the live and previous version of each target directory. With a coordinator endpoint
 * (--endpoint, else HOTWEIGHTS_COORD) the coordinator's view follows the local one (under
 * `coordinator` with --json); an unreachable coordinator is an error after the local part.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readCommittedRecord } from '@hotweights/manifest';
import { formatBytes } from '@hotweights/planner';
import { reclaimStaleSegments, SEGMENT_PREFIX } from '@hotweights/runtime';
import { type AdapterFlags, addAdapterOptions, openAdapter } from '../adapter-options.js';
import type { CommandModule } from '../command.js';
import { endpointOption, withClient } from './coord-client.js';
import { formatCoordinatorStatus } from './coord-status.js';
import { targetDirs } from './rollback.js';

interface SegmentInfo {
  readonly name: string;
  readonly pid: number;
  readonly alive: boolean;
  readonly bytes: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function segments(dir: string): Promise<SegmentInfo[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: SegmentInfo[] = [];
  for (const name of names) {
    if (!name.startsWith(SEGMENT_PREFIX)) continue;
    const pid = Number(/^hotweights\.p(\d+)\./.exec(name)?.[1]);
    if (!Number.isFinite(pid)) continue;
    const s = await stat(join(dir, name)).catch(() => null);
    if (!s) continue;
    out.push({ name, pid, alive: alive(pid), bytes: s.isFile() ? s.size : 0 });
  }
  return out;
}

async function committed(stateDir: string): Promise<{ model: string; version: string; path: string }[]> {
  const root = join(stateDir, 'manifests');
  const out: { model: string; version: string; path: string }[] = [];
  for (const model of await readdir(root).catch(() => [] as string[])) {
    try {
      // committed.manifest (binary), or committed.json written by an older hotweights.
      const record = await readCommittedRecord(join(root, model));
      if (!record) continue;
      out.push({
        model: model === '_default' ? '(no model id)' : decodeURIComponent(model),
        version: record.manifest.version,
        path: record.path,
      });
    } catch {
      // A model dir without a readable record is not committed.
    }
  }
  return out;
}

export const statusCommand: CommandModule = {
  name: 'status',
  register(program, ctx) {
    endpointOption(
      addAdapterOptions(program.command('status'))
        .description(
          "Show staged segments, committed versions and (with --target) live/previous versions on this host, then the coordinator's view when an endpoint is set",
        )
        .option('--target <dir>', 'also show the versions of a target directory')
        .option('--reclaim', 'remove segments left by crashed runs')
        .option('--json', 'print a JSON report'),
    ).action(
      async (
        opts: AdapterFlags & {
          target?: string;
          reclaim?: boolean;
          json?: boolean;
          endpoint?: string;
          timeout?: string;
        },
      ) => {
        const c = ctx();
        const endpoint = opts.endpoint ?? c.config.coordEndpoint;
        const reclaimed = opts.reclaim ? await reclaimStaleSegments(c.config.stagingDir) : 0;
        const segs = await segments(c.config.stagingDir);
        const records = await committed(c.config.stateDir);
        const targets = [];
        const dirs = opts.target ? targetDirs(opts.target) : [];
        for (const [rank, dir] of dirs.entries()) {
          const a = await openAdapter(c, opts, { rank, worldSize: dirs.length, target: dir });
          targets.push({
            target: dir,
            current: await a.currentVersion(),
            previous: (await a.previousVersion?.()) ?? null,
          });
        }
        const report = {
          staging_dir: c.config.stagingDir,
          segments: segs.length,
          staged_bytes: segs.reduce((n, s) => n + s.bytes, 0),
          stale_segments: segs.filter((s) => !s.alive).map((s) => s.name),
          reclaimed,
          state_dir: c.config.stateDir,
          committed: records,
          targets,
        };
        if (opts.json) {
          const coordinator = endpoint
            ? await withClient(c, { endpoint, timeout: opts.timeout }, (client) => client.status())
            : null;
          c.json({ ...report, coordinator: coordinator && { endpoint, ...coordinator } });
          return;
        }
        const live = segs.filter((s) => s.alive);
        c.out(
          `staging ${report.staging_dir}: ${live.length} segment(s) of running processes (${formatBytes(report.staged_bytes)} in all)${reclaimed ? `; reclaimed ${reclaimed} stale` : ''}`,
        );
        if (report.stale_segments.length > 0) {
          c.out(
            `  ${report.stale_segments.length} stale segment(s) from crashed runs (removed by the next replicate, or now with --reclaim)`,
          );
        }
        if (records.length === 0)
          c.out(
            `committed: no version recorded in ${report.state_dir} (\`replicate --commit --target\` records one for \`plan\` without --prev; fleet workers' versions are in their targets and the coordinator)`,
          );
        for (const r of records) c.out(`committed: ${r.model} at ${r.version} (${r.path})`);
        for (const t of targets)
          c.out(`target ${t.target}: live ${t.current ?? 'none'}, previous ${t.previous ?? 'none'}`);
        if (opts.target && targets.length === 0) c.out(`target ${opts.target}: no hotweights target here`);
        if (!endpoint) return;
        const lines = await withClient(c, { endpoint, timeout: opts.timeout }, async (client) =>
          formatCoordinatorStatus(await client.status(), client.endpoint),
        );
        for (const l of lines) c.out(l);
      },
    );
  },
};
