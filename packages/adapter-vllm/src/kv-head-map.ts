/**
 * Grouped-query attention head maps: entry `q` of a map is the KV head query head `q` reads.
 * `hotweights kv-check` derives and validates them, so a layout can be checked before a
 * checkpoint with it is published. Nothing here transforms a live KV cache (see docs/VLLM.md).
 */
import { ConfigError } from '@hotweights/core';

export type KvHeadOrder = 'grouped' | 'interleaved';

export interface KvHeadLayout {
  readonly heads: number;
  readonly kvHeads: number;
  /** Query heads per KV head. */
  readonly groupSize: number;
  readonly map: readonly number[];
  /** For each KV head, the query heads that read it. */
  readonly groups: readonly (readonly number[])[];
  /** `grouped` or `interleaved` when the map is that derived order, else `custom`. */
  readonly order: KvHeadOrder | 'custom';
}

function count(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 1) throw new ConfigError(`${what} ${n}: expected an integer >= 1`);
  return n;
}

/** Query heads per KV head; throws ConfigError when `heads` does not split evenly over `kvHeads`. */
export function kvGroupSize(heads: number, kvHeads: number): number {
  count(heads, '--heads');
  count(kvHeads, '--kv-heads');
  if (kvHeads > heads) {
    throw new ConfigError(
      `${kvHeads} KV heads for ${heads} query heads: a model has at most one KV head per query head`,
    );
  }
  if (heads % kvHeads !== 0) {
    throw new ConfigError(
      `${heads} query heads do not split evenly over ${kvHeads} KV heads (${heads} % ${kvHeads} = ${heads % kvHeads}): ` +
        'grouped-query attention needs the query heads to be a multiple of the KV heads',
    );
  }
  return heads / kvHeads;
}

/** The map of a standard layout: grouped (`q / (H/K)`, Llama, Mistral, Qwen) or interleaved (`q mod K`). */
export function deriveKvHeadMap(heads: number, kvHeads: number, order: KvHeadOrder): number[] {
  const g = kvGroupSize(heads, kvHeads);
  return Array.from({ length: heads }, (_, q) => (order === 'grouped' ? Math.floor(q / g) : q % kvHeads));
}

/** A map from JSON text (a list of integers); `where` names its source in errors. */
export function parseKvHeadMap(text: string, where: string): number[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${where} is not JSON: ${(err as Error).message}; expected a list like [0,0,1,1]`);
  }
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => Number.isSafeInteger(x))) {
    throw new ConfigError(
      `${where}: expected a non-empty JSON list of integers (KV head of each query head)`,
    );
  }
  return v as number[];
}

/**
 * Checks that `map` is a valid map for `heads` query heads over `kvHeads` KV heads: one entry per
 * query head, each a KV head that exists, every KV head read by the same number of query heads
 * (so with as many KV heads as query heads the map is a permutation). Throws ConfigError naming
 * every problem.
 */
export function checkKvHeadMap(map: readonly number[], heads: number, kvHeads: number): KvHeadLayout {
  const g = kvGroupSize(heads, kvHeads);
  const problems: string[] = [];
  if (map.length !== heads) problems.push(`the map has ${map.length} entries for ${heads} query heads`);
  const groups: number[][] = Array.from({ length: kvHeads }, () => []);
  map.forEach((kv, q) => {
    if (Number.isSafeInteger(kv) && kv >= 0 && kv < kvHeads) groups[kv]?.push(q);
    else problems.push(`query head ${q} maps to ${kv}, not a KV head (0..${kvHeads - 1})`);
  });
  const uneven = groups.map((qs, kv) => [kv, qs.length] as const).filter(([, n]) => n !== g);
  if (problems.length === 0 && uneven.length > 0) {
    const shown = uneven.slice(0, 4).map(([kv, n]) => `KV head ${kv} is read by ${n}`);
    problems.push(
      g === 1
        ? `with ${heads} query and KV heads the map must be a permutation of 0..${kvHeads - 1}: ${shown.join(', ')}`
        : `every KV head must be read by ${g} query heads: ${shown.join(', ')}${uneven.length > 4 ? ', …' : ''}`,
    );
  }
  if (problems.length > 0) throw new ConfigError(`invalid KV head map: ${problems.join('; ')}`);
  const same = (order: KvHeadOrder) => deriveKvHeadMap(heads, kvHeads, order).every((kv, q) => map[q] === kv);
  const order = same('grouped') ? 'grouped' : same('interleaved') ? 'interleaved' : 'custom';
  return { heads, kvHeads, groupSize: g, map: [...map], groups, order };
}
