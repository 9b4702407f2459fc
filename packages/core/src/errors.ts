/**
 * Named errors. Every failure a user can cause or observe is a HotweightsError with a stable
 * `code`; the CLI prints `message` as one line and exits non-zero. `cause` carries the
 * underlying error for --debug.
 */
export class HotweightsError extends Error {
  readonly code: string;
  /** Extra structured context (file, field, rank, …) for --json output and logs. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: string,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }
}

/** A HOTWEIGHTS_* variable or a CLI flag has a value we cannot use. */
export class ConfigError extends HotweightsError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('HW_CONFIG', message, options);
  }
}

/** A manifest, plan or other input document violates its schema. */
export class SchemaError extends HotweightsError {
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
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('HW_CHECKPOINT', message, options);
  }
}

/** A path would leave the checkpoint or target root. */
export class PathEscapeError extends HotweightsError {
  constructor(path: string, root: string, options: { cause?: unknown } = {}) {
    super('HW_PATH_ESCAPE', `path ${JSON.stringify(path)} escapes the root ${root}`, {
      ...options,
      details: { path, root },
    });
  }
}

/** Plan verification found problems (used with --strict). */
export class PlanVerificationError extends HotweightsError {
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
  constructor(
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown>; code?: string } = {},
  ) {
    super(options.code ?? 'HW_TRANSPORT', message, options);
  }
}

/** No transport matches the request; `reasons` holds every candidate's reason. */
export class NoTransportError extends TransportError {
  readonly reasons: Readonly<Record<string, string>>;
  constructor(message: string, reasons: Record<string, string>) {
    const list = Object.entries(reasons)
      .map(([name, reason]) => `${name}: ${reason}`)
      .join('; ');
    super(`${message}${list ? ` (${list})` : ''}`, { code: 'HW_NO_TRANSPORT', details: { reasons } });
    this.reasons = Object.freeze({ ...reasons });
  }
}

/** Staged bytes do not match the plan (hash mismatch, missing bucket, size mismatch). */
export class VerificationError extends HotweightsError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('HW_VERIFY', message, options);
  }
}

/** Staging (shared memory, device buffers) could not be allocated or used. */
export class StagingError extends HotweightsError {
  constructor(
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown>; code?: string } = {},
  ) {
    super(options.code ?? 'HW_STAGING', message, options);
  }
}

/** An update could not be committed; live weights were left untouched. */
export class CommitError extends HotweightsError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('HW_COMMIT', message, options);
  }
}

/** An adapter failed to apply, commit or roll back a version. */
export class AdapterError extends HotweightsError {
  constructor(
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown>; code?: string } = {},
  ) {
    super(options.code ?? 'HW_ADAPTER', message, options);
  }
}

/** The control plane refused a request or could not be reached. */
export class CoordinatorError extends HotweightsError {
  constructor(
    code: string,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(code, message, options);
  }
}

/** An operation did not finish within its deadline. */
export class TimeoutError extends HotweightsError {
  constructor(message: string, options: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super('HW_TIMEOUT', message, options);
  }
}

export function isHotweightsError(err: unknown): err is HotweightsError {
  return err instanceof HotweightsError;
}
