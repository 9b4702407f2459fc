/**
 * The command blocks the docs mark for testing: a fenced ```sh block right after a line
 * `<!-- doc-test: NAME -->`. With `<!-- doc-test: NAME fails -->` the block's last command must
 * fail, printing (on stderr) the one line shown in the plain ``` block that follows it, where
 * `…` stands for any text (a temp path, a digest).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface DocBlock {
  readonly file: string;
  readonly name: string;
  readonly script: string;
  /** The error line the last command must print, when the block is marked `fails`. */
  readonly error?: RegExp;
}

const MARKED = /<!-- doc-test: ([\w-]+)( fails)? -->\n```sh\n([\s\S]*?)```\n(?:[^`]*?```\n([\s\S]*?)```)?/g;

/** `…` matches anything; everything else literally. */
function shownLine(text: string): RegExp {
  const escaped = text
    .trim()
    .split('…')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`, 'm');
}

export function docBlocks(root: string, files: readonly string[]): DocBlock[] {
  const blocks: DocBlock[] = [];
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const m of text.matchAll(MARKED)) {
      const [, name, fails, script, shown] = m;
      if (fails && !shown) throw new Error(`${file}: block ${name} fails but shows no error line`);
      blocks.push({
        file,
        name: name as string,
        script: script as string,
        ...(fails ? { error: shownLine(shown as string) } : {}),
      });
    }
  }
  return blocks;
}
