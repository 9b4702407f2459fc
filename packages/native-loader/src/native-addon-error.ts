/**
 * The one error a failed addon load raises. It carries everything a user needs to act: every
 * place that was searched, the platform, architecture and Node ABI the search was for, the
 * underlying error, and the fix, all in `message` (one line, as the CLI prints errors) and as
 * fields for `--json` output. Recognised by `code` (two copies of this package in one app still
 * recognise each other's errors); there is no dependency on @hotweights/core, whose errors
 * follow the same shape.
 */

/**
 * - `HW_NATIVE_ADDON_MISSING`: no build and no prebuild for this platform was found.
 * - `HW_NATIVE_ADDON_UNLOADABLE`: a file was found but the dynamic loader refused it (a missing
 *   system library, another platform's or Node's build, a damaged file).
 * - `HW_NATIVE_ADDON_INCOMPLETE`: it loaded but lacks functions this package calls (a build older
 *   than the package's JavaScript).
 */
export type NativeAddonErrorCode =
  | 'HW_NATIVE_ADDON_MISSING'
  | 'HW_NATIVE_ADDON_UNLOADABLE'
  | 'HW_NATIVE_ADDON_INCOMPLETE';

/** What the search was for: a prebuild must match platform and arch (and N-API, or else ABI). */
export interface AddonTarget {
  readonly platform: string;
  readonly arch: string;
  readonly node: string;
  /** NODE_MODULE_VERSION, which a non-N-API build must match. */
  readonly abi: string;
  readonly napi: string;
}

export interface NativeAddonErrorDetails {
  readonly code: NativeAddonErrorCode;
  /** The npm package whose addon failed, e.g. `@hotweights/shm`. */
  readonly packageName: string;
  /** Every directory searched, in order. */
  readonly tried: readonly string[];
  /** The addon file found, when one was (UNLOADABLE, INCOMPLETE). */
  readonly file?: string;
  readonly target: AddonTarget;
  /** What went wrong, in a few words (`no build found`, `libfoo.so.1 is not installed`, …). */
  readonly problem: string;
  /** What to do about it, as a sentence. */
  readonly fix: string;
  readonly cause?: unknown;
}

export class NativeAddonError extends Error {
  readonly code: NativeAddonErrorCode;
  readonly packageName: string;
  readonly tried: readonly string[];
  readonly file: string | undefined;
  readonly target: AddonTarget;
  readonly problem: string;
  readonly fix: string;

  constructor(d: NativeAddonErrorDetails) {
    const t = d.target;
    const where = d.file ? `${d.file}: ` : '';
    super(
      `${d.packageName}: native addon not loadable on ${t.platform}-${t.arch} (Node ${t.node}, ABI ${t.abi}, ` +
        `N-API ${t.napi}): ${where}${d.problem}; looked in ${d.tried.join(', ')}; fix: ${d.fix}`,
      d.cause === undefined ? undefined : { cause: d.cause },
    );
    this.name = 'NativeAddonError';
    this.code = d.code;
    this.packageName = d.packageName;
    this.tried = d.tried;
    this.file = d.file;
    this.target = d.target;
    this.problem = d.problem;
    this.fix = d.fix;
  }
}

/** True for a NativeAddonError from any copy of this package. */
export function isNativeAddonError(err: unknown): err is NativeAddonError {
  const code: unknown = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && code.startsWith('HW_NATIVE_ADDON_');
}
