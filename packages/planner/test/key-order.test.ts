/**
 * The addon's check of a stored key order (nativeKeyOrderCheck, handed to the manifest package by
 * `hotweights plan`): yes only for a permutation along which (name bytes, rank) strictly ascend;
 * for anything else the manifest package's own check runs, so a bad file gets the same error.
 */
import {
  buildManifest,
  computeKeyOrder,
  NameColumn,
  parseManifestBinary,
  serializeManifestBinary,
  useKeyOrderCheck,
} from '@hotweights/manifest';
import { nativeItemTextAvailable, nativeKeyOrderCheck } from '@hotweights/planner';
import { afterEach, describe, expect, it } from 'vitest';
import { safetensorsEntries } from './column-plans.js';

afterEach(() => useKeyOrderCheck(undefined));

/** ASCII names with their bytes (as a binary manifest keeps them), ranks, and their key order. */
function columns(names: readonly string[], ranks: readonly number[]) {
  const text = NameColumn.from(names);
  const bytes = Buffer.from(names.join(''), 'latin1');
  const column = new NameColumn(null, text.starts, bytes);
  const shard = Uint32Array.from(ranks);
  const order = computeKeyOrder({ tensor: column, shard_rank: shard } as Parameters<
    typeof computeKeyOrder
  >[0]);
  return { bytes, starts: text.starts, shard, order };
}

describe('native key-order check', () => {
  it('says yes only for a strictly ascending permutation', () => {
    expect(nativeItemTextAvailable()).toBe(true);
    const names = ['b', 'a', 'ab', 'abc', 'a.w', 'layers.10', 'layers.9', 'layers.1', 'b', ''];
    const ranks = [0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
    const c = columns(names, ranks);
    expect(nativeKeyOrderCheck(c.bytes, c.starts, c.shard, c.order)).toBe(true);
    const swapped = Uint32Array.from(c.order);
    [swapped[3], swapped[4]] = [swapped[4] as number, swapped[3] as number];
    expect(nativeKeyOrderCheck(c.bytes, c.starts, c.shard, swapped)).toBe(false);
    const repeated = Uint32Array.from(c.order);
    repeated[5] = repeated[4] as number;
    expect(nativeKeyOrderCheck(c.bytes, c.starts, c.shard, repeated)).toBe(false);
    const outside = Uint32Array.from(c.order);
    outside[0] = names.length;
    expect(nativeKeyOrderCheck(c.bytes, c.starts, c.shard, outside)).toBe(false);
    expect(nativeKeyOrderCheck(c.bytes, c.starts, c.shard, c.order.subarray(1))).toBe(false);
    // The same name and rank twice: a duplicate key, never ascending.
    const dup = columns(['x', 'y', 'x'], [0, 0, 0]);
    expect(nativeKeyOrderCheck(dup.bytes, dup.starts, dup.shard, dup.order)).toBe(false);
    const empty = columns([], []);
    expect(nativeKeyOrderCheck(empty.bytes, empty.starts, empty.shard, empty.order)).toBe(true);
  });

  it('leaves a bad order to the manifest package, which refuses it with the same error', () => {
    const st = safetensorsEntries(
      'model.safetensors',
      0,
      [
        ['layers.0.w', 8],
        ['layers.1.w', 8],
        ['layers.2.w', 8],
      ],
      1,
    );
    const bin = serializeManifestBinary(
      buildManifest(
        { version: 'v1', model_id: null, created_at: 'now', hash_algo: 'blake3', files: [st.file] },
        st.entries,
      ),
    );
    const header = JSON.parse(bin.subarray(16, 16 + bin.readUInt32LE(8)).toString('utf8'));
    const [at] = header.columns.key_order as [number, number];
    const bad = Buffer.from(bin);
    bad.writeUInt32LE(bin.readUInt32LE(at + 4), at);
    bad.writeUInt32LE(bin.readUInt32LE(at), at + 4);
    const refusal = () => {
      try {
        parseManifestBinary(bad, 'bad.manifest');
      } catch (err) {
        return (err as Error).message;
      }
      return 'accepted';
    };
    const js = refusal();
    expect(js).toMatch(/^bad\.manifest: entries\.key_order\[1\]: expected entries in ascending key order/);
    let asked = 0;
    useKeyOrderCheck((...args) => {
      asked++;
      return nativeKeyOrderCheck(...args);
    });
    expect(refusal()).toBe(js);
    expect(parseManifestBinary(bin, 'good.manifest').size).toBe(4);
    expect(asked).toBe(2);
  });
});
