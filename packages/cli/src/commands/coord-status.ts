/**
 * The coordinator's view: current version, the update in progress, workers and their leases.
 * `coord-status` prints it; `hotweights status` shows it after the local state when an endpoint is
 * given (--endpoint or HOTWEIGHTS_COORD), using `formatCoordinatorStatus`.
 */
import type { CoordinatorStatus } from '@hotweights/coordinator';
import type { CommandModule } from '../command.js';
import type { CliContext } from '../context.js';
import { describeUpdate } from './begin.js';
import { endpointOption, withClient } from './coord-client.js';

export function formatCoordinatorStatus(s: CoordinatorStatus, endpoint: string): string[] {
  const lines = [
    `coordinator ${endpoint} (backend ${s.backend}, auth ${s.auth ? 'token' : 'off'}, lease ${s.lease_s} s)`,
    `current version: ${s.current_version ?? '(none)'}`,
    s.active ? `in progress: ${describeUpdate(s.active)}` : 'in progress: (none)',
  ];
  const last = s.updates.find((u) => u.state === 'committed' || u.state === 'aborted');
  if (last) lines.push(`last finished: ${describeUpdate(last)}`);
  lines.push(`fleet: ${s.fleet.summary}`);
  lines.push(`workers: ${s.workers.length}`);
  const byRank = new Map(s.workers.map((w) => [w.rank, w]));
  for (const r of s.fleet.ranks) {
    const w = byRank.get(r.rank);
    if (!w) {
      lines.push(`  rank ${r.rank}/${s.fleet.world_size}  (no worker)`);
      continue;
    }
    const left = Math.max(0, (w.lease_expires_at - s.now) / 1000).toFixed(1);
    const mark = r.behind ? '  BEHIND' : '';
    const error = r.sync_error ? `  error: ${r.sync_error}` : '';
    lines.push(
      `  rank ${w.rank}/${w.world_size}  ${w.node_id}  live ${w.live_version ?? '-'}${mark}  lease ${left} s  ${w.worker_id} (${w.host} pid ${w.pid ?? '?'})${error}`,
    );
  }
  if (s.handles_active > 0) lines.push(`transfer handles: ${s.handles_active}`);
  return lines;
}

export async function showCoordinatorStatus(
  c: CliContext,
  opts: { endpoint?: string; timeout?: string; json?: boolean },
): Promise<void> {
  await withClient(c, opts, async (client) => {
    const s = await client.status();
    if (opts.json) c.json(s);
    else for (const line of formatCoordinatorStatus(s, client.endpoint)) c.out(line);
  });
}

export const coordStatusCommand: CommandModule = {
  name: 'coord-status',
  register(program, ctx) {
    endpointOption(
      program
        .command('coord-status')
        .description(
          "Show the coordinator's state: current version, update in progress, the fleet's state and each rank's live version",
        )
        .option('--json', 'print the full status as JSON'),
    ).action((opts: { endpoint?: string; timeout?: string; json?: boolean }) =>
      showCoordinatorStatus(ctx(), opts),
    );
  },
};
