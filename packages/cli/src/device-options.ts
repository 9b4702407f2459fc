/**
 * `--device cpu|cuda` and `--pinned` for the commands that stage updates (replicate, worker), as
 * the seed documents show them. `cpu` stages in host shared memory (HostStaging). `cuda` stages in
 * GPU memory through an installed transport package that owns CUDA memory (its provider names
 * `device: 'cuda'`, e.g. @hotweights/transport-cuda-ipc) and makes that transport the default.
 * `--pinned` page-locks the host copies device staging keeps (faster copies to and from the GPU).
 */
import { ConfigError, type StagingAgent, StagingError, type TransportProvider } from '@hotweights/core';
import { HostStaging } from '@hotweights/runtime';
import { type Command, Option } from 'commander';
import type { CliContext } from './context.js';

export interface DeviceFlags {
  device?: string;
  pinned?: boolean;
}

export function addDeviceOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--device <kind>',
        'where updates are staged: cpu (host shared memory) or cuda (GPU memory, through a CUDA transport package)',
      ).choices(['cpu', 'cuda']),
    )
    .option(
      '--pinned',
      'page-lock the host buffers staging copies through (faster device copies; needs --device cuda)',
    );
}

/** The flags as arguments again, for rank processes a command starts itself. */
export function deviceArgs(flags: DeviceFlags): string[] {
  return [...(flags.device ? ['--device', flags.device] : []), ...(flags.pinned ? ['--pinned'] : [])];
}

/** Staging for this rank, and the device transport to prefer (only with --device cuda). */
export interface OpenedStaging {
  readonly staging: StagingAgent & { close(): Promise<void> };
  readonly provider?: TransportProvider;
}

/** The available provider owning `device` memory, or a one-line error saying why there is none. */
async function deviceProvider(c: CliContext, device: string, rank: number, worldSize: number) {
  const manager = await c.transports();
  const probed = await manager.probeAll({ rank, worldSize, launcher: c.launch.launcher, config: c.config });
  const owners = probed.filter((p) => p.provider?.device === device);
  const usable = owners
    .filter((p) => p.result.available)
    .sort((a, b) => b.priority - a.priority)[0]?.provider;
  if (usable) return usable;
  const why = owners.length
    ? owners.map((p) => `${p.name}: ${p.result.available ? 'available' : p.result.reason}`).join('; ')
    : 'no transport package for it is installed (npm install @hotweights/transport-cuda-ipc)';
  throw new StagingError(
    `--device ${device}: cannot stage in ${device} memory here (${why}); use --device cpu on machines without a GPU`,
  );
}

export async function openStaging(
  c: CliContext,
  flags: DeviceFlags,
  where: { readonly rank: number; readonly worldSize: number },
): Promise<OpenedStaging> {
  const device = flags.device ?? 'cpu';
  if (device === 'cpu') {
    if (flags.pinned)
      c.err(
        'hotweights: warning: --pinned needs --device cuda (a CUDA driver page-locks memory); host staging stays pageable',
      );
    return { staging: await HostStaging.open({ dir: c.config.stagingDir, rank: where.rank }) };
  }
  if (device !== 'cuda') throw new ConfigError(`--device ${device}: expected cpu or cuda`);
  const provider = await deviceProvider(c, device, where.rank, where.worldSize);
  const opened = await provider.createStaging?.({
    rank: where.rank,
    localRank: c.launch.launcher === 'none' ? where.rank : c.launch.localRank,
    config: c.config,
    pinned: flags.pinned === true,
  });
  if (!opened)
    throw new StagingError(`--device ${device}: ${provider.name} names the device but opens no staging`);
  const staging = opened as StagingAgent & { close?: () => Promise<void> };
  return {
    staging: Object.assign(staging, { close: staging.close?.bind(staging) ?? (async () => {}) }),
    provider,
  };
}
