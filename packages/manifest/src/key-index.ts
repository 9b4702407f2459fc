/**
 * Lookups by key (tensor, shard_rank): a hash index built from the columns, or a stored key
 * order (binary manifests) that is checked before first use. Both report a duplicate key.
 */
import { SchemaError } from '@hotweights/core';
import type { ManifestColumns } from './manifest-columns.js';
import { hashName, type NameColumn } from './name-column.js';
import { SchemaChecker } from './schema-check.js';

/**
 * (tensor, shard_rank) -> entry index: an open-addressing table of entry numbers keyed by an
 * FNV-1a hash of the name. About twice as fast to build as a Map of a million strings, and it
 * needs no key strings at all.
 */
export class KeyIndex {
  /** Pairs (entry + 1, name hash): a probe reads one cache line and compares names only on a hash match. */
  private readonly table: Int32Array;
  private readonly mask: number;

  constructor(
    private readonly names: NameColumn,
    private readonly rank: ArrayLike<number>,
    file: string | undefined,
  ) {
    const n = names.length;
    let size = 16;
    while (size < n * 2) size *= 2;
    const table = new Int32Array(size * 2);
    const mask = size - 1;
    this.table = table;
    this.mask = mask;
    for (let i = 0; i < n; i++) {
      const r = rank[i] as number;
      const h = names.hash(i, r) | 0;
      let p = h & mask;
      for (;;) {
        const at = table[2 * p] as number;
        if (at === 0) break;
        if (table[2 * p + 1] === h && rank[at - 1] === r && names.equals(at - 1, names, i)) {
          const key = `${names.get(i)}:${r}`;
          throw new SchemaError({
            file,
            field: `entries.tensor[${i}]`,
            expected: `a unique key (tensor:shard_rank); ${JSON.stringify(key)} is also entry ${at - 1}`,
            got: JSON.stringify(key),
          });
        }
        p = (p + 1) & mask;
      }
      table[2 * p] = i + 1;
      table[2 * p + 1] = h;
    }
  }

  get(t: string, r: number): number {
    const h = hashName(t, r) | 0;
    let p = h & this.mask;
    for (;;) {
      const at = this.table[2 * p] as number;
      if (at === 0) return -1;
      if (this.table[2 * p + 1] === h && this.rank[at - 1] === r && this.names.is(at - 1, t)) return at - 1;
      p = (p + 1) & this.mask;
    }
  }
}

/**
 * A faster check of a stored key order over ASCII names (a native one): true only for an order
 * checkKeyOrder passes; for false (or anything it cannot tell) checkKeyOrder runs and says why.
 */
export type KeyOrderCheck = (
  names: Uint8Array,
  starts: Uint32Array,
  ranks: Uint32Array,
  order: Uint32Array,
) => boolean;

let fastKeyOrderCheck: KeyOrderCheck | undefined;

/** Hands stored key orders to `check` first (undefined: checked here only). See KeyOrderCheck. */
export function useKeyOrderCheck(check: KeyOrderCheck | undefined): void {
  fastKeyOrderCheck = check;
}

/**
 * Checks a stored key order: a permutation of the entries along which keys strictly ascend, so
 * neighbours are compared once and an equal pair is a duplicate key.
 */
export function checkKeyOrder(columns: ManifestColumns, order: Uint32Array, file: string | undefined): void {
  const names = columns.tensor;
  if (
    fastKeyOrderCheck &&
    names.bytes &&
    fastKeyOrderCheck(names.bytes, names.starts, columns.shard_rank, order)
  )
    return;
  const c = new SchemaChecker(file);
  const ranks = columns.shard_rank;
  const n = names.length;
  if (order.length !== n) c.fail('entries.key_order', `${n} values (one per entry)`, order.length);
  const seen = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const e = order[k] as number;
    if (e >= n || seen[e]) c.fail(`entries.key_order[${k}]`, `each entry index 0..${n - 1} once`, e);
    seen[e] = 1;
    if (k === 0) continue;
    const p = order[k - 1] as number;
    const cmp = names.compare(p, names, e) || (ranks[p] as number) - (ranks[e] as number);
    if (cmp === 0) {
      const key = `${names.get(e)}:${ranks[e]}`;
      throw new SchemaError({
        file,
        field: `entries.tensor[${Math.max(p, e)}]`,
        expected: `a unique key (tensor:shard_rank); ${JSON.stringify(key)} is also entry ${Math.min(p, e)}`,
        got: JSON.stringify(key),
      });
    }
    if (cmp > 0)
      c.fail(
        `entries.key_order[${k}]`,
        `entries in ascending key order (entry ${p} sorts after entry ${e})`,
        e,
      );
  }
}

/** Entry indexes sorted by key (tensor by UTF-16 code units, then shard_rank). */
export function computeKeyOrder(columns: ManifestColumns): Uint32Array {
  const names = columns.tensor;
  const ranks = columns.shard_rank;
  const order = new Uint32Array(names.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((a, b) => names.compare(a, names, b) || (ranks[a] as number) - (ranks[b] as number));
  return order;
}

/** Builds the key index; throws a SchemaError naming a duplicate key. */
export function buildKeyIndex(columns: ManifestColumns, file: string | undefined): KeyIndex {
  return new KeyIndex(columns.tensor, columns.shard_rank, file);
}
