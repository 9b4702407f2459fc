/**
 * Worker threads that run a module of this repository: the compiled `.js` beside the caller in a
 * built package, or the `.ts` source when the caller itself runs from sources (tests, tsx). A
 * worker does not inherit the parent's loader, so a source module starts through a small
 * bootstrap that registers tsx inside the worker first (with the `@hotweights/source` condition,
 * so the workspace packages it imports are sources too).
 */
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** `./<name>.js` beside `callerUrl` (an `import.meta.url`), or `./<name>.ts` from sources. */
export function siblingModule(name: string, callerUrl: string): URL {
  return new URL(`./${name}${callerUrl.endsWith('.ts') ? '.ts' : '.js'}`, callerUrl);
}

/** Starts a worker running `module` (see siblingModule); `execArgv` and `argv` are set here. */
export function startModuleWorker(
  module: URL,
  options: Omit<WorkerOptions, 'execArgv' | 'argv'> = {},
): Worker {
  // Compiled: plain Node, nothing inherited from the parent's command line (a faster boot).
  if (!module.pathname.endsWith('.ts')) return new Worker(module, { ...options, execArgv: [] });
  return new Worker(new URL('./ts-worker-bootstrap.mjs', import.meta.url), {
    ...options,
    execArgv: ['--conditions=@hotweights/source'],
    argv: [module.href],
  });
}
