/**
 * `opt-check` and `kv-check` as a user runs them (the seed documents' command lines), and
 * `opt-check` against what the trainer swap's Python module really does to an AdamW optimizer.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli } from './run-cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'hw-trainer-tools-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Ratios of each state entry after/before apply_policy on a real AdamW (with amsgrad), per parameter group. */
function measured(policy: string, attenuation: number, updated: number, unchanged: number) {
  const code = `
import json, sys, torch
from hotweights_trainer import apply_policy
torch.manual_seed(0)
ps = [torch.nn.Parameter(torch.randn(4, 3)) for _ in range(${updated + unchanged})]
opt = torch.optim.AdamW(ps, lr=1e-2, amsgrad=True)
for _ in range(3):
    opt.zero_grad(); sum((p ** 2).sum() for p in ps).backward(); opt.step()
before = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in ps}
apply_policy(opt, ps[:${updated}], ${JSON.stringify(policy)}, ${attenuation})
def ratios(group):
    out = {}
    for p in group:
        for k, v in opt.state[p].items():
            out.setdefault(k, set()).add(round(float(v.double().norm() / before[id(p)][k].double().norm()), 9))
    return {k: sorted(v) for k, v in out.items()}
print(json.dumps({"updated": ratios(ps[:${updated}]), "unchanged": ratios(ps[${updated}:])}))
`;
  const out = execFileSync(join(REPO_ROOT, '.venv/bin/python'), ['-c', code], {
    env: { ...process.env, PYTHONPATH: join(REPO_ROOT, 'packages/adapter-trainer/python/src') },
  });
  return JSON.parse(out.toString()) as Record<'updated' | 'unchanged', Record<string, number[]>>;
}

describe('hotweights opt-check', { timeout: 120_000 }, () => {
  it('runs the seed command line', async () => {
    const r = await runCli([
      'opt-check',
      ...['--updated', '100', '--unchanged', '100', '--policy', 'attenuate', '--attenuation', '0.5'],
    ]);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n').slice(0, 3)).toEqual([
      'policy attenuate (attenuation 0.5): multiply both moments by the attenuation, keep the step',
      'state           100 updated parameter(s)    100 unchanged parameter(s)',
      'exp_avg         x0.5                        kept      first moment (Adam, AdamW)',
    ]);
    expect(r.stdout).toMatch(/^step\s+kept\s+kept\s+step count/m);
  });

  it.each([
    ['preserve', 1],
    ['reset', 1],
    ['attenuate', 0.25],
  ])('previews %s exactly as the swap applies it to a real AdamW', async (policy, attenuation) => {
    const r = await runCli([
      'opt-check',
      ...[
        '--updated',
        '3',
        '--unchanged',
        '2',
        '--policy',
        policy,
        '--attenuation',
        String(attenuation),
        '--json',
      ],
    ]);
    const preview = JSON.parse(r.stdout) as { state: { key: string; updated: number; unchanged: number }[] };
    const real = measured(policy, attenuation, 3, 2);
    for (const s of preview.state) {
      expect(real.updated[s.key], `${policy} ${s.key} of changed parameters`).toEqual([s.updated]);
      expect(real.unchanged[s.key], `${policy} ${s.key} of unchanged parameters`).toEqual([s.unchanged]);
    }
  });

  it('takes HOTWEIGHTS_OPT_* as defaults and names a bad value', async () => {
    const env = { HOTWEIGHTS_OPT_POLICY: 'reset' };
    expect((await runCli(['opt-check', '--updated', '1'], { env })).stdout).toMatch(
      /^exp_avg\s+zeroed\s+kept/m,
    );
    const bad = await runCli([
      'opt-check',
      '--updated',
      '1',
      '--policy',
      'attenuate',
      '--attenuation',
      '1.5',
    ]);
    expect([bad.code, bad.stderr.trim()]).toEqual([
      1,
      'hotweights: error [HW_CONFIG]: attenuation 1.5: expected a number in 0..1',
    ]);
    const env2 = await runCli(['opt-check', '--updated', '1'], { env: { HOTWEIGHTS_OPT_ATTENUATION: '-1' } });
    expect(env2.stderr).toContain('HOTWEIGHTS_OPT_ATTENUATION=-1: expected a value in 0..1');
  });
});

describe('hotweights kv-check', { timeout: 120_000 }, () => {
  it('derives the seed layout (32/8 grouped) and other real GQA shapes', async () => {
    const r = await runCli(['kv-check', '--heads', '32', '--kv-heads', '8', '--order', 'grouped']);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')[0]).toBe(
      '32 query heads over 8 KV heads, 4 per KV head (grouped, derived): OK',
    );
    expect(r.stdout).toContain('  KV head 7 <- query heads 28,29,30,31');
    const big = JSON.parse((await runCli(['kv-check', '--heads', '64', '--kv-heads', '8', '--json'])).stdout);
    expect([big.groupSize, big.order, big.map.slice(6, 10)]).toEqual([8, 'grouped', [0, 0, 1, 1]]);
    const env = { HOTWEIGHTS_KV_HEAD_ORDER: 'interleaved' };
    const forty = await runCli(['kv-check', '--heads', '40', '--kv-heads', '8'], { env });
    expect(forty.stdout).toContain(
      '40 query heads over 8 KV heads, 5 per KV head (interleaved, derived): OK',
    );
    expect(forty.stdout).toContain('  KV head 0 <- query heads 0,8,16,24,32');
  });

  it('refuses 40 query heads over 16 KV heads in one line', async () => {
    const r = await runCli(['kv-check', '--heads', '40', '--kv-heads', '16']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'hotweights: error [HW_CONFIG]: 40 query heads do not split evenly over 16 KV heads (40 % 16 = 8): ' +
        'grouped-query attention needs the query heads to be a multiple of the KV heads',
    );
  });

  it('validates a map from HOTWEIGHTS_KV_HEAD_MAP, HOTWEIGHTS_KV_HEAD_MAP_FILE or --map', async () => {
    const ok = await runCli(['kv-check', '--kv-heads', '2'], {
      env: { HOTWEIGHTS_KV_HEAD_MAP: '[1,0,1,0]' },
    });
    expect(ok.stdout.split('\n')[0]).toBe(
      '4 query heads over 2 KV heads, 2 per KV head (custom, given map): OK',
    );
    const file = join(tmp, 'map.json');
    writeFileSync(file, JSON.stringify([0, 0, 0, 1]));
    const uneven = await runCli(['kv-check', '--kv-heads', '2'], {
      env: { HOTWEIGHTS_KV_HEAD_MAP_FILE: file },
    });
    expect(uneven.stderr.trim()).toBe(
      'hotweights: error [HW_CONFIG]: invalid KV head map: every KV head must be read by 2 query heads: KV head 0 is read by 3, KV head 1 is read by 1',
    );
    const perm = await runCli(['kv-check', '--heads', '4', '--kv-heads', '4', '--map', '[3,2,1,0]']);
    expect(perm.stdout).toContain('(custom, given map): OK');
    const notPerm = await runCli(['kv-check', '--heads', '4', '--kv-heads', '4', '--map', '[0,1,1,3]']);
    expect(notPerm.stderr).toContain('the map must be a permutation of 0..3');
    const missing = await runCli(['kv-check', '--kv-heads', '2', '--map-file', join(tmp, 'nope.json')]);
    expect(missing.stderr.trim()).toBe(
      `hotweights: error [HW_CONFIG]: --map-file ${join(tmp, 'nope.json')}: ENOENT`,
    );
  });
});
