/**
 * A binary manifest loaded at once, with its per-entry checks on a worker thread.
 *
 * Loading a million-entry manifest is mostly checking it (ranks, name offsets, sizes, coverage
 * of every file, dims), one pass over each column on the calling thread. For a manifest the
 * caller only reads while it works on something else (plan's previous manifest, while the next
 * one is validated and the plan made), the checks can run on the machine's other core instead: a
 * worker thread maps the same file itself and runs exactly what loadManifest runs, and only a
 * pass/fail comes back, with loadManifest's own error. The calling thread meanwhile maps the file
 * and checks its layout (header, column spans: every column view lies inside the file), so it
 * can read the columns safely; it must wait for `checked()` before acting on anything it derived
 * from them (writing a plan), and prefer its error to any error of its own made in between.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { HotweightsError, SchemaError } from './errors.js';
import {
  type ColumnarManifest,
  loadManifest,
  loadMappedManifest,
  type ManifestLoadOptions,
  type MappedFile,
  mappedFileOf,
} from './manifest-io.js';

export interface BackgroundCheckedManifest {
  /** The manifest, readable at once; its per-entry checks may still be running. */
  readonly manifest: ColumnarManifest;
  /**
   * Settles once the checks are done: resolves when the file passed every check loadManifest
   * makes (and is the file the calling thread mapped), rejects with loadManifest's error.
   */
  checked(): Promise<void>;
}

/** What the worker sends back. */
interface CheckReply {
  readonly file?: MappedFile | null;
  readonly error?: {
    readonly name?: string;
    readonly code?: string;
    readonly message: string;
    readonly details?: Record<string, unknown>;
  };
}

/**
 * The worker body: CommonJS evaluated from a string (no loader or conditions to inherit, so it
 * boots fast), importing this module by URL; from TypeScript sources (tests) through tsx's API.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
(async () => {
  let load = (url) => import(url);
  if (workerData.tsx) {
    const api = await import(workerData.tsx);
    load = (url) => api.tsImport(url, url);
  }
  const m = await load(workerData.module);
  return m.checkManifestFile(workerData.path, workerData.options);
})().then(
  (file) => parentPort.postMessage({ file }),
  (err) => {
    const error = {
      name: err && err.name,
      code: err && typeof err.code === 'string' ? err.code : undefined,
      message: String((err && err.message) || err),
      details: err && err.details ? { ...err.details } : undefined,
    };
    try {
      parentPort.postMessage({ error });
    } catch {
      parentPort.postMessage({ error: { ...error, details: undefined } });
    }
  },
);
`;

/**
 * Runs in the worker: loads the file as loadManifest(path, {...options, map: true}) does, checks
 * and all, and returns the identity of the file it mapped (null when it read it instead).
 */
export async function checkManifestFile(
  path: string,
  options: ManifestLoadOptions,
): Promise<MappedFile | null> {
  const manifest = await loadManifest(path, { ...options, map: true });
  return mappedFileOf(manifest) ?? null;
}

/** The worker's error as the error loadManifest would have thrown on this thread. */
function rebuildError(e: NonNullable<CheckReply['error']>): Error {
  const d = e.details;
  if (e.name === 'SchemaError' && d && typeof d.field === 'string' && typeof d.expected === 'string') {
    const err = new SchemaError({
      file: typeof d.file === 'string' ? d.file : undefined,
      field: d.field,
      expected: d.expected,
      got: typeof d.got === 'string' ? d.got : undefined,
    });
    if (err.message === e.message) return err;
  }
  if (e.code?.startsWith('HW_')) return new HotweightsError(e.code, e.message, { details: d });
  const err = new Error(e.message) as NodeJS.ErrnoException;
  if (e.name) err.name = e.name;
  if (e.code) err.code = e.code;
  return err;
}

/** How to start the worker from here (built JavaScript, or TypeScript sources via tsx), or null. */
function workerModule(): { module: string; tsx: string | null } | null {
  const module = import.meta.url;
  if (!module.endsWith('.ts')) return { module, tsx: null };
  try {
    const pkg = createRequire(module).resolve('tsx/package.json');
    return { module, tsx: pathToFileURL(join(dirname(pkg), 'dist/esm/api/index.mjs')).href };
  } catch {
    return null;
  }
}

/** The worker checking `path`, and its verdict (never an unhandled rejection). */
function startCheck(
  path: string,
  options: ManifestLoadOptions,
): { worker: Worker; verdict: Promise<MappedFile | null> } | null {
  const where = workerModule();
  if (!where) return null;
  let worker: Worker;
  try {
    worker = new Worker(WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      workerData: {
        ...where,
        path,
        options: { lazyIndex: options.lazyIndex === true, verifyDigest: options.verifyDigest === true },
      },
    });
  } catch {
    return null;
  }
  // It does not keep the process alive unless someone waits for it (checked() refs it).
  worker.unref();
  const verdict = new Promise<MappedFile | null>((resolve, reject) => {
    worker.once('message', (m: CheckReply) => {
      if (m.error) reject(rebuildError(m.error));
      else resolve(m.file ?? null);
    });
    worker.once('error', (err) =>
      reject(
        new HotweightsError('HW_INTERNAL', `manifest check of ${path} failed: ${err.message}`, {
          cause: err,
        }),
      ),
    );
    worker.once('exit', (code) =>
      reject(new HotweightsError('HW_INTERNAL', `manifest check of ${path} stopped (exit code ${code})`)),
    );
  });
  verdict.then(
    () => worker.terminate(),
    () => worker.terminate(),
  );
  return { worker, verdict };
}

function sameFile(a: MappedFile, b: MappedFile | null): 'replaced' | 'modified' | null {
  if (!b || a.dev !== b.dev || a.ino !== b.ino) return 'replaced';
  if (a.size !== b.size || a.mtimeNs !== b.mtimeNs || a.ctimeNs !== b.ctimeNs) return 'modified';
  return null;
}

/**
 * Loads a manifest as loadManifest(path, {...options, map: true}) does, with a binary manifest's
 * per-entry checks on a worker thread (see the top of this file). Anything else (a JSON manifest,
 * no shm addon, no worker) is loaded and checked here, and `checked()` resolves at once.
 */
export async function loadManifestCheckedInBackground(
  path: string,
  options: ManifestLoadOptions = {},
): Promise<BackgroundCheckedManifest> {
  const mapOptions: ManifestLoadOptions = { ...options, map: true };
  const checkedHere = async (): Promise<BackgroundCheckedManifest> => ({
    manifest: await loadManifest(path, mapOptions),
    checked: () => Promise.resolve(),
  });
  // The digest check is one pass over every column, not per entry: it is left to loadManifest.
  if (options.verifyDigest) return checkedHere();
  const check = startCheck(path, options);
  if (!check) return checkedHere();
  let manifest: ColumnarManifest | null;
  try {
    manifest = await loadMappedManifest(path, mapOptions, false);
  } catch (err) {
    // A bad layout: the same error the worker would report.
    void check.worker.terminate();
    throw err;
  }
  const mapped = manifest ? mappedFileOf(manifest) : undefined;
  if (!manifest || !mapped) {
    void check.worker.terminate();
    return checkedHere();
  }
  const result = check.verdict.then((file) => {
    const changed = sameFile(mapped, file);
    if (changed)
      throw new HotweightsError(
        'HW_SCHEMA',
        `manifest ${mapped.path} was ${changed} while in use: run the command again`,
        { details: { file: mapped.path } },
      );
  });
  result.catch(() => {});
  return {
    manifest,
    checked: () => {
      check.worker.ref();
      return result;
    },
  };
}
