/**
 * Which ranks consume an entry. In order of precedence:
 *  1. a group map `{"<glob on tensor names>": [ranks]}`: the union of every matching pattern;
 *  2. TP groups `{"<group id>": [ranks]}` (HOTWEIGHTS_TP_GROUPS / --tp-groups): a tensor (or
 *     header) of shard rank k goes to group k; group 0 is a group like any other;
 *  3. auto TP: with T distinct shard ranks, shard k goes to every rank r with r % T == k;
 *  4. otherwise every rank 0..world_size-1.
 * Whole non-tensor files (config, tokenizer) go to every rank unless a group map pattern names them.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, type ManifestEntryKind } from '@hotweights/core';
import { SchemaChecker } from '@hotweights/manifest';

/** TP group id -> ranks. */
export type TpGroups = ReadonlyMap<number, readonly number[]>;

function parseJsonSource(source: string, what: string): { value: unknown; file: string | undefined } {
  const trimmed = source.trim();
  let text = trimmed;
  let file: string | undefined;
  if (!trimmed.startsWith('{')) {
    file = source;
    try {
      text = readFileSync(source, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read ${what} ${source}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
        cause: err,
      });
    }
  }
  try {
    return { value: JSON.parse(text), file };
  } catch (err) {
    throw new ConfigError(`${file ?? what}: not valid JSON (${(err as Error).message})`, { cause: err });
  }
}

function ranksOf(c: SchemaChecker, raw: unknown, field: string): number[] {
  return c.array(raw, field).map((r, i) => c.count(r, `${field}[${i}]`));
}

/** TP groups from inline JSON or a JSON file: `{"0": [0, 2], "1": [1, 3]}`. */
export function parseTpGroups(source: string): TpGroups {
  const { value, file } = parseJsonSource(source, 'TP groups');
  const c: SchemaChecker = new SchemaChecker(file ?? 'TP groups');
  const o = c.object(value, '(root)');
  const groups = new Map<number, number[]>();
  for (const [id, ranks] of Object.entries(o)) {
    if (!/^(0|[1-9]\d*)$/.test(id)) c.fail(id, 'a group id: an integer >= 0 as a string key, e.g. "0"', id);
    groups.set(Number(id), ranksOf(c, ranks, JSON.stringify(id)));
  }
  return new Map([...groups].sort((a, b) => a[0] - b[0]));
}

export interface GroupMapRule {
  readonly pattern: string;
  readonly regex: RegExp;
  readonly ranks: readonly number[];
}

/** Glob on tensor names: `*` any run of characters, `?` one character. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (const ch of glob) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's');
}

/** A group map from inline JSON or a file: `{"model.layers.0.*": [0, 1]}`. */
export function parseGroupMap(source: string): GroupMapRule[] {
  const { value, file } = parseJsonSource(source, 'group map');
  const c: SchemaChecker = new SchemaChecker(file ?? 'group map');
  const o = c.object(value, '(root)');
  return Object.entries(o).map(([pattern, ranks]) => ({
    pattern,
    regex: globToRegExp(pattern),
    ranks: ranksOf(c, ranks, JSON.stringify(pattern)),
  }));
}

export interface ConsumerOptions {
  readonly groupMap?: readonly GroupMapRule[];
  readonly tpGroups?: TpGroups;
  /** Derive TP groups from the shard ranks present (see module comment). */
  readonly tpAuto?: boolean;
}

/** An entry's consumer ranks (sorted, shared arrays: do not mutate). */
export interface ConsumerResolver {
  (tensor: string, shardRank: number, kind: ManifestEntryKind): readonly number[];
  /** Set when every entry gets these same ranks (no group map, no TP groups): no need to ask. */
  readonly uniform?: readonly number[];
}

/** Returns a function giving an entry's consumer ranks (sorted, shared arrays: do not mutate). */
export function consumerResolver(
  options: ConsumerOptions,
  worldSize: number,
  shardRanks: number,
): ConsumerResolver {
  const all = Array.from({ length: worldSize }, (_, r) => r);
  const byShard = new Map<number, readonly number[]>();
  if (options.tpGroups) {
    for (const [g, ranks] of options.tpGroups)
      byShard.set(
        g,
        [...new Set(ranks)].sort((a, b) => a - b),
      );
  } else if (options.tpAuto && shardRanks > 1) {
    for (let k = 0; k < shardRanks; k++)
      byShard.set(
        k,
        all.filter((r) => r % shardRanks === k),
      );
  }
  const useShards = options.tpGroups !== undefined || (options.tpAuto === true && shardRanks > 1);
  const rules = options.groupMap ?? [];
  const memo = new Map<string, readonly number[]>();
  if (rules.length === 0 && !useShards) return Object.assign(() => all, { uniform: all });
  return (tensor, shardRank, kind) => {
    if (rules.length > 0) {
      let matched: Set<number> | undefined;
      for (const rule of rules) {
        if (rule.regex.test(tensor)) {
          matched ??= new Set();
          for (const r of rule.ranks) matched.add(r);
        }
      }
      if (matched) {
        const sorted = [...matched].sort((a, b) => a - b);
        const key = sorted.join(',');
        const hit = memo.get(key);
        if (hit) return hit;
        memo.set(key, sorted);
        return sorted;
      }
    }
    if (useShards && kind !== 'file') return byShard.get(shardRank) ?? [];
    return all;
  };
}
