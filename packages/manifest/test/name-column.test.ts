/**
 * NameColumn.compare orders names as JS `<` orders the strings, on the text and on ASCII bytes
 * alike (the bytes path skips equal prefixes four bytes at a time, so prefixes of every length
 * and differences at every place in and after a word are covered).
 */
import { Buffer } from 'node:buffer';
import { NameColumn } from '@hotweights/manifest';
import { describe, expect, it } from 'vitest';

/** The column of `names` as a binary manifest keeps ASCII names: their bytes, at an odd offset. */
function asciiColumn(names: readonly string[]): NameColumn {
  const text = NameColumn.from(names);
  const padded = Buffer.from(` ${names.join('')}`, 'latin1');
  return new NameColumn(null, text.starts, padded.subarray(1));
}

describe('NameColumn.compare', () => {
  it('orders ASCII bytes as strings, whatever the length of the shared prefix', () => {
    const names: string[] = [''];
    for (const stem of ['', 'a', 'ab', 'abc', 'abcd', 'abcde', 'model.layers.1', 'model.layers.10.w'])
      for (const tail of ['', 'a', 'b', 'z', 'aa', 'ab', 'ba', 'zzzz', 'aaaab', '.weight', '0', '9'])
        names.push(stem + tail);
    const bytes = asciiColumn(names);
    const text = NameColumn.from(names);
    expect(bytes.bytes).toBeDefined();
    for (let i = 0; i < names.length; i++)
      for (let j = 0; j < names.length; j++) {
        const a = names[i] as string;
        const b = names[j] as string;
        const want = a < b ? -1 : a > b ? 1 : 0;
        expect(Math.sign(bytes.compare(i, bytes, j)), `${a} vs ${b}`).toBe(want);
        expect(Math.sign(bytes.compare(i, text, j)), `${a} vs ${b} (text)`).toBe(want);
        expect(Math.sign(text.compare(i, bytes, j)), `${a} vs ${b} (text first)`).toBe(want);
      }
  });
});
