/**
 * Per-command overrides of the transfer knobs that the seed documents offer as flags
 * (`--window`, `--mpi-chunk-mb`, and `--mpi` / `--ucx` for choosing the broadcast). Flags win over
 * HOTWEIGHTS_INFLIGHT_BUCKETS / HOTWEIGHTS_MPI_CHUNK_MB; the result is a context whose config
 * carries them, so the Replicator and transports read them as usual.
 */
import { ConfigError } from '@hotweights/core';
import type { Command } from 'commander';
import type { CliContext } from './context.js';

export interface TransferFlags {
  window?: string;
  mpiChunkMb?: string;
  transport?: string;
  mpi?: boolean;
  ucx?: boolean;
}

export function addTransferOptions(cmd: Command): Command {
  return cmd
    .option('--window <n>', 'buckets in flight at once (overrides HOTWEIGHTS_INFLIGHT_BUCKETS)')
    .option(
      '--mpi-chunk-mb <mb>',
      'chunk size of MPI broadcasts, 0 = one broadcast per bucket (overrides HOTWEIGHTS_MPI_CHUNK_MB)',
    )
    .option('--mpi', 'broadcast over MPI: the same as --transport mpi')
    .option('--ucx', 'broadcast over UCX: the same as --transport ucx');
}

/** The transport the flags force (`--transport`, or the seed documents' `--mpi` / `--ucx`). */
export function forcedTransport(flags: TransferFlags): string | undefined {
  const named = [flags.mpi ? 'mpi' : undefined, flags.ucx ? 'ucx' : undefined].filter(
    (n): n is string => n !== undefined,
  );
  if (named.length > 1) throw new ConfigError('--mpi and --ucx name two transports: give one of them');
  const [short] = named;
  if (short && flags.transport !== undefined && flags.transport !== short)
    throw new ConfigError(
      `--${short} and --transport ${flags.transport} name two transports: give one of them`,
    );
  return flags.transport ?? short;
}

/** The flags as arguments again, for rank processes a command starts itself. */
export function transferArgs(flags: TransferFlags): string[] {
  return [
    ...(flags.window !== undefined ? ['--window', flags.window] : []),
    ...(flags.mpiChunkMb !== undefined ? ['--mpi-chunk-mb', flags.mpiChunkMb] : []),
  ];
}

export function withTransferOptions(c: CliContext, flags: TransferFlags): CliContext {
  let config = c.config;
  if (flags.window !== undefined) {
    const n = Number(flags.window);
    if (!Number.isInteger(n) || n < 1 || n > 1024) {
      throw new ConfigError(`--window ${JSON.stringify(flags.window)}: expected an integer in 1..1024`);
    }
    config = { ...config, inflightBuckets: n };
  }
  if (flags.mpiChunkMb !== undefined) {
    const mb = Number(flags.mpiChunkMb);
    if (!Number.isFinite(mb) || mb < 0) {
      throw new ConfigError(`--mpi-chunk-mb ${JSON.stringify(flags.mpiChunkMb)}: expected a number >= 0`);
    }
    config = { ...config, mpiChunkMb: mb };
  }
  return config === c.config ? c : { ...c, config };
}
