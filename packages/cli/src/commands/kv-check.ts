/**
 * `hotweights kv-check`: derives a grouped-query head map (`--order`), or validates a given one
 * (`--map`, `--map-file`, HOTWEIGHTS_KV_HEAD_MAP[_FILE]), for H query heads over K KV heads.
 */
import { readFileSync } from 'node:fs';
import { checkKvHeadMap, deriveKvHeadMap, type KvHeadOrder, parseKvHeadMap } from '@hotweights/adapter-vllm';
import { ConfigError } from '@hotweights/core';
import type { CommandModule } from '../command.js';

function int(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new ConfigError(`${flag} ${raw}: expected an integer >= 1`);
  return n;
}

function readMapFile(path: string, where: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${where} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

export const kvCheckCommand: CommandModule = {
  name: 'kv-check',
  register(program, ctx) {
    program
      .command('kv-check')
      .description('Derive or validate a grouped-query attention head map (query head -> KV head)')
      .option('--heads <h>', 'query heads (default: the length of the map)')
      .requiredOption('--kv-heads <k>', 'KV heads')
      .option(
        '--order <order>',
        'grouped or interleaved, for a derived map (default HOTWEIGHTS_KV_HEAD_ORDER)',
      )
      .option('--map <json>', 'validate this map instead of deriving one (default HOTWEIGHTS_KV_HEAD_MAP)')
      .option('--map-file <path>', 'a JSON file holding the map (default HOTWEIGHTS_KV_HEAD_MAP_FILE)')
      .option('--json', 'print the layout as JSON')
      .action(
        (opts: {
          heads?: string;
          kvHeads: string;
          order?: string;
          map?: string;
          mapFile?: string;
          json?: boolean;
        }) => {
          const c = ctx();
          const order = opts.order ?? c.config.kvHeadOrder;
          if (order !== 'grouped' && order !== 'interleaved') {
            throw new ConfigError(`--order ${order}: expected grouped or interleaved`);
          }
          const kvHeads = int(opts.kvHeads, '--kv-heads') as number;
          let map: number[] | undefined;
          if (opts.map !== undefined) map = parseKvHeadMap(opts.map, '--map');
          else if (opts.mapFile !== undefined)
            map = parseKvHeadMap(readMapFile(opts.mapFile, '--map-file'), opts.mapFile);
          else if (c.config.kvHeadMap !== undefined)
            map = parseKvHeadMap(c.config.kvHeadMap, 'HOTWEIGHTS_KV_HEAD_MAP');
          else if (c.config.kvHeadMapFile !== undefined) {
            const file = c.config.kvHeadMapFile;
            map = parseKvHeadMap(readMapFile(file, 'HOTWEIGHTS_KV_HEAD_MAP_FILE'), file);
          }
          const heads = int(opts.heads, '--heads') ?? map?.length;
          if (heads === undefined) throw new ConfigError('kv-check needs --heads (or a map to validate)');
          const layout = checkKvHeadMap(
            map ?? deriveKvHeadMap(heads, kvHeads, order as KvHeadOrder),
            heads,
            kvHeads,
          );
          if (opts.json) return c.json({ ok: true, ...layout });
          c.out(
            `${layout.heads} query heads over ${layout.kvHeads} KV heads, ${layout.groupSize} per KV head ` +
              `(${layout.order}${map ? ', given map' : ', derived'}): OK`,
          );
          for (const [kv, qs] of layout.groups.entries())
            c.out(`  KV head ${kv} <- query heads ${qs.join(',')}`);
          c.out(`map: ${JSON.stringify(layout.map)}`);
        },
      );
  },
};
