/**
 * Named errors. Every failure a user can cause or observe is a HotweightsError with a stable
 * `code`; the CLI prints `message` as one line and exits non-zero. `cause` carries the
 * underlying error for --debug.
 *
 * Recognise errors with `isHotweightsError`, `hasErrorCode` and `isErrorKind`, never with
 * `instanceof`: an application can hold two copies of @hotweights/core (its own and a plugin's),
 * and an error made by one copy is not an instance of the other's classes. Every error carries a
 * brand under `Symbol.for('hotweights.error')` (the same symbol in every copy) that lists the
 * classes it was made from.
 */

/** The brand's key; `Symbol.for` gives every copy of this module the same symbol. */
export const ERROR_BRAND: unique symbol = Symbol.for('hotweights.error');

export type ConfigErrorCode = 'HW_CONFIG';
export type SchemaErrorCode = 'HW_SCHEMA';
export type CheckpointErrorCode = 'HW_CHECKPOINT';
export type PathEscapeErrorCode = 'HW_PATH_ESCAPE';
export type PlanVerificationErrorCode = 'HW_PLAN_INVALID';
/** `HW_TIMEOUT`: peers did not show up in time; `HW_ABORTED`: the caller's signal stopped a transfer. */
export type TransportErrorCode =
  | 'HW_TRANSPORT'
  | 'HW_TRANSPORT_INVALID'
  | 'HW_TRANSPORT_HANDLE'
  | 'HW_NO_TRANSPORT'
  | 'HW_TIMEOUT'
  | 'HW_ABORTED';
export type VerificationErrorCode = 'HW_VERIFY';
export type StagingErrorCode = 'HW_STAGING' | 'HW_STAGING_NO_SPACE';
export type CommitErrorCode = 'HW_COMMIT';
/** `HW_ADAPTER_FOREIGN`: the target holds something the adapter did not make and will not touch. */
export type AdapterErrorCode = 'HW_ADAPTER' | 'HW_ADAPTER_INVALID' | 'HW_NO_ADAPTER' | 'HW_ADAPTER_FOREIGN';
/** The coordinator's wire codes (its ERROR_CODES and client-side ones) and a call's timeout. */
export type CoordinatorErrorCode = `HW_COORD_${string}` | 'HW_TIMEOUT';
export type TimeoutErrorCode = 'HW_TIMEOUT';
/** Codes thrown as a plain HotweightsError (no subclass of their own). */
export type GeneralErrorCode =
  | 'HW_NOT_FOUND'
  | 'HW_INTERNAL'
  | 'HW_STATE'
  | 'HW_WRITE'
  | 'HW_OUTPUT_IN_CHECKPOINT'
  | 'HW_ABORTED'
  | 'HW_METRICS_PORT'
  | 'HW_COMPLIANCE'
  /** A command, flag or variable of the seed documents that this design replaced (says with what). */
  | 'HW_REPLACED';

export type ErrorCode =
  | ConfigErrorCode
  | SchemaErrorCode
  | CheckpointErrorCode
  | PathEscapeErrorCode
  | PlanVerificationErrorCode
  | TransportErrorCode
  | VerificationErrorCode
  | StagingErrorCode
  | CommitErrorCode
  | AdapterErrorCode
  | CoordinatorErrorCode
  | TimeoutErrorCode
  | GeneralErrorCode;

interface ErrorOptions {
  cause?: unknown;
  details?: Record<string, unknown>;
}

export class HotweightsError extends Error {
  readonly code: ErrorCode;
  /** Extra structured context (file, field, rank, …) for --json output and logs. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
    // The classes this error was made from, most specific first: what isErrorKind reads.
    const kinds: string[] = [];
    for (let c: unknown = new.target; typeof c === 'function' && c !== Error; c = Object.getPrototypeOf(c))
      kinds.push((c as { name: string }).name);
    Object.defineProperty(this, ERROR_BRAND, { value: Object.freeze(kinds), enumerable: false });
  }
}

/** A HOTWEIGHTS_* variable or a CLI flag has a value we cannot use. */
export class ConfigError extends HotweightsError {
  declare readonly code: ConfigErrorCode;
  constructor(message: string, options: ErrorOptions = {}) {
    super('HW_CONFIG', message, options);
  }
}

/** A manifest, plan or other input document violates its schema. */
export class SchemaError extends HotweightsError {
  declare readonly code: SchemaErrorCode;
  readonly file: string | undefined;
  readonly field: string;
  readonly expected: string;
  constructor(args: { file?: string; field: string; expected: string; got?: string; cause?: unknown }) {
    const where = args.file ? `${args.file}: ` : '';
    const got = args.got === undefined ? '' : ` (got ${args.got})`;
    super('HW_SCHEMA', `${where}${args.field}: expected ${args.expected}${got}`, {
      cause: args.cause,
      details: { file: args.file, field: args.field, expected: args.expected, got: args.got },
    });
    this.file = args.file;
    this.field = args.field;
    this.expected = args.expected;
  }
}

/** A checkpoint file (safetensors or other) cannot be read or is malformed. */
export class CheckpointError extends HotweightsError {
  declare readonly code: CheckpointErrorCode;
  constructor(message: string, options: ErrorOptions = {}) {
    super('HW_CHECKPOINT', message, options);
  }
}

/** A path would leave the checkpoint or target root. */
export class PathEscapeError extends HotweightsError {
  declare readonly code: PathEscapeErrorCode;
  constructor(path: string, root: string, options: { cause?: unknown } = {}) {
    super('HW_PATH_ESCAPE', `path ${JSON.stringify(path)} escapes the root ${root}`, {
      ...options,
      details: { path, root },
    });
  }
}

/** Plan verification found problems (used with --strict). */
export class PlanVerificationError extends HotweightsError {
  declare readonly code: PlanVerificationErrorCode;
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(
      'HW_PLAN_INVALID',
      `plan verification failed: ${problems.length} problem(s); first: ${problems[0]}`,
      {
        details: { problems },
      },
    );
    this.problems = problems;
  }
}

