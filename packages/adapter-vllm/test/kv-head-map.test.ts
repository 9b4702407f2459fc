import { checkKvHeadMap, deriveKvHeadMap, kvGroupSize, parseKvHeadMap } from '@hotweights/adapter-vllm';
import { describe, expect, it } from 'vitest';

describe('GQA head maps', () => {
  it.each([
    [32, 8, 4], // Llama 3 8B, Mistral 7B
    [64, 8, 8], // Llama 2/3 70B
    [40, 8, 5], // Qwen 14B-style: 40 query heads, 8 KV heads
    [32, 32, 1], // multi-head attention
    [16, 1, 16], // multi-query attention
  ])('%i query heads over %i KV heads: groups of %i, both orders valid', (h, k, g) => {
    expect(kvGroupSize(h, k)).toBe(g);
    for (const order of ['grouped', 'interleaved'] as const) {
      const map = deriveKvHeadMap(h, k, order);
      const layout = checkKvHeadMap(map, h, k);
      expect(layout.groups.every((qs) => qs.length === g)).toBe(true);
      expect(layout.order).toBe(k === 1 || g === 1 ? 'grouped' : order);
    }
    const grouped = deriveKvHeadMap(h, k, 'grouped');
    expect(grouped.slice(0, g)).toEqual(Array(g).fill(0));
    expect(grouped.at(-1)).toBe(k - 1);
    expect(deriveKvHeadMap(h, k, 'interleaved').slice(0, k)).toEqual([...Array(k).keys()]);
  });

  it('refuses head counts that do not split evenly, and more KV heads than query heads', () => {
    expect(() => kvGroupSize(40, 16)).toThrow(
      '40 query heads do not split evenly over 16 KV heads (40 % 16 = 8): grouped-query attention needs',
    );
    expect(() => deriveKvHeadMap(40, 16, 'grouped')).toThrow('40 % 16 = 8');
    expect(() => kvGroupSize(8, 16)).toThrow('16 KV heads for 8 query heads');
    expect(() => kvGroupSize(0, 8)).toThrow('--heads 0: expected an integer >= 1');
  });

  it('names every problem of a given map', () => {
    expect(() => checkKvHeadMap([0, 0, 1], 4, 2)).toThrow('the map has 3 entries for 4 query heads');
    expect(() => checkKvHeadMap([0, 0, 1, 2], 4, 2)).toThrow('query head 3 maps to 2, not a KV head (0..1)');
    expect(() => checkKvHeadMap([0, 1, 1, 1], 4, 2)).toThrow(
      'every KV head must be read by 2 query heads: KV head 0 is read by 1, KV head 1 is read by 3',
    );
    expect(() => checkKvHeadMap([0, 0, 1, 2], 4, 4)).toThrow(
      'with 4 query and KV heads the map must be a permutation of 0..3: KV head 0 is read by 2, KV head 3 is read by 0',
    );
    const custom = checkKvHeadMap([1, 0, 1, 0], 4, 2);
    expect(custom.order).toBe('custom');
    expect(custom.groups).toEqual([
      [1, 3],
      [0, 2],
    ]);
  });

  it('parses JSON lists and says what a bad one is', () => {
    expect(parseKvHeadMap('[0,0,1,1]', 'X')).toEqual([0, 0, 1, 1]);
    expect(() => parseKvHeadMap('[0,', 'HOTWEIGHTS_KV_HEAD_MAP')).toThrow(
      'HOTWEIGHTS_KV_HEAD_MAP is not JSON',
    );
    expect(() => parseKvHeadMap('{"a":1}', 'm.json')).toThrow(
      'm.json: expected a non-empty JSON list of integers',
    );
    expect(() => parseKvHeadMap('[0.5]', 'm.json')).toThrow('m.json: expected a non-empty JSON list');
  });
});
