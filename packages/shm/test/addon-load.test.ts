import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addonPlaces, loadAddon, NativeAddonError } from '@hotweights/native-loader';
import { addonPath, type ShmBinding, shmAvailable, shmUnavailableReason } from '@hotweights/shm';
import { describe, expect, it } from 'vitest';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

describe('the shm addon through the one loader', () => {
  it('loads the local build or prebuild from one of the places the loader searches', () => {
    expect(shmAvailable()).toBe(true);
    expect(shmUnavailableReason()).toBeUndefined();
    expect(addonPlaces(root).some((place) => addonPath().startsWith(place))).toBe(true);
  });

  it('reports a build that lacks a function the package calls as out of date, with the fix', () => {
    // The real addon, asked for one export it does not have: what a stale local build looks like.
    type Newer = ShmBinding & { mapHuge(): void };
    let err: unknown;
    try {
      loadAddon<Newer>({ packageName: '@hotweights/shm', root, requires: ['map', 'mapHuge'] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NativeAddonError);
    const e = err as NativeAddonError;
    expect(e.code).toBe('HW_NATIVE_ADDON_INCOMPLETE');
    expect(e.file).toBe(addonPath());
    expect(e.message).toContain('it lacks mapHuge: it was built from older sources than this package');
    expect(e.message).toMatch(
      addonPath().startsWith(join(root, 'build'))
        ? `fix: remove ${join(root, 'build')} (a local build), then build it`
        : 'fix: reinstall @hotweights/shm so its prebuild matches its JavaScript',
    );
    expect(e.message).toContain('`npm rebuild @hotweights/shm`');
  });
});
