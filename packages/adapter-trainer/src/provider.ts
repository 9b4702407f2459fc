/**
 * The `trainer` AdapterProvider: `hotweights worker --adapter trainer --adapter-option
 * dir=/dev/shm/hotweights-trainer.JOB`. Settings (`--adapter-option KEY=VALUE`): `dir` (the
 * exchange directory, required), `commit-timeout-s`, `opt-policy` (preserve|reset|attenuate) and
 * `opt-attenuation` (0..1); the last two default to HOTWEIGHTS_OPT_POLICY / HOTWEIGHTS_OPT_ATTENUATION.
 */
import { type AdapterOptions, type AdapterProvider, ConfigError } from '@hotweights/core';
import type { OptPolicy } from './opt-policy.js';
import { TrainerAdapter, type TrainerAdapterOptions } from './trainer-adapter.js';

function number(
  s: Readonly<Record<string, string>>,
  key: string,
  test: (n: number) => boolean,
  what: string,
) {
  const raw = s[key];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || !test(n)) {
    throw new ConfigError(`trainer adapter option ${key}=${raw}: expected ${what}`);
  }
  return n;
}

/** The adapter options an `--adapter-option` list describes; throws ConfigError naming the bad key. */
export function trainerAdapterOptions(options: AdapterOptions): TrainerAdapterOptions {
  const s = options.settings ?? {};
  const dir = s.dir;
  if (!dir) {
    throw new ConfigError(
      'the trainer adapter needs the exchange directory its training process uses: add --adapter-option ' +
        'dir=/dev/shm/hotweights-trainer.JOB (the path passed to TrainerSwap(...))',
    );
  }
  const policy = (s['opt-policy'] ?? options.config.optPolicy) as OptPolicy;
  if (!['preserve', 'reset', 'attenuate'].includes(policy)) {
    throw new ConfigError(
      `trainer adapter option opt-policy=${policy}: expected preserve, reset or attenuate`,
    );
  }
  const timeout = number(s, 'commit-timeout-s', (n) => n > 0, 'a number of seconds > 0');
  return {
    dir,
    rank: options.rank,
    policy,
    attenuation:
      number(s, 'opt-attenuation', (n) => n >= 0 && n <= 1, 'a number in 0..1') ??
      options.config.optAttenuation,
    ...(timeout === undefined ? {} : { commitTimeoutS: timeout }),
  };
}

export const trainerAdapterProvider: AdapterProvider = {
  name: 'trainer',
  description: 'a live PyTorch training job (in-place swap at a step boundary, optimizer-state policy)',
  async probe(options: AdapterOptions) {
    try {
      const adapter = new TrainerAdapter(trainerAdapterOptions(options));
      // Probing creates nothing: the worker's prepare or TrainerSwap makes the directory.
      const pid = await adapter.trainer();
      return {
        available: true,
        detail: pid ? `training process ${pid} attached` : 'no training process attached yet',
      };
    } catch (err) {
      return { available: false, reason: (err as Error).message };
    }
  },
  async create(options: AdapterOptions) {
    return new TrainerAdapter(trainerAdapterOptions(options));
  },
};
