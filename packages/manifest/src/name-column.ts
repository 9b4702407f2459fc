/**
 * A column of names kept as one string plus start offsets, as the manifest stores them. Names are
 * sliced out only when asked for: comparing, hashing and indexing a million names works on the one
 * flat string, so loading a manifest allocates no string per entry (and gives the GC nothing to do).
 *
 * Names of a binary manifest that are all ASCII keep their bytes instead (`bytes`, where byte and
 * character offsets coincide): comparisons run on the bytes, several times faster than on a long
 * string, and the string is only decoded if a name is asked for.
 */
import { Buffer } from 'node:buffer';

export class NameColumn {
  readonly length: number;
  #text: string | undefined;
  /** The ASCII bytes as 32-bit words, for skipping equal runs four bytes at a time. */
  #words: DataView | undefined;

  /**
   * `starts` has length + 1 offsets into `text`; name i is text[starts[i], starts[i + 1]). With
   * `bytes` (ASCII only), `text` may be null: it is decoded from the bytes on first use.
   */
  constructor(
    text: string | null,
    readonly starts: Uint32Array,
    readonly bytes?: Uint8Array,
  ) {
    if (text === null && !bytes) throw new TypeError('NameColumn needs its text or its ASCII bytes');
    this.#text = text ?? undefined;
    this.#words = bytes ? new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength) : undefined;
    this.length = starts.length - 1;
  }

  /** All names, concatenated. */
  get text(): string {
    if (this.#text === undefined) {
      const b = this.bytes as Uint8Array;
      this.#text = Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1');
    }
    return this.#text;
  }

  static from(names: readonly string[]): NameColumn {
    const starts = new Uint32Array(names.length + 1);
    let at = 0;
    for (let i = 0; i < names.length; i++) {
      at += (names[i] as string).length;
      starts[i + 1] = at;
    }
    return new NameColumn(names.join(''), starts);
  }

  get(i: number): string {
    return this.text.slice(this.starts[i], this.starts[i + 1]);
  }

  lengthOf(i: number): number {
    return (this.starts[i + 1] as number) - (this.starts[i] as number);
  }

  /** Name lengths (UTF-16 units), as stored on disk. */
  lengths(): Uint32Array {
    const out = new Uint32Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.lengthOf(i);
    return out;
  }

  /** True when name i equals name j of `other`, without slicing either. */
  equals(i: number, other: NameColumn, j: number): boolean {
    const a = this.starts[i] as number;
    const b = other.starts[j] as number;
    const n = (this.starts[i + 1] as number) - a;
    if ((other.starts[j + 1] as number) - b !== n) return false;
    if (this.bytes && other.bytes) {
      const x = this.bytes;
      const y = other.bytes;
      for (let k = 0; k < n; k++) if (x[a + k] !== y[b + k]) return false;
      return true;
    }
    const x = this.text;
    const y = other.text;
    for (let k = 0; k < n; k++) if (x.charCodeAt(a + k) !== y.charCodeAt(b + k)) return false;
    return true;
  }

  /**
   * Order of name i against name j of `other`: negative, zero or positive, by UTF-16 code units
   * (the order of JS `<` on the sliced strings), without slicing either.
   */
  compare(i: number, other: NameColumn, j: number): number {
    const a = this.starts[i] as number;
    const b = other.starts[j] as number;
    const la = (this.starts[i + 1] as number) - a;
    const lb = (other.starts[j + 1] as number) - b;
    const n = la < lb ? la : lb;
    if (this.bytes && other.bytes) {
      // ASCII bytes: byte order is code unit order. Names in key order share long prefixes: skip
      // the equal part four bytes at a time, then find the first differing byte.
      const x = this.bytes;
      const y = other.bytes;
      const u = this.#words as DataView;
      const v = other.#words as DataView;
      let k = 0;
      while (k + 4 <= n && u.getUint32(a + k) === v.getUint32(b + k)) k += 4;
      for (; k < n; k++) {
        const d = (x[a + k] as number) - (y[b + k] as number);
        if (d !== 0) return d;
      }
      return la - lb;
    }
    const x = this.text;
    const y = other.text;
    for (let k = 0; k < n; k++) {
      const d = x.charCodeAt(a + k) - y.charCodeAt(b + k);
      if (d !== 0) return d;
    }
    return la - lb;
  }

  /** Order of name i against `name`, as compare(). */
  compareTo(i: number, name: string): number {
    const a = this.starts[i] as number;
    const la = (this.starts[i + 1] as number) - a;
    const n = la < name.length ? la : name.length;
    const x = this.text;
    for (let k = 0; k < n; k++) {
      const d = x.charCodeAt(a + k) - name.charCodeAt(k);
      if (d !== 0) return d;
    }
    return la - name.length;
  }

  /** Order of name i against the ASCII bytes of a name (a column with `bytes` only). */
  compareBytes(i: number, name: Uint8Array): number {
    const x = this.bytes as Uint8Array;
    const a = this.starts[i] as number;
    const la = (this.starts[i + 1] as number) - a;
    const n = la < name.length ? la : name.length;
    for (let k = 0; k < n; k++) {
      const d = (x[a + k] as number) - (name[k] as number);
      if (d !== 0) return d;
    }
    return la - name.length;
  }

  /** True when name i equals `name`. */
  is(i: number, name: string): boolean {
    const a = this.starts[i] as number;
    const n = (this.starts[i + 1] as number) - a;
    return n === name.length && this.text.startsWith(name, a);
  }

  /** True when both columns hold the same names in the same order. */
  sameAs(other: NameColumn): boolean {
    if (other === this) return true;
    if (other.length !== this.length) return false;
    if (this.bytes && other.bytes) {
      if (!bytesOf(this.bytes).equals(other.bytes)) return false;
    } else if (other.text !== this.text) return false;
    return bytesOf(this.starts).equals(bytesOf(other.starts));
  }

  /** FNV-1a of name i, seeded; equal to hashName(get(i), seed). */
  hash(i: number, seed: number): number {
    const x = this.text;
    let h = 0x811c9dc5 ^ seed;
    for (let k = this.starts[i] as number, end = this.starts[i + 1] as number; k < end; k++)
      h = Math.imul(h ^ x.charCodeAt(k), 16777619);
    return h >>> 0;
  }
}

/** The bytes of a typed array, as a Buffer (a view: compared natively, not element by element). */
function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** FNV-1a of a name, seeded; equal to NameColumn.hash for the same name. */
export function hashName(name: string, seed: number): number {
  let h = 0x811c9dc5 ^ seed;
  for (let k = 0; k < name.length; k++) h = Math.imul(h ^ name.charCodeAt(k), 16777619);
  return h >>> 0;
}
