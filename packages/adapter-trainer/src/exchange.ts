/**
 * The exchange directory shared with the training process (the protocol is described in
 * python/src/hotweights_trainer/swap.py and docs/TRAINING.md). Every file is written whole
 * (temp file + rename) and the rename of commit.json decides who owns a commit.
 */
import { mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export type ExchangeFile =
  | 'trainer'
  | 'layout'
  | 'offer'
  | 'commit'
  | 'claimed'
  | 'cancelled'
  | 'ack'
  | 'live';

export class Exchange {
  constructor(readonly dir: string) {}

  path(file: ExchangeFile): string {
    return join(this.dir, `${file}.json`);
  }

  async open(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
  }

  async write(file: ExchangeFile, body: unknown): Promise<void> {
    const tmp = join(this.dir, `.${file}.json.${process.pid}.tmp`);
    await writeFile(tmp, JSON.stringify(body));
    await rename(tmp, this.path(file));
  }

  /** The file's JSON, or null when it does not exist. */
  async read<T>(file: ExchangeFile): Promise<T | null> {
    try {
      return JSON.parse(await readFile(this.path(file), 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  /** Renames `from` to `to`; false when `from` is gone (the other side took it first). */
  async take(from: ExchangeFile, to: ExchangeFile): Promise<boolean> {
    try {
      await rename(this.path(from), this.path(to));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async remove(file: ExchangeFile): Promise<void> {
    await unlink(this.path(file)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
}
