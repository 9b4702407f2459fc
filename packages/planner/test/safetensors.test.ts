import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '@hotweights/core';
import { readSafetensorsHeader, writeSafetensors } from '@hotweights/planner';
import { afterAll, describe, expect, it } from 'vitest';
import { python, tempDir, tensor } from './fixtures.js';

const tmp = tempDir('st');
afterAll(tmp.cleanup);

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** Writes a raw safetensors file from a header object and a data buffer. */
function rawFile(
  name: string,
  header: unknown,
  data: Uint8Array,
  opts: { headerText?: string; len?: bigint } = {},
) {
  const json = Buffer.from(opts.headerText ?? JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.len ?? BigInt(json.length));
  const path = join(tmp.path, name);
  writeFileSync(path, Buffer.concat([len, json, data]));
  return path;
}

describe('writeSafetensors', () => {
  it('writes files that Python safetensors/torch load with the exact bytes (bf16, f16, f32, i64, empty, scalar)', async () => {
    const tensors = {
      'model.embed.weight': tensor('BF16', [4, 3], 1, 2),
      'model.norm.weight': tensor('F16', [5], 2, 2),
      'lm_head.weight': tensor('F32', [2, 2, 2], 3, 4),
      step: tensor('I64', [3], 4, 8),
      empty: tensor('F32', [0, 7], 5, 4),
      scalar: tensor('F32', [], 6, 4),
    };
    const path = join(tmp.path, 'w.safetensors');
    await writeSafetensors(path, tensors, { format: 'pt', note: 'ünïcode' });
    const out = python(
      `
import sys, json, hashlib, torch
from safetensors import safe_open
from safetensors.torch import load_file
t = load_file(sys.argv[1])
res = {k: [str(v.dtype), list(v.shape), hashlib.sha256(v.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes() if v.numel() else b'').hexdigest()] for k, v in t.items()}
with safe_open(sys.argv[1], 'pt') as f:
    res['__metadata__'] = f.metadata()
print(json.dumps(res))
`,
      [path],
    );
    const res = JSON.parse(out);
    expect(res['model.embed.weight']).toEqual([
      'torch.bfloat16',
      [4, 3],
      sha(tensors['model.embed.weight'].data),
    ]);
    expect(res['model.norm.weight']).toEqual(['torch.float16', [5], sha(tensors['model.norm.weight'].data)]);
    expect(res['lm_head.weight']).toEqual(['torch.float32', [2, 2, 2], sha(tensors['lm_head.weight'].data)]);
    expect(res.step).toEqual(['torch.int64', [3], sha(tensors.step.data)]);
    expect(res.empty).toEqual(['torch.float32', [0, 7], sha(new Uint8Array())]);
    expect(res.scalar).toEqual(['torch.float32', [], sha(tensors.scalar.data)]);
    expect(res.__metadata__).toEqual({ format: 'pt', note: 'ünïcode' });
    // the data sits exactly where the header says
    const h = await readSafetensorsHeader(path);
    const file = readFileSync(path);
    expect(h.headerBytes % 8).toBe(0);
    for (const t of h.tensors) {
      const data = tensors[t.name as keyof typeof tensors].data;
      expect(sha(file.subarray(t.fileOffset, t.fileOffset + t.nbytes))).toBe(sha(data));
    }
    expect(h.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
  });

  it('rejects data that does not match shape × dtype and leaves no file behind', async () => {
    const path = join(tmp.path, 'bad-write.safetensors');
    await expect(
      writeSafetensors(path, { x: { dtype: 'F32', shape: [3], data: new Uint8Array(8) } }),
    ).rejects.toThrowError(/tensor "x": shape \[3\] × F32 needs 12 bytes, got 8/);
    await expect(
      writeSafetensors(path, { x: { dtype: 'F12', shape: [1], data: new Uint8Array(1) } }),
    ).rejects.toThrowError(/unknown dtype F12/);
    expect(readdirSync(tmp.path).filter((n) => n.includes('bad-write'))).toEqual([]);
  });
});

describe('readSafetensorsHeader', () => {
  it('reads a file written by Python safetensors', async () => {
    const path = join(tmp.path, 'py.safetensors');
    python(
      `
import sys, torch
from safetensors.torch import save_file
save_file({'a': torch.arange(6, dtype=torch.float32).reshape(2, 3), 'b': torch.ones(4, dtype=torch.bfloat16), 'c': torch.tensor([7], dtype=torch.int64)}, sys.argv[1], metadata={'format': 'pt'})
`,
      [path],
    );
    const h = await readSafetensorsHeader(path);
    expect(h.tensors.map((t) => [t.name, t.dtype, t.shape, t.nbytes]).sort()).toEqual(
      [
        ['a', 'F32', [2, 3], 24],
        ['b', 'BF16', [4], 8],
        ['c', 'I64', [1], 8],
      ].sort(),
    );
    const file = readFileSync(path);
    const a = h.tensors.find((t) => t.name === 'a');
    expect(a).toBeDefined();
    if (a)
      expect([
        ...new Float32Array(
          file.buffer.slice(file.byteOffset + a.fileOffset, file.byteOffset + a.fileOffset + 24),
        ),
      ]).toEqual([0, 1, 2, 3, 4, 5]);
  });

  const good = {
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'I64', shape: [1], data_offsets: [8, 16] },
  };
  const cases: [string, () => string, RegExp][] = [
    [
      'a file shorter than 8 bytes',
      () => {
        const p = join(tmp.path, 'tiny.safetensors');
        writeFileSync(p, Buffer.from([1, 2, 3]));
        return p;
      },
      /tiny\.safetensors: not a valid safetensors file: file is 3 bytes/,
    ],
    [
      'an absurd header length',
      () => rawFile('huge.safetensors', good, new Uint8Array(16), { len: 1n << 40n }),
      /huge\.safetensors: .*header length 1099511627776 exceeds/,
    ],
    [
      'a header length past the end (truncated)',
      () => rawFile('trunc-h.safetensors', good, new Uint8Array(0), { len: 5000n }),
      /trunc-h\.safetensors: .*past the end of the/,
    ],
    [
      'a header that is not JSON',
      () => rawFile('nojson.safetensors', null, new Uint8Array(16), { headerText: '{"a": [1, 2' }),
      /nojson\.safetensors: .*header is not valid UTF-8 JSON/,
    ],
    [
      'a header that is not an object',
      () => rawFile('arr.safetensors', [1, 2], new Uint8Array(0)),
      /arr\.safetensors: .*header is not a JSON object/,
    ],
    [
      'an unknown dtype',
      () =>
        rawFile(
          'dt.safetensors',
          { a: { dtype: 'F7', shape: [1], data_offsets: [0, 1] } },
          new Uint8Array(1),
        ),
      /dt\.safetensors: .*tensor "a": unknown dtype "F7"/,
    ],
    [
      'shape × dtype not matching the byte length',
      () =>
        rawFile(
          'shape.safetensors',
          { a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } },
          new Uint8Array(8),
        ),
      /shape\.safetensors: .*shape \[3\] × F32 is 12 bytes but data_offsets span 8/,
    ],
    [
      'offsets past the end (truncated data)',
      () => {
        const p = rawFile('trunc-d.safetensors', good, new Uint8Array(16));
        truncateSync(p, readFileSync(p).length - 4);
        return p;
      },
      /trunc-d\.safetensors: .*tensor "b": data_offsets end 16 is past the end of the data \(12 bytes/,
    ],
    [
      'overlapping tensors',
      () =>
        rawFile(
          'overlap.safetensors',
          {
            a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
            b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
          },
          new Uint8Array(12),
        ),
      /overlap\.safetensors: .*tensor "b" overlaps the previous tensor/,
    ],
    [
      'a hole between tensors',
      () =>
        rawFile(
          'hole.safetensors',
          {
            a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
            b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
          },
          new Uint8Array(12),
        ),
      /hole\.safetensors: .*4 unused bytes before tensor "b"/,
    ],
    [
      'trailing bytes',
      () => rawFile('tail.safetensors', good, new Uint8Array(20)),
      /tail\.safetensors: .*4 bytes after the last tensor/,
    ],
    [
      'bad data_offsets',
      () =>
        rawFile(
          'offs.safetensors',
          { a: { dtype: 'F32', shape: [1], data_offsets: [4, 0] } },
          new Uint8Array(4),
        ),
      /offs\.safetensors: .*data_offsets must be \[begin, end\]/,
    ],
  ];
  for (const [name, make, re] of cases) {
    it(`rejects ${name}, naming the file`, async () => {
      const path = make();
      const err = await readSafetensorsHeader(path).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CheckpointError);
      expect((err as Error).message).toMatch(re);
    });
  }
});
