/**
 * Lands updates in running vLLM servers through the hotweights_vllm worker extension.
 *
 * prepare: every worker maps the staged segments and checks them (`hw_prepare`) while the server
 * keeps serving. commit: pause every server, `hw_commit` on every worker, reset the prefix cache,
 * set the weight version, resume (always attempted). If any worker fails, every worker of every
 * server puts back the values it overwrote (`hw_rollback`) before the servers resume.
 *
 * Staging: this adapter has no `beginPrepare`, so the staging agent keeps every bucket of the
 * version until the update is over (the pipeline releases it after commit or abort); the workers
 * read the staged segments in place and nothing is copied. Rollback needs no staged bytes: each
 * worker keeps a host copy of the values the last commit overwrote.
 */
import { randomBytes } from 'node:crypto';
import {
  type Adapter,
  AdapterError,
  type AdapterUpdate,
  isHotweightsError,
  TimeoutError,
} from '@hotweights/core';
import { LiveCopy } from './live-copy.js';
import { preparePayload } from './prepare-payload.js';
import { type PauseMode, VllmServer } from './vllm-server.js';

export interface VllmAdapterOptions {
  /** One URL per vLLM server this sidecar drives (a data-parallel deployment has several). */
  readonly urls: readonly string[];
  /** hotweights rank of this sidecar: the buckets it consumed are the ones it hands over. */
  readonly rank?: number;
  /** How `/pause` treats requests in flight (default `wait`: let them finish). */
  readonly pauseMode?: PauseMode;
  /** Seconds for `hw_prepare` on every worker (default 600). */
  readonly prepareTimeoutS?: number;
  /** Seconds for pause, `hw_commit` and `hw_rollback` each (default 300). */
  readonly commitTimeoutS?: number;
  /** Seconds for resume, cache reset, version and info calls (default 30). */
  readonly requestTimeoutS?: number;
  /** Workers re-hash every staged tensor before accepting it (default false). */
  readonly verifyHashes?: boolean;
  /** Accept checkpoint float dtypes that differ from the live parameters' (default false). */
  readonly allowDtypeCast?: boolean;
  /** Tensors named under this prefix load into the speculative-decoding drafter (default `drafter.`). */
  readonly drafterPrefix?: string;
  /**
   * Keep a host copy of the live version's tensors so plans with patch items land (default
   * false: it costs host memory the size of the model; see live-copy.ts).
   */
  readonly liveCopy?: boolean;
}

interface Prepared {
  readonly version: string;
  readonly txn: string;
}

export class VllmAdapter implements Adapter {
  readonly name = 'vllm';
  readonly servers: readonly VllmServer[];
  /** Seconds the servers were paused by the last commit or rollback. */
  lastSwitchSeconds: number | undefined;
  private readonly o: Required<Omit<VllmAdapterOptions, 'urls'>>;
  private live: string | null | undefined;
  private prepared: Prepared | null = null;
  /** With `liveCopy`: the live tensors patches apply to. */
  private readonly copy: LiveCopy | null;
  /** The live bytes of a tensor (only with `liveCopy`: the runtime refuses patch plans without). */
  readonly liveItem?: (key: string) => Promise<Uint8Array | null>;

  constructor(options: VllmAdapterOptions) {
    if (options.urls.length === 0) {
      throw new AdapterError('the vLLM adapter needs at least one server URL (url=http://127.0.0.1:8000)', {
        code: 'HW_ADAPTER_INVALID',
      });
    }
    this.servers = options.urls.map((u) => new VllmServer(u));
    this.o = {
      rank: options.rank ?? 0,
      pauseMode: options.pauseMode ?? 'wait',
      prepareTimeoutS: options.prepareTimeoutS ?? 600,
      commitTimeoutS: options.commitTimeoutS ?? 300,
      requestTimeoutS: options.requestTimeoutS ?? 30,
      verifyHashes: options.verifyHashes ?? false,
      allowDtypeCast: options.allowDtypeCast ?? false,
      drafterPrefix: options.drafterPrefix ?? 'drafter.',
      liveCopy: options.liveCopy ?? false,
    };
    this.copy = this.o.liveCopy ? new LiveCopy() : null;
    if (this.copy) {
      const copy = this.copy;
      this.liveItem = async (key) => copy.get(await this.currentVersion(), key);
    }
  }

