/**
 * Damage to a binary manifest's stored bytes (manifest_version 3: a 16-byte prefix, the header JSON
 * in a space of its own, then the columns), for the tests of what loading refuses. Every helper
 * returns a changed copy.
 */

// biome-ignore lint/suspicious/noExplicitAny: the tests read and damage the raw header's fields
export type BinaryHeader = any;

/** The header JSON of a binary manifest. */
export function binaryHeader(bytes: Buffer): BinaryHeader {
  return JSON.parse(bytes.subarray(16, 16 + bytes.readUInt32LE(8)).toString('utf8'));
}

/** A copy with one stored column changed in place. */
export function withColumn(bytes: Buffer, name: string, change: (col: Buffer) => void): Buffer {
  const out = Buffer.from(bytes);
  const [at, len] = binaryHeader(out).columns[name] as [number, number];
  change(out.subarray(at, at + len));
  return out;
}

/** A copy with its header rewritten, padded with spaces so the columns stay where they are. */
export function withHeader(bytes: Buffer, change: (h: BinaryHeader) => void): Buffer {
  const out = Buffer.from(bytes);
  const space = out.readUInt32LE(8);
  const h = binaryHeader(out);
  change(h);
  const text = Buffer.from(JSON.stringify(h), 'utf8');
  if (text.length > space) throw new Error('test header grew past its space');
  out.fill(0x20, 16, 16 + space);
  text.copy(out, 16);
  return out;
}
