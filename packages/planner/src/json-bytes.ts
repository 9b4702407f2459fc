/**
 * A growable byte buffer that JSON text is written into directly: plain ASCII strings and integers
 * go in byte by byte, with no intermediate JS string per value. Node's JSON.stringify and string
 * building run at ~100 MB/s on this class of machine; a million-item plan's worth of text written
 * this way costs a fraction of that, and gives the GC nothing to collect.
 */
import { Buffer } from 'node:buffer';

/** Buffer's native UTF-8 writer: what buf.write(s, at, 'utf8') calls after parsing its arguments. */
interface Utf8Writer {
  utf8Write(s: string, offset: number): number;
}

const HEX = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

export class JsonBytes {
  private buf: Buffer;
  length = 0;

  constructor(capacity = 1 << 16) {
    this.buf = Buffer.allocUnsafe(Math.max(64, capacity));
  }

  private grow(need: number): void {
    let cap = this.buf.length * 2;
    while (cap < this.length + need) cap *= 2;
    const next = Buffer.allocUnsafe(cap);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  /** Makes room for `need` more bytes after `length` (the buffer may be replaced). */
  reserve(need: number): void {
    if (this.length + need > this.buf.length) this.grow(need);
  }

  /**
   * The whole underlying buffer, for a writer that fills it from `length` on and then sets
   * `length` (valid until the next write or reserve).
   */
  get buffer(): Buffer {
    return this.buf;
  }

  /** A string known to need no escaping (keys, punctuation). */
  raw(s: string): void {
    const n = s.length;
    if (this.length + n > this.buf.length) this.grow(n);
    const b = this.buf;
    let at = this.length;
    for (let k = 0; k < n; k++) b[at++] = s.charCodeAt(k);
    this.length = at;
  }

  /** Short pre-encoded bytes [start, end), copied in JS (a native call costs more than a few dozen bytes). */
  copy(src: Uint8Array, start = 0, end = src.length): void {
    const n = end - start;
    if (this.length + n > this.buf.length) this.grow(n);
    const b = this.buf;
    let at = this.length;
    for (let k = start; k < end; k++) b[at++] = src[k] as number;
    this.length = at;
  }

  /**
   * Characters [start, end) of a flat string, when all are plain printable ASCII (no escaping);
   * returns false, writing nothing, otherwise.
   */
  plain(text: string, start: number, end: number): boolean {
    const n = end - start;
    if (this.length + n > this.buf.length) this.grow(n);
    const b = this.buf;
    let at = this.length;
    for (let k = start; k < end; k++) {
      const ch = text.charCodeAt(k);
      if (ch < 0x20 || ch === 0x22 || ch === 0x5c || ch > 0x7e) return false;
      b[at++] = ch;
    }
    this.length = at;
    return true;
  }

  /** As plain(), over ASCII bytes. */
  plainBytes(src: Uint8Array, start: number, end: number): boolean {
    const n = end - start;
    if (this.length + n > this.buf.length) this.grow(n);
    const b = this.buf;
    let at = this.length;
    for (let k = start; k < end; k++) {
      const ch = src[k] as number;
      if (ch < 0x20 || ch === 0x22 || ch === 0x5c || ch > 0x7e) return false;
      b[at++] = ch;
    }
    this.length = at;
    return true;
  }

  /** Lowercase hex of bytes [start, end). */
  hex(src: Uint8Array, start: number, end: number): void {
    const n = 2 * (end - start);
    if (this.length + n > this.buf.length) this.grow(n);
    const b = this.buf;
    let at = this.length;
    for (let k = start; k < end; k++) {
      const v = src[k] as number;
      b[at++] = HEX[v >> 4] as number;
      b[at++] = HEX[v & 15] as number;
    }
    this.length = at;
  }

  /** Bytes [start, end) of another writer, copied in JS. */
  from(other: JsonBytes, start: number, end: number): void {
    const n = end - start;
    if (this.length + n > this.buf.length) this.grow(n);
    const b = this.buf;
    const src = other.buf;
    let at = this.length;
    for (let k = start; k < end; k++) b[at++] = src[k] as number;
    this.length = at;
  }

  /** Bytes as they are. */
  bytes(src: Uint8Array, start = 0, end = src.length): void {
    const n = end - start;
    if (this.length + n > this.buf.length) this.grow(n);
    this.buf.set(src.subarray(start, end), this.length);
    this.length += n;
  }

  /** A JSON string, exactly as JSON.stringify writes it (UTF-8). */
  str(s: string): void {
    const n = s.length;
    if (this.length + 3 * n + 2 > this.buf.length) this.grow(3 * n + 2);
    const b = this.buf;
    const start = this.length;
    b[start] = 0x22;
    // One native UTF-8 write (cheaper than a JS loop over a string of any representation), then
    // a byte scan: anything JSON escapes, or any non-ASCII byte, takes the JSON.stringify path.
    const end = start + 1 + (b as unknown as Utf8Writer).utf8Write(s, start + 1);
    for (let k = start + 1; k < end; k++) {
      const ch = b[k] as number;
      if (ch < 0x20 || ch === 0x22 || ch === 0x5c || ch > 0x7e) {
        this.encoded(JSON.stringify(s));
        return;
      }
    }
    b[end] = 0x22;
    this.length = end + 1;
  }

  private encoded(json: string): void {
    const n = Buffer.byteLength(json, 'utf8');
    if (this.length + n > this.buf.length) this.grow(n);
    this.length += this.buf.write(json, this.length, 'utf8');
  }

  /** A number as JSON.stringify writes it (digits by hand for the usual non-negative integers). */
  num(v: number): void {
    if (!(v >= 0 && v <= 0xffffffff && Math.floor(v) === v)) {
      if (Number.isSafeInteger(v) && v > 0) {
        // Split so each half is exact in 32-bit arithmetic.
        const hi = Math.floor(v / 1e9);
        const lo = v - hi * 1e9;
        this.num(hi);
        const s = String(lo);
        this.raw('000000000'.slice(s.length));
        this.raw(s);
        return;
      }
      this.raw(JSON.stringify(v));
      return;
    }
    if (this.length + 10 > this.buf.length) this.grow(10);
    const b = this.buf;
    let x = v >>> 0;
    let digits = 1;
    for (let t = x; t >= 10; t = (t / 10) >>> 0) digits++;
    let at = this.length + digits;
    this.length = at;
    do {
      const q = (x / 10) >>> 0;
      b[--at] = 0x30 + x - q * 10;
      x = q;
    } while (x > 0);
  }

  /** `[a,b,c]` of numbers, or null. */
  nums(a: readonly number[] | null): void {
    if (a === null) {
      this.raw('null');
      return;
    }
    this.raw('[');
    for (let k = 0; k < a.length; k++) {
      if (k) this.raw(',');
      this.num(a[k] as number);
    }
    this.raw(']');
  }

  /** The bytes written so far (a view). */
  view(start = 0, end = this.length): Buffer {
    return this.buf.subarray(start, end);
  }
}
