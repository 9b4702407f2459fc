/**
 * The process's MPI session. MPI can be initialized once per process and never again after
 * MPI_Finalize, so transports share one session, and it ends when the process exits: with
 * MPI_Finalize after a clean exit, or with MPI_Abort (which ends every rank of the job) after a
 * failure or after a collective had to be abandoned. That last rule is what turns a dead or stuck
 * peer into a failed job instead of a hang.
 */
import { TransportError } from '@hotweights/core';
import type { NativeMpi } from './native.js';

export interface MpiWorld {
  readonly rank: number;
  readonly size: number;
  readonly version: string;
}

export class MpiSession {
  readonly native: NativeMpi;
  readonly world: MpiWorld;
  #broken: Error | undefined;

  private constructor(native: NativeMpi, world: MpiWorld) {
    this.native = native;
    this.world = world;
  }

  /** Why the session can no longer run collectives, if it cannot. */
  get broken(): Error | undefined {
    return this.#broken;
  }

  /**
   * Marks the session unusable: an MPI collective cannot be cancelled, so once one was abandoned
   * (deadline, abort signal) ranks disagree about what comes next. Every later broadcast
   * rejects, and the process aborts the MPI job when it exits.
   */
  markBroken(reason: Error): void {
    this.#broken ??= reason;
  }

  static #current: MpiSession | undefined;

  static open(native: NativeMpi, library: string): MpiSession {
    if (MpiSession.#current) return MpiSession.#current;
    let world: MpiWorld;
    try {
      world = native.init(library);
    } catch (err) {
      throw new TransportError(`MPI initialization failed: ${(err as Error).message}`, { cause: err });
    }
    const session = new MpiSession(native, world);
    MpiSession.#current = session;
    process.once('exit', (code) => session.#end(code));
    return session;
  }

  #end(code: number): void {
    const status = this.native.status();
    if (!status.initialized || status.finalized) return;
    // Finalizing with a collective still queued would wait for peers that may never come.
    if (this.#broken || code !== 0 || status.pending > 0) {
      const why =
        this.#broken?.message ??
        (code !== 0 ? `exit code ${code}` : `${status.pending} MPI operation(s) still pending at exit`);
      process.stderr.write(`hotweights mpi: rank ${this.world.rank} ends the MPI job (MPI_Abort): ${why}\n`);
      this.native.abort(code === 0 ? 1 : code);
      return;
    }
    this.native.finalize();
  }
}
