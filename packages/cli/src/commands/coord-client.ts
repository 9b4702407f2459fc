/**
 * What every control-plane command shares: the endpoint (`--endpoint`, else HOTWEIGHTS_COORD),
 * a client that forwards HOTWEIGHTS_COORD_TOKEN, and closing it whatever happens.
 */
import { CoordinatorClient } from '@hotweights/coordinator';
import { ConfigError } from '@hotweights/core';
import { validateManifest } from '@hotweights/manifest';
import type { Command } from 'commander';
import type { CliContext } from '../context.js';
import type { CoordinatorManifestSource } from './plan.js';

export function endpointOption(cmd: Command): Command {
  return cmd
    .option('--endpoint <url>', 'coordinator endpoint, e.g. tcp://127.0.0.1:5555 (default: HOTWEIGHTS_COORD)')
    .option('--timeout <s>', 'seconds to wait for the coordinator', '10');
}

export function resolveEndpoint(c: CliContext, given: string | undefined): string {
  const endpoint = given ?? c.config.coordEndpoint;
  if (!endpoint) {
    throw new ConfigError('no coordinator endpoint: pass --endpoint tcp://HOST:PORT or set HOTWEIGHTS_COORD');
  }
  return endpoint;
}

export function parseSeconds(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0)
    throw new ConfigError(`${flag} ${JSON.stringify(text)}: expected a number of seconds > 0`);
  return n;
}

/** Runs `fn` with a connected client and closes it afterwards. */
export async function withClient<T>(
  c: CliContext,
  opts: { endpoint?: string; timeout?: string },
  fn: (client: CoordinatorClient) => Promise<T>,
): Promise<T> {
  const client = new CoordinatorClient(resolveEndpoint(c, opts.endpoint), {
    token: c.config.coordToken,
    timeoutMs: parseSeconds(opts.timeout ?? '10', '--timeout') * 1000,
  });
  try {
    return await fn(client);
  } finally {
    client.close();
  }
}

/**
 * `plan --coord-endpoint E`: the previous manifest is the coordinator's current one (the manifest
 * of the last committed update, or one set with set_current_manifest).
 */
export const coordinatorManifestSource: CoordinatorManifestSource = async (endpoint, modelId, c) => {
  const { manifest } = await withClient(c, { endpoint }, (client) => client.getCurrentManifest());
  if (!manifest) return null;
  const current = validateManifest(manifest, `current manifest of coordinator ${endpoint}`);
  if (modelId !== null && current.model_id !== null && current.model_id !== modelId) {
    throw new ConfigError(
      `coordinator ${endpoint} serves model ${current.model_id}, not ${modelId}: pass --prev for this model`,
    );
  }
  return current;
};
