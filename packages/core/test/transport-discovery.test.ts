import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { discoverTransportPackages, loadConfig, TransportManager } from '@hotweights/core';
import { afterAll, describe, expect, it } from 'vitest';

const root = mkdtempSync(join(tmpdir(), 'hw-discovery-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Writes an installed package: package.json plus an ESM entry exporting a provider. */
function installPackage(
  nodeModules: string,
  name: string,
  opts: { version?: string; keywords?: string[]; hotweights?: unknown; providerName?: string } = {},
): void {
  const dir = join(nodeModules, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({
      name,
      version: opts.version ?? '1.2.3',
      type: 'module',
      keywords: opts.keywords ?? ['hotweights-transport'],
      hotweights: opts.hotweights ?? { transport: './index.js', coreApi: '^1.0.0' },
    }),
  );
  writeFileSync(
    join(dir, 'index.js'),
    `export const provider = { name: ${JSON.stringify(opts.providerName ?? 'fake')}, priority: 3,
      probe: async () => ({ available: true, detail: ${JSON.stringify(`from ${name}@${opts.version ?? '1.2.3'}`)} }),
      create: async () => { throw new Error('unused'); } };\n`,
  );
}

describe('transport package discovery', () => {
  it('loads compatible packages, explains incompatible or broken ones, ignores others', async () => {
    const app = join(root, 'app1');
    const nm = join(app, 'node_modules');
    installPackage(nm, 'hotweights-transport-good', { providerName: 'good' });
    installPackage(nm, 'hotweights-transport-future', {
      hotweights: { transport: './index.js', coreApi: '^2.0.0' },
    });
    installPackage(nm, 'not-a-transport', { keywords: ['other'] });
    installPackage(nm, 'hotweights-transport-nometa', { hotweights: {} });
    // `../pkg-evil/index.js` shares the prefix "pkg" but leaves the package: it must be refused.
    installPackage(nm, 'pkg', { hotweights: { transport: '../pkg-evil/index.js', coreApi: '^1.0.0' } });
    installPackage(nm, 'pkg-evil', { keywords: [], providerName: 'evil' });

    const found = await discoverTransportPackages(app);
    const byOrigin = Object.fromEntries(found.map((c) => [c.origin, c]));
    expect(Object.keys(byOrigin).sort()).toEqual([
      'hotweights-transport-future',
      'hotweights-transport-good',
      'hotweights-transport-nometa',
      'pkg',
    ]);
    expect(byOrigin['hotweights-transport-good']).toMatchObject({
      name: 'good',
      version: '1.2.3',
      loadError: undefined,
    });
    expect(byOrigin['hotweights-transport-future']).toMatchObject({
      name: 'future',
      provider: undefined,
      loadError: 'needs core API ^2.0.0, this hotweights provides 1.1.0',
    });
    expect(byOrigin['hotweights-transport-nometa']?.loadError).toMatch(/lacks "hotweights"/);
    expect(byOrigin.pkg?.loadError).toBe('transport entry ../pkg-evil/index.js is outside the package');
  });

  it('gives up on a package that never finishes loading, with a reason', async () => {
    const app = join(root, 'app-hang');
    installPackage(join(app, 'node_modules'), 'hotweights-transport-hang');
    writeFileSync(
      join(app, 'node_modules', 'hotweights-transport-hang', 'index.js'),
      'await new Promise(() => {});\n',
    );
    const m = new TransportManager({ probeTimeoutMs: 200 });
    await m.discover(app);
    const probed = await m.probeAll({ rank: 0, worldSize: 1, launcher: 'none', config: loadConfig({}) });
    expect(probed.map((p) => [p.name, p.result])).toEqual([
      ['hang', { available: false, reason: './index.js did not finish loading within 200 ms' }],
    ]);
  });

  it('keeps the copy nearest to the application, also across several discover() calls', async () => {
    const outer = join(root, 'outer');
    const app = join(outer, 'app');
    installPackage(join(app, 'node_modules'), 'hotweights-transport-dup', {
      version: '2.0.0',
      providerName: 'dup',
    });
    installPackage(join(outer, 'node_modules'), 'hotweights-transport-dup', {
      version: '1.0.0',
      providerName: 'dup',
    });
    const elsewhere = join(root, 'cli-home');
    installPackage(join(elsewhere, 'node_modules'), 'hotweights-transport-dup', {
      version: '0.9.0',
      providerName: 'dup',
    });

    const m = new TransportManager();
    await m.discover(app);
    await m.discover(elsewhere);
    const probed = await m.probeAll({ rank: 0, worldSize: 1, launcher: 'none', config: loadConfig({}) });
    expect(probed.map((p) => [p.name, p.version])).toEqual([['dup', '2.0.0']]);
    expect(probed[0]?.result).toEqual({ available: true, detail: 'from hotweights-transport-dup@2.0.0' });

    // The same from one call with both directories (how the CLI discovers), in either order.
    for (const [dirs, version] of [
      [[app, elsewhere], '2.0.0'],
      [[elsewhere, app], '0.9.0'],
    ] as const) {
      const one = new TransportManager();
      await one.discover(...dirs);
      const got = await one.probeAll({ rank: 0, worldSize: 1, launcher: 'none', config: loadConfig({}) });
      expect(got.map((p) => [p.name, p.version])).toEqual([['dup', version]]);
    }
  });

  it('reads a node_modules folder that several directories share once, and lists each package once', async () => {
    const app = join(root, 'shared');
    installPackage(join(app, 'node_modules'), 'hotweights-transport-one', { providerName: 'one' });
    installPackage(join(app, 'tool', 'node_modules'), 'hotweights-transport-two', { providerName: 'two' });
    const found = await discoverTransportPackages([join(app, 'tool', 'bin'), app, join(app, 'tool')]);
    expect(found.map((c) => [c.origin, c.name])).toEqual([
      ['hotweights-transport-two', 'two'],
      ['hotweights-transport-one', 'one'],
    ]);
  });
});
