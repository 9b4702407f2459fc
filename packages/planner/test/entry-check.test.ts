/**
 * The addon's check of a manifest's entry columns (nativeEntryCheck, handed to the manifest
 * package by `hotweights plan`): yes for valid columns, no for each way they can be wrong, and
 * for no the manifest package's own pass refuses the file with the same error as without it.
 */
import type { ManifestEntry } from '@hotweights/core';
import {
  buildManifest,
  parseManifestBinary,
  serializeManifestBinary,
  useEntryCheck,
} from '@hotweights/manifest';
import { nativeEntryCheck, nativeItemTextAvailable } from '@hotweights/planner';
import { afterEach, describe, expect, it } from 'vitest';
import { binaryHeader, withColumn, withHeader } from '../../manifest/test/binary-damage.js';
import { fileEntry, hash, safetensorsEntries } from './column-plans.js';

afterEach(() => useEntryCheck(undefined));

function sample(): Buffer {
  const a = safetensorsEntries(
    'a.safetensors',
    0,
    [
      ['layers.0.w', 16],
      ['layers.1.w', 24],
    ],
    1,
  );
  const b = safetensorsEntries('b.safetensors', 1, [['layers.2.w', 8]], 10);
  const entries: ManifestEntry[] = [...a.entries, ...b.entries, fileEntry('config.json', 12, hash(20))];
  entries[1] = { ...(entries[1] as ManifestEntry), dtype: 'BF16', shape: [2, 4] };
  return serializeManifestBinary(
    buildManifest(
      {
        version: 'v1',
        model_id: null,
        created_at: 'now',
        hash_algo: 'blake3',
        files: [a.file, b.file, { path: 'config.json', size: 12, kind: 'file' }],
      },
      entries,
    ),
  );
}

function verdict(bytes: Buffer): string {
  try {
    parseManifestBinary(bytes, 'm.manifest');
    return 'accepted';
  } catch (err) {
    return (err as Error).message;
  }
}

describe('native entry check', () => {
  it('gives the same verdicts as the manifest package, and yes only for valid columns', () => {
    expect(nativeItemTextAvailable()).toBe(true);
    const good = sample();
    const { files } = binaryHeader(good) as { files: { path: string }[] };
    const order = files.map((f) => f.path);
    const cases: [string, Buffer][] = [
      ['valid', good],
      ['a fractional size', withColumn(good, 'nbytes', (c) => c.writeDoubleLE(15.5, 8))],
      ['a negative size', withColumn(good, 'nbytes', (c) => c.writeDoubleLE(-8, 8))],
      ['a dtype past the list', withColumn(good, 'dtype', (c) => c.writeInt32LE(7, 4))],
      ['a negative dim', withColumn(good, 'dims', (c) => c.writeDoubleLE(-2, 0))],
      ['a fractional dim', withColumn(good, 'dims', (c) => c.writeDoubleLE(2.5, 8))],
      ['a header marked as a tensor', withColumn(good, 'kind', (c) => c.write('t', 0, 'latin1'))],
      ['a tensor marked as a header', withColumn(good, 'kind', (c) => c.write('h', 1, 'latin1'))],
      [
        'a whole file marked as a header',
        withColumn(good, 'kind', (c) => c.write('h', order.indexOf('config.json') === 0 ? 0 : 5, 'latin1')),
      ],
      [
        'a file not covered',
        withHeader(good, (h) => {
          (h.files as { size: number }[])[0]!.size += 8;
        }),
      ],
    ];
    let asked = 0;
    const answers: boolean[] = [];
    for (const [name, bytes] of cases) {
      useEntryCheck(undefined);
      const js = verdict(bytes);
      useEntryCheck((...args) => {
        asked++;
        const yes = nativeEntryCheck(...args);
        answers.push(yes);
        return yes;
      });
      expect(verdict(bytes), name).toBe(js);
      if (name === 'valid') expect(js).toBe('accepted');
      else expect(js, name).toMatch(/^m\.manifest: (entries|files)/);
    }
    expect(asked).toBe(cases.length);
    expect(answers).toEqual(cases.map(([name]) => name === 'valid'));
  });
});
