/**
 * Swaps committed versions into a live PyTorch training job through the hotweights_trainer module.
 *
 * prepare: checks the staged tensors against layout.json (names, dtypes, shapes of the live model,
 * once the training process has reported it), so an update that does not fit fails before this
 * rank votes and the coordinator aborts it; then writes offer.json (this rank's staged segments
 * and their tensor items) into the exchange directory; the training process keeps training. commit: writes commit.json with the
 * optimizer policy and waits for the training process to apply it at its next step boundary
 * (`TrainerSwap.maybe_apply`) and write ack.json. A refusal (a name, shape or dtype that does not
 * fit) fails the commit with nothing applied; a deadline that passes before the training process
 * claims the commit cancels it, so it is never applied late. abort: removes the offer.
 *
 * Staging: no `beginPrepare`, so every staged bucket stays until the commit is acknowledged (the
 * training process reads the segments in place). There is no rollback: optimizer state cannot be
 * put back, so the previous weights travel as a new version.
 */
import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { type Adapter, AdapterError, type AdapterUpdate, TimeoutError } from '@hotweights/core';
import { Exchange } from './exchange.js';
import { buildOffer, checkOffer, type Layout } from './offer.js';
import { type OptPolicy, policyFactors } from './opt-policy.js';

export interface TrainerAdapterOptions {
  /** The exchange directory the training process passed to `TrainerSwap(...)`. */
  readonly dir: string;
  /** hotweights rank of this worker: the buckets it consumed are the ones offered. */
  readonly rank?: number;
  /** Seconds the training process has to reach a step boundary and apply a commit (default 600). */
  readonly commitTimeoutS?: number;
  readonly policy?: OptPolicy;
  /** Factor on both moments under `attenuate` (0..1). */
  readonly attenuation?: number;
  /** How often the exchange directory is looked at while waiting (default 50 ms). */
  readonly pollMs?: number;
}

interface Ack {
  readonly txn: string | null;
  readonly ok: boolean;
  readonly code?: string;
  readonly error?: string;
  readonly tensors?: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** This process's pid namespace (`pid:[4026531836]`), or null where /proc does not say. */
function pidNamespace(): string | null {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return null;
  }
}

interface TrainerInfo {
  readonly pid: number;
  readonly pid_ns?: string | null;
}

/** False only when the training process is certainly gone: same pid namespace, no such pid. */
function trainerAlive(t: TrainerInfo): boolean {
  const ns = pidNamespace();
  if (ns === null || t.pid_ns !== ns) return true;
  return alive(t.pid);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class TrainerAdapter implements Adapter {
  readonly name = 'trainer';
  readonly exchange: Exchange;
  /** What the training process reported for the last commit. */
  lastAck: Ack | undefined;
  private readonly o: Required<Omit<TrainerAdapterOptions, 'dir'>>;
  private prepared: { version: string; txn: string } | null = null;

  constructor(options: TrainerAdapterOptions) {
    this.exchange = new Exchange(options.dir);
    this.o = {
      rank: options.rank ?? 0,
      commitTimeoutS: options.commitTimeoutS ?? 600,
      policy: options.policy ?? 'preserve',
      attenuation: options.attenuation ?? 1,
      pollMs: options.pollMs ?? 50,
    };
    policyFactors(this.o.policy, this.o.attenuation); // a bad policy fails here, not at commit
  }

  /** The training process's pid when one has attached (`TrainerSwap(dir)`) and is alive. */
  async trainer(): Promise<number | null> {
    const t = await this.exchange.read<TrainerInfo>('trainer');
    return t && trainerAlive(t) ? t.pid : null;
  }

  async currentVersion(): Promise<string | null> {
    return (await this.exchange.read<{ version: string }>('live'))?.version ?? null;
  }

  async previousVersion(): Promise<string | null> {
    return null;
  }

  async hasVersion(version: string): Promise<boolean> {
    return this.prepared?.version === version;
  }

  async prepare(update: AdapterUpdate): Promise<void> {
    const { plan } = update;
    await this.exchange.open();
    // A commit order left by a worker that died while waiting must never be applied to this offer.
    if (await this.exchange.take('commit', 'cancelled')) await this.exchange.remove('cancelled');
    const txn = `${plan.version}.${randomBytes(4).toString('hex')}`;
    const offer = buildOffer(plan, update.staging, this.o.rank, txn);
    const layout = await this.exchange.read<Layout>('layout');
    if (layout) checkOffer(offer, layout);
    await this.exchange.write('offer', offer);
    this.prepared = { version: plan.version, txn };
  }

  async commit(version: string): Promise<void> {
    const prepared = this.prepared;
    if (prepared?.version !== version) {
      throw new AdapterError(`cannot commit ${version}: it was not prepared by this adapter`);
    }
    this.prepared = null;
    const { txn } = prepared;
    await this.exchange.remove('ack');
    await this.exchange.write('commit', {
      schema: 'hotweights.trainer.commit',
      txn,
      version,
      policy: this.o.policy,
      attenuation: this.o.attenuation,
    });
    try {
      const ack = await this.awaitAck(txn, version);
      this.lastAck = ack;
      if (!ack.ok) {
        throw new AdapterError(
          `the training process refused ${version} (${ack.code ?? 'error'}): ${ack.error ?? 'no reason given'}`,
        );
      }
    } finally {
      await this.exchange.remove('ack');
      await this.exchange.remove('offer');
    }
  }

  private async awaitAck(txn: string, version: string): Promise<Ack> {
    const ms = this.o.commitTimeoutS * 1000;
    let deadline = Date.now() + ms;
    let claimed = false;
    for (;;) {
      const ack = await this.exchange.read<Ack>('ack');
      if (ack?.txn === txn) return ack;
      const pid = await this.exchange.read<TrainerInfo>('trainer');
      const gone = pid !== null && !trainerAlive(pid);
      if (Date.now() > deadline || gone) {
        const why = gone
          ? `the training process (pid ${pid?.pid}) is gone`
          : `the training process did not reach a step boundary within ${this.o.commitTimeoutS} s`;
        if (!claimed && (await this.exchange.take('commit', 'cancelled'))) {
          await this.exchange.remove('cancelled');
          const message = `${version} was not applied: ${why}; the commit is cancelled, nothing changed`;
          throw gone ? new AdapterError(message) : new TimeoutError(message);
        }
        if (claimed || gone) {
          throw new AdapterError(
            `${version}: ${why} after it started applying the update; its weights are unknown, restart it from a checkpoint`,
          );
        }
        // The training process claimed the commit just now: give the copy its own deadline.
        claimed = true;
        deadline = Date.now() + ms;
      }
      await sleep(this.o.pollMs);
    }
  }

  async abort(version: string): Promise<void> {
    if (this.prepared?.version !== version) return;
    this.prepared = null;
    await this.exchange.remove('offer');
  }

  async rollback(): Promise<string> {
    throw new AdapterError(
      'the trainer adapter keeps no previous version: optimizer state cannot be put back, so publish ' +
        'the previous weights as a new version instead',
    );
  }
}
