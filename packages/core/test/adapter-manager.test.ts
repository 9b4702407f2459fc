import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdapterManager,
  type AdapterOptions,
  type AdapterProvider,
  hasErrorCode,
  loadConfig,
} from '@hotweights/core';
import { afterAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'hw-adapter-discovery-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const options: AdapterOptions = { rank: 0, worldSize: 1, config: loadConfig({}) };

/** An installed adapter package whose provider makes a tiny adapter that keeps one version. */
function installAdapter(nodeModules: string, name: string, hotweights: unknown, providerName = 'kv'): void {
  const dir = join(nodeModules, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name, version: '0.3.0', type: 'module', keywords: ['hotweights-adapter'], hotweights }),
  );
  writeFileSync(
    join(dir, 'index.js'),
    `let live = null;
export default { name: ${JSON.stringify(providerName)}, description: 'test adapter',
  probe: async (o) => o.target ? { available: true } : { available: false, reason: 'needs --target' },
  create: async () => ({ name: ${JSON.stringify(providerName)}, currentVersion: async () => live,
    prepare: async () => {}, commit: async (v) => { live = v; }, abort: async () => {},
    rollback: async () => { throw new Error('none'); } }) };\n`,
  );
}

describe('AdapterManager', () => {
  it('discovers installed adapter packages and opens one by name when its probe allows', async () => {
    const app = join(root, 'app');
    installAdapter(join(app, 'node_modules'), 'hotweights-adapter-kv', {
      adapter: './index.js',
      coreApi: '^1.0.0',
    });
    installAdapter(join(app, 'node_modules'), 'hotweights-adapter-old', {
      adapter: './index.js',
      coreApi: '^0.1.0',
    });
    const m = new AdapterManager();
    await m.discover(app);
    const probed = await m.probeAll({ ...options, target: '/tmp/x' });
    expect(probed.map((p) => [p.name, p.origin, p.result.available])).toEqual([
      ['kv', 'hotweights-adapter-kv', true],
      ['old', 'hotweights-adapter-old', false],
    ]);
    expect(probed[1]?.result).toEqual({
      available: false,
      reason: 'needs core API ^0.1.0, this hotweights provides 1.1.0',
    });
    const adapter = await m.create('kv', { ...options, target: '/tmp/x' });
    await adapter.commit('v1');
    expect(await adapter.currentVersion()).toBe('v1');
    // The probe's reason is the error's: the adapter is installed but cannot work without a target.
    await expect(m.create('kv', options)).rejects.toThrow('adapter "kv" is unavailable: needs --target');
  });

  it('names what is installed when the adapter is not, and refuses a provider that makes no Adapter', async () => {
    const bogus: AdapterProvider = {
      name: 'bogus',
      probe: async () => ({ available: true }),
      create: async () => ({ name: 'bogus' }) as never,
    };
    const hanging: AdapterProvider = {
      name: 'slow',
      probe: () => new Promise(() => {}),
      create: async () => {
        throw new Error('unused');
      },
    };
    const m = new AdapterManager({ providers: [bogus, hanging], probeTimeoutMs: 100 });
    const missing = await m.create('vllm', options).catch((e: unknown) => e);
    expect(hasErrorCode(missing, 'HW_NO_ADAPTER')).toBe(true);
    expect((missing as Error).message).toBe(
      'adapter "vllm" is not installed (`hotweights adapters` lists what is) (bogus: available; slow: probe did not answer within 100 ms)',
    );
    const invalid = await m.create('bogus', options).catch((e: unknown) => e);
    expect(hasErrorCode(invalid, 'HW_ADAPTER_INVALID')).toBe(true);
    expect((invalid as Error).message).toMatch(/without currentVersion, prepare, commit, abort, rollback/);
    expect(() => m.register({ name: 'Bad Name' } as never)).toThrow(/AdapterProvider/);
  });
});