  /** What every worker of every server reports (`hw_info`), server by server. */
  async info(): Promise<Record<string, unknown>[][]> {
    const ms = this.o.requestTimeoutS * 1000;
    return (await Promise.all(this.servers.map((s) => s.collectiveRpc('hw_info', [], ms)))) as Record<
      string,
      unknown
    >[][];
  }

  async currentVersion(): Promise<string | null> {
    if (this.live !== undefined) return this.live;
    const versions = new Set(
      (await this.info()).flat().map((r) => (r.live_version as string | null) ?? null),
    );
    if (versions.size > 1) {
      throw new AdapterError(`vLLM workers report different live versions: ${[...versions].join(', ')}`);
    }
    this.live = versions.values().next().value ?? null;
    return this.live;
  }

  async prepare(update: AdapterUpdate): Promise<void> {
    const { plan } = update;
    if (this.prepared) await this.abort(this.prepared.version);
    const payload = JSON.stringify(preparePayload(plan, update.staging, this.o));
    const txn = `${plan.version}.${randomBytes(4).toString('hex')}`;
    const ms = this.o.prepareTimeoutS * 1000;
    const settled = await Promise.allSettled(
      this.servers.map((s) => s.collectiveRpc('hw_prepare', [txn, payload], ms)),
    );
    const failed = settled.findIndex((r) => r.status === 'rejected');
    if (failed >= 0) {
      await this.releaseAll(txn);
      throw this.wrap(`prepare of ${plan.version} failed on ${this.servers[failed]?.url}`, settled[failed]);
    }
    this.prepared = { version: plan.version, txn };
    this.copy?.stage(plan, update.staging, this.o.rank);
  }

  /** What `rollback` would make live: the version before the live one, if every worker kept it. */
  async previousVersion(): Promise<string | null> {
    const workers = (await this.info()).flat();
    const targets = new Set(workers.map((w) => (w.can_roll_back === true ? (w.rollback_to ?? null) : null)));
    const [target] = targets;
    return targets.size === 1 && typeof target === 'string' ? target : null;
  }

  /**
   * Whether `commit(version)` can make it live without more data: it is prepared, or it is the
   * version before the live one, which the workers keep (a fleet rollback re-commits it).
   */
  async hasVersion(version: string): Promise<boolean> {
    if (this.prepared?.version === version) return true;
    return (await this.previousVersion().catch(() => null)) === version;
  }

  async commit(version: string): Promise<void> {
    const prepared = this.prepared;
    if (prepared?.version !== version) {
      // A fleet rollback re-commits the previous version from what the workers kept.
      if (prepared === null && (await this.previousVersion()) === version) {
        await this.rollback();
        return;
      }
      throw new AdapterError(`cannot commit ${version}: it was not prepared by this adapter`);
    }
    const previous = await this.currentVersion();
    try {
      await this.commitPrepared(prepared, previous);
    } finally {
      this.prepared = null;
      this.copy?.abort(version);
      await this.releaseAll(prepared.txn);
    }
    this.live = version;
  }

  private async commitPrepared({ version, txn }: Prepared, previous: string | null): Promise<void> {
    await this.switch(version, async (ms) => {
      const settled = await Promise.allSettled(
        this.servers.map((s) => s.collectiveRpc('hw_commit', [txn, version], ms)),
      );
      const failed = settled.findIndex((r) => r.status === 'rejected');
      if (failed < 0) {
        // Every worker loaded it: the host copy follows (before the cache reset and resume).
        this.copy?.commit(version);
        return;
      }
      // Put every worker back: those that loaded this transaction restore what they overwrote;
      // the failed one already did, and hw_rollback of a transaction it did not commit does nothing.
      const undone = await Promise.allSettled(
        this.servers.map((s) => s.collectiveRpc('hw_rollback', [txn], ms)),
      );
      const back = undone.every((r) => r.status === 'fulfilled');
      throw this.wrap(
        `commit of ${version} failed on ${this.servers[failed]?.url}; ${
          back
            ? `every server is back on ${previous ?? 'its previous weights'}`
            : 'ROLLING BACK FAILED: the servers may hold a mix of versions, restart them'
        }`,
        settled[failed],
      );
    });
  }