/** Transport discovery, probing, selection or operation failed. */
export class TransportError extends HotweightsError {
  declare readonly code: TransportErrorCode;
  constructor(message: string, options: ErrorOptions & { code?: TransportErrorCode } = {}) {
    super(options.code ?? 'HW_TRANSPORT', message, options);
  }
}

/** No transport matches the request; `reasons` holds every candidate's reason. */
export class NoTransportError extends TransportError {
  readonly reasons: Readonly<Record<string, string>>;
  constructor(message: string, reasons: Record<string, string>) {
    super(`${message}${listReasons(reasons)}`, { code: 'HW_NO_TRANSPORT', details: { reasons } });
    this.reasons = Object.freeze({ ...reasons });
  }
}

/** ` (name: reason; …)`, or nothing when there are no candidates. */
function listReasons(reasons: Record<string, string>): string {
  const list = Object.entries(reasons)
    .map(([name, reason]) => `${name}: ${reason}`)
    .join('; ');
  return list ? ` (${list})` : '';
}

/** Staged bytes do not match the plan (hash mismatch, missing bucket, size mismatch). */
export class VerificationError extends HotweightsError {
  declare readonly code: VerificationErrorCode;
  constructor(message: string, options: ErrorOptions = {}) {
    super('HW_VERIFY', message, options);
  }
}

/** Staging (shared memory, device buffers) could not be allocated or used. */
export class StagingError extends HotweightsError {
  declare readonly code: StagingErrorCode;
  constructor(message: string, options: ErrorOptions & { code?: StagingErrorCode } = {}) {
    super(options.code ?? 'HW_STAGING', message, options);
  }
}

/** An update could not be committed; live weights were left untouched. */
export class CommitError extends HotweightsError {
  declare readonly code: CommitErrorCode;
  constructor(message: string, options: ErrorOptions = {}) {
    super('HW_COMMIT', message, options);
  }
}

/** An adapter failed to apply, commit or roll back a version, or could not be found or made. */
export class AdapterError extends HotweightsError {
  declare readonly code: AdapterErrorCode;
  constructor(message: string, options: ErrorOptions & { code?: AdapterErrorCode } = {}) {
    super(options.code ?? 'HW_ADAPTER', message, options);
  }
}

/** No adapter matches the request; `reasons` holds every candidate's reason. */
export class NoAdapterError extends AdapterError {
  readonly reasons: Readonly<Record<string, string>>;
  constructor(message: string, reasons: Record<string, string>) {
    super(`${message}${listReasons(reasons)}`, { code: 'HW_NO_ADAPTER', details: { reasons } });
    this.reasons = Object.freeze({ ...reasons });
  }
}

/** The control plane refused a request or could not be reached. */
export class CoordinatorError extends HotweightsError {
  declare readonly code: CoordinatorErrorCode;
  /** `code` comes from the wire too (a reply's error), so any string is taken as given. */
  constructor(code: CoordinatorErrorCode | (string & {}), message: string, options: ErrorOptions = {}) {
    super(code as CoordinatorErrorCode, message, options);
  }
}

/** An operation did not finish within its deadline. */
export class TimeoutError extends HotweightsError {
  declare readonly code: TimeoutErrorCode;
  constructor(message: string, options: ErrorOptions = {}) {
    super('HW_TIMEOUT', message, options);
  }
}

/** Every named error class by name: what `isErrorKind` can test for. */
export interface ErrorKinds {
  HotweightsError: HotweightsError;
  ConfigError: ConfigError;
  SchemaError: SchemaError;
  CheckpointError: CheckpointError;
  PathEscapeError: PathEscapeError;
  PlanVerificationError: PlanVerificationError;
  TransportError: TransportError;
  NoTransportError: NoTransportError;
  VerificationError: VerificationError;
  StagingError: StagingError;
  CommitError: CommitError;
  AdapterError: AdapterError;
  NoAdapterError: NoAdapterError;
  CoordinatorError: CoordinatorError;
  TimeoutError: TimeoutError;
}

function brandOf(err: unknown): readonly string[] | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const brand = (err as { [ERROR_BRAND]?: unknown })[ERROR_BRAND];
  return Array.isArray(brand) && typeof (err as { code?: unknown }).code === 'string' ? brand : undefined;
}

/** True for an error made by any copy of @hotweights/core. */
export function isHotweightsError(err: unknown): err is HotweightsError {
  return brandOf(err) !== undefined;
}

/** True when `err` was made (by any copy of core) from the named class or a subclass of it. */
export function isErrorKind<K extends keyof ErrorKinds>(err: unknown, kind: K): err is ErrorKinds[K] {
  return brandOf(err)?.includes(kind) === true;
}

/** True when `err` is a hotweights error (from any copy of core) with one of these codes. */
export function hasErrorCode<C extends ErrorCode>(
  err: unknown,
  ...codes: C[]
): err is HotweightsError & { code: C } {
  return isHotweightsError(err) && (codes as string[]).includes(err.code);
}
