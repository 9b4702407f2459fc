/**
 * The `vllm` AdapterProvider: `hotweights worker --adapter vllm --adapter-option
 * url=http://127.0.0.1:8000`. Settings (all `--adapter-option KEY=VALUE`):
 * `url` (comma-separated for several servers), `pause-mode` (wait|abort|keep),
 * `prepare-timeout-s`, `commit-timeout-s`, `request-timeout-s`, `verify-hashes` (true|false),
 * `allow-dtype-cast` (true|false), `drafter-prefix` (default `drafter.`), `live-copy` (true|false:
 * keep a host copy of the live tensors so plans with patch items land; live-copy.ts).
 */
import { type AdapterOptions, type AdapterProvider, ConfigError } from '@hotweights/core';
import { VllmAdapter, type VllmAdapterOptions } from './vllm-adapter.js';
import type { PauseMode } from './vllm-server.js';

const PAUSE_MODES: readonly PauseMode[] = ['wait', 'abort', 'keep'];

function seconds(settings: Readonly<Record<string, string>>, key: string): number | undefined {
  const raw = settings[key];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new ConfigError(`vllm adapter option ${key}=${raw}: expected a number of seconds > 0`);
  }
  return n;
}

function flag(settings: Readonly<Record<string, string>>, key: string): boolean | undefined {
  const raw = settings[key];
  if (raw === undefined) return undefined;
  if (raw !== 'true' && raw !== 'false') {
    throw new ConfigError(`vllm adapter option ${key}=${raw}: expected true or false`);
  }
  return raw === 'true';
}

/** The adapter options an `--adapter-option` list describes; throws ConfigError naming the bad key. */
export function vllmAdapterOptions(options: AdapterOptions): VllmAdapterOptions {
  const s = options.settings ?? {};
  const urls = (s.url ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  if (urls.length === 0) {
    throw new ConfigError('the vllm adapter needs a server: add --adapter-option url=http://127.0.0.1:8000');
  }
  const mode = s['pause-mode'];
  if (mode !== undefined && !PAUSE_MODES.includes(mode as PauseMode)) {
    throw new ConfigError(
      `vllm adapter option pause-mode=${mode}: expected one of ${PAUSE_MODES.join(', ')}`,
    );
  }
  const out: Record<string, unknown> = {
    urls,
    rank: options.rank,
    pauseMode: mode,
    prepareTimeoutS: seconds(s, 'prepare-timeout-s'),
    commitTimeoutS: seconds(s, 'commit-timeout-s'),
    requestTimeoutS: seconds(s, 'request-timeout-s'),
    verifyHashes: flag(s, 'verify-hashes'),
    allowDtypeCast: flag(s, 'allow-dtype-cast'),
    drafterPrefix: s['drafter-prefix'],
    liveCopy: flag(s, 'live-copy'),
  };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out as unknown as VllmAdapterOptions;
}

export const vllmAdapterProvider: AdapterProvider = {
  name: 'vllm',
  description: 'running vLLM servers (dev-mode endpoints + the hotweights_vllm worker extension)',
  async probe(options: AdapterOptions) {
    try {
      const adapter = new VllmAdapter({ ...vllmAdapterOptions(options), requestTimeoutS: 5 });
      const workers = (await adapter.info()).flat();
      return { available: true, detail: `${adapter.servers.length} server(s), ${workers.length} worker(s)` };
    } catch (err) {
      return { available: false, reason: (err as Error).message };
    }
  },
  async create(options: AdapterOptions) {
    return new VllmAdapter(vllmAdapterOptions(options));
  },
};
