/**
 * Small structural checks for JSON documents. Each failure is a SchemaError naming the file, the
 * field path (`buckets[3].items[0].nbytes`) and what was expected. Hand-written rather than a
 * schema library: the documents are few, and loading a plan must stay fast and dependency-free.
 */
import { SchemaError } from '@hotweights/core';

export type JsonObject = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return 'an object';
  return String(value);
}

export class SchemaChecker {
  constructor(readonly file: string | undefined) {}

  fail(field: string, expected: string, ...value: [unknown?]): never {
    throw new SchemaError({
      file: this.file,
      field,
      expected,
      got: value.length > 0 ? describe(value[0]) : undefined,
    });
  }

  object(value: unknown, field: string): JsonObject {
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      this.fail(field, 'an object', value);
    return value as JsonObject;
  }

  array(value: unknown, field: string): unknown[] {
    if (!Array.isArray(value)) this.fail(field, 'an array', value);
    return value;
  }

  string(value: unknown, field: string, opts: { nonEmpty?: boolean } = {}): string {
    if (typeof value !== 'string') this.fail(field, 'a string', value);
    if (opts.nonEmpty && value.length === 0) this.fail(field, 'a non-empty string', value);
    return value;
  }

  nullableString(value: unknown, field: string): string | null {
    return value === null || value === undefined ? null : this.string(value, field);
  }

  /** A non-negative safe integer (byte counts, offsets, ranks). */
  count(value: unknown, field: string, opts: { min?: number } = {}): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < (opts.min ?? 0)) {
      this.fail(field, `an integer >= ${opts.min ?? 0}`, value);
    }
    return value;
  }

  literal<T extends string | number>(value: unknown, field: string, expected: T): T {
    if (value !== expected) this.fail(field, JSON.stringify(expected), value);
    return expected;
  }

  oneOf<T extends string>(value: unknown, field: string, allowed: readonly T[]): T {
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      this.fail(field, `one of ${allowed.join(', ')}`, value);
    }
    return value as T;
  }

  /** `<algo>:<hex>` as written by the planner. */
  hash(value: unknown, field: string): string {
    const s = this.string(value, field);
    if (!/^[a-z0-9-]+:[0-9a-f]+$/.test(s)) this.fail(field, 'a hash "<algo>:<hex>"', value);
    return s;
  }

  /** A relative `/`-separated path that stays inside its root. */
  relativePath(value: unknown, field: string): string {
    const s = this.string(value, field, { nonEmpty: true });
    if (!isConfinedRelativePath(s)) this.fail(field, 'a relative path inside the checkpoint root', value);
    return s;
  }
}

/** True for `a/b.safetensors`; false for absolute paths, `..` segments, empty segments, NUL. */
export function isConfinedRelativePath(path: string): boolean {
  if (path.length === 0 || path.includes('\0') || path.includes('\\')) return false;
  if (path.startsWith('/')) return false;
  return path.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

/** JSON with object keys sorted, no whitespace: the form digests are computed over. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const obj = value as JsonObject;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}
