import { ConfigError } from '@hotweights/core';
import { describe, expect, it } from 'vitest';
import { createContext } from '../src/context.js';
import { forcedTransport, transferArgs, withTransferOptions } from '../src/transfer-options.js';
import { runCli } from './run-cli.js';

describe('--window and --mpi-chunk-mb', () => {
  it('override the configured window and MPI chunk size, and nothing else', () => {
    const c = createContext({ HOTWEIGHTS_INFLIGHT_BUCKETS: '4', HOTWEIGHTS_MPI_CHUNK_MB: '16' });
    const tuned = withTransferOptions(c, { window: '2', mpiChunkMb: '0' });
    expect(tuned.config.inflightBuckets).toBe(2);
    expect(tuned.config.mpiChunkMb).toBe(0);
    expect(tuned.config.stagingDir).toBe(c.config.stagingDir);
    expect(withTransferOptions(c, {})).toBe(c);
    expect(transferArgs({ window: '2' })).toEqual(['--window', '2']);
  });

  it('reject bad values naming the flag', () => {
    const c = createContext({});
    expect(() => withTransferOptions(c, { window: '0' })).toThrowError(ConfigError);
    expect(() => withTransferOptions(c, { mpiChunkMb: 'big' })).toThrowError(
      /--mpi-chunk-mb "big": expected a number >= 0/,
    );
  });

  it('are refused by the real command with one line and exit code 1', async () => {
    for (const cmd of ['replicate', 'worker']) {
      const r = await runCli(
        [cmd, '--plan', 'unused.json', '--window', 'two'].filter(
          (a) => cmd === 'replicate' || (a !== '--plan' && a !== 'unused.json'),
        ),
      );
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        'hotweights: error [HW_CONFIG]: --window "two": expected an integer in 1..1024',
      );
    }
  });
});

describe('--mpi and --ucx (the seed documents)', () => {
  it('name a transport the way --transport does, and refuse two different names', () => {
    expect(forcedTransport({ mpi: true })).toBe('mpi');
    expect(forcedTransport({ ucx: true })).toBe('ucx');
    expect(forcedTransport({ ucx: true, transport: 'ucx' })).toBe('ucx');
    expect(forcedTransport({ transport: 'local' })).toBe('local');
    expect(forcedTransport({})).toBeUndefined();
    expect(() => forcedTransport({ mpi: true, ucx: true })).toThrowError(
      '--mpi and --ucx name two transports',
    );
    expect(() => forcedTransport({ mpi: true, transport: 'local' })).toThrowError(
      '--mpi and --transport local name two transports',
    );
  });
});
