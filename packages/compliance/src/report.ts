/** The report and the check runner every compliance suite (transport, adapter) shares. */
import { HotweightsError } from '@hotweights/core';

export class ComplianceError extends HotweightsError {
  readonly failures: readonly ComplianceFailure[];
  constructor(subject: string, failures: readonly ComplianceFailure[]) {
    super(
      'HW_COMPLIANCE',
      `${subject}: ${failures.length} compliance check(s) failed: ${failures.map((f) => `${f.check}: ${f.error}`).join('; ')}`,
    );
    this.failures = failures;
  }
}

export interface ComplianceFailure {
  readonly check: string;
  readonly error: string;
}

export interface ComplianceReport {
  readonly passed: readonly string[];
  readonly failures: readonly ComplianceFailure[];
}

/** Runs named checks, keeping going after a failure, and reports them all at the end. */
export class Recorder {
  readonly passed: string[] = [];
  readonly failures: ComplianceFailure[] = [];
  async check(name: string, fn: () => Promise<void> | void): Promise<void> {
    try {
      await fn();
      this.passed.push(name);
    } catch (err) {
      this.failures.push({ check: name, error: (err as Error)?.message ?? String(err) });
    }
  }
  finish(subject: string): ComplianceReport {
    if (this.failures.length > 0) throw new ComplianceError(subject, this.failures);
    return { passed: this.passed, failures: [] };
  }
}

export function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}
