import { loadConfig } from '@hotweights/core';
import { afterEach, describe, expect, it } from 'vitest';
import { probeUcx } from '../src/probe.js';

const ctx = { rank: 0, worldSize: 2, launcher: 'env' as const, config: loadConfig({}) };
const rendezvous = { MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29511' };
const saved = {
  MASTER_ADDR: process.env.MASTER_ADDR,
  MASTER_PORT: process.env.MASTER_PORT,
  UCX_TLS: process.env.UCX_TLS,
};
afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

describe('probeUcx', () => {
  it('is available with a rendezvous and says which UCX and where rank 0 listens', () => {
    expect(probeUcx(ctx, rendezvous)).toEqual({
      available: true,
      detail: expect.stringMatching(/^UCX 1\.\d+\.\d+, 2 ranks, rank 0 listens on 127\.0\.0\.1:29511$/),
    });
    expect(probeUcx({ ...ctx, rank: 1 }, rendezvous)).toMatchObject({
      detail: expect.stringMatching(/, rank 0 at 127\.0\.0\.1:29511$/),
    });
  });

  it('says what is missing without a rendezvous or with a bad port', () => {
    delete process.env.MASTER_ADDR;
    delete process.env.MASTER_PORT;
    expect(probeUcx(ctx)).toEqual({
      available: false,
      reason: 'no rendezvous: set MASTER_ADDR and MASTER_PORT (rank 0 listens there)',
    });
    expect(probeUcx(ctx, { ...rendezvous, MASTER_PORT: 'x' })).toEqual({
      available: false,
      reason: 'MASTER_PORT="x" is not a TCP port (1..65535)',
    });
  });

  it('is unavailable, naming the settings to check, when UCX finds no usable transport', () => {
    process.env.UCX_TLS = 'no-such-transport';
    const result = probeUcx(ctx, rendezvous);
    expect(result).toEqual({
      available: false,
      reason: expect.stringMatching(
        /^UCX 1\.\d+\.\d+ has no usable transport \(ucp_init: .*\); check UCX_TLS and HOTWEIGHTS_UCX_NET_DEVICES$/,
      ),
    });
  });

  it('honours HOTWEIGHTS_UCX_NET_DEVICES', () => {
    process.env.UCX_TLS = 'tcp';
    const config = loadConfig({ HOTWEIGHTS_UCX_NET_DEVICES: 'no-such-nic0' });
    expect(probeUcx({ ...ctx, config }, rendezvous)).toMatchObject({ available: false });
    expect(
      probeUcx({ ...ctx, config: loadConfig({ HOTWEIGHTS_UCX_NET_DEVICES: 'lo' }) }, rendezvous),
    ).toMatchObject({
      available: true,
    });
  });
});