  async abort(version: string): Promise<void> {
    if (this.prepared?.version !== version) return;
    const { txn } = this.prepared;
    this.prepared = null;
    this.copy?.abort(version);
    await this.releaseAll(txn);
  }

  /**
   * Makes the previous version live again from the values each worker kept when it committed the
   * live one; needs no state in this process, so a fresh adapter (`hotweights rollback`) can do it.
   */
  async rollback(): Promise<string> {
    const workers = (await this.info()).flat();
    const lives = new Set(workers.map((w) => w.live_version ?? null));
    const targets = new Set(workers.map((w) => w.rollback_to ?? null));
    const [live] = lives;
    const [target] = targets;
    if (lives.size !== 1) {
      throw new AdapterError(
        `cannot roll back: vLLM workers report different live versions: ${[...lives].join(', ')}`,
      );
    }
    const able = workers.filter((w) => w.can_roll_back === true).length;
    if (able === 0 || target === null) {
      throw new AdapterError(
        `no previous version to roll back to from ${live ?? 'the startup weights'}: the workers keep one ` +
          'version back, from the last commit (restart the server to return to its startup weights)',
      );
    }
    if (
      able !== workers.length ||
      targets.size !== 1 ||
      typeof live !== 'string' ||
      typeof target !== 'string'
    ) {
      throw new AdapterError(
        `cannot roll back: ${workers.length - able} of ${workers.length} vLLM workers kept no previous version`,
      );
    }
    await this.switch(target, async (ms) => {
      const results = await Promise.all(this.servers.map((s) => s.collectiveRpc('hw_rollback', [live], ms)));
      const missed = results.flat().filter((r) => !(r as { rolled_back?: boolean }).rolled_back);
      if (missed.length > 0) {
        throw new AdapterError(`rollback to ${target}: ${missed.length} worker(s) had nothing to restore`);
      }
      this.copy?.rolledBack(target);
    });
    this.live = target;
    return target;
  }

  /**
   * Pauses every server, runs `apply` (which must leave every worker on one version), resets the
   * prefix caches and sets the weight version, then resumes every paused server, whatever happened.
   */
  private async switch(version: string, apply: (timeoutMs: number) => Promise<void>): Promise<void> {
    const commitMs = this.o.commitTimeoutS * 1000;
    const requestMs = this.o.requestTimeoutS * 1000;
    const paused: VllmServer[] = [];
    const t0 = performance.now();
    let failure: unknown;
    try {
      await Promise.all(
        this.servers.map(async (s) => {
          await s.pause(this.o.pauseMode, commitMs);
          paused.push(s);
        }),
      );
      await apply(commitMs);
      await Promise.all(this.servers.map((s) => s.resetPrefixCache(requestMs)));
      await Promise.all(this.servers.map((s) => s.updateWeightVersion(version, requestMs)));
    } catch (err) {
      failure = err;
    }
    const resumed = await Promise.allSettled(paused.map((s) => s.resume(requestMs)));
    this.lastSwitchSeconds = (performance.now() - t0) / 1000;
    const stuck = paused.filter((_, i) => resumed[i]?.status === 'rejected').map((s) => s.url);
    if (failure !== undefined) {
      if (stuck.length === 0) throw failure;
      throw new AdapterError(
        `${(failure as Error).message}; and ${stuck.join(', ')} did not resume: POST /resume`,
        {
          cause: failure,
        },
      );
    }
    if (stuck.length > 0) {
      throw new AdapterError(`${version} is live but ${stuck.join(', ')} did not resume: POST /resume`);
    }
  }

  private async releaseAll(txn: string): Promise<void> {
    const ms = this.o.requestTimeoutS * 1000;
    await Promise.allSettled(this.servers.map((s) => s.collectiveRpc('hw_release', [txn], ms)));
  }

  private wrap(what: string, result: PromiseSettledResult<unknown> | undefined): Error {
    const err = result?.status === 'rejected' ? (result.reason as Error) : new Error('unknown failure');
    if (isHotweightsError(err) && err.code === 'HW_TIMEOUT') {
      return new TimeoutError(`${what}: ${err.message}`, { cause: err });
    }
    return new AdapterError(`${what}: ${err.message}`, { cause: err });
  }
}
