/**
 * scripts/gpu-check.sh on a machine without a GPU (this one; the PATH below has no nvidia-smi
 * either way): it must refuse loudly, before building or writing anything, never skip quietly.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toolBin } from '@hotweights/release-tools/pack';
import { afterAll, describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../../../scripts/gpu-check.sh', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'hw-gpu-check-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('scripts/gpu-check.sh without a GPU', () => {
  it('exits non-zero with a clear "no GPU" message and runs nothing', () => {
    const path = toolBin(join(tmp, 'bin'), [
      'bash',
      'dirname',
      'node',
      'npm',
      'npx',
      'mktemp',
      'grep',
      'head',
      'rm',
    ]);
    const r = spawnSync('bash', [SCRIPT], { env: { PATH: path, TMPDIR: tmp }, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^gpu-check: no GPU: nvidia-smi not found \(no NVIDIA driver installed\)\. .*nothing was run\.\n$/,
    );
  });
});
