import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

describe('hotweights program', () => {
  it('prints its version', async () => {
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('turns an unknown command into one line and exit code 2', async () => {
    const r = await runCli(['no-such-command']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/unknown command 'no-such-command'/);
  });

  it('reports a bad HOTWEIGHTS_* value as one line naming the variable, without a stack', async () => {
    const r = await runCli(['transports'], { env: { HOTWEIGHTS_INFLIGHT_BUCKETS: 'many' } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe('hotweights: error [HW_CONFIG]: HOTWEIGHTS_INFLIGHT_BUCKETS="many": expected an integer');
  });
});
