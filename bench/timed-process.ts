/**
 * One command in a fresh process, timed from outside by /usr/bin/time: wall and CPU seconds
 * (user + system, every thread and child) and peak RSS. Shared by the benchmarks so ours and the
 * reference tools (b3sum, cat, cp, a bare read) are measured the same way.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

export interface ProcessTime {
  total_ms: number;
  cpu_ms: number;
  peak_rss: number;
  [k: string]: number;
}

export function timeProcess(
  argv: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; what?: string } = {},
): ProcessTime {
  const r = spawnSync('/usr/bin/time', ['-f', 'HWTIME %e %U %S %M', ...argv], {
    cwd: opts.cwd,
    env: opts.env,
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  const line = r.stderr.split('\n').find((l) => l.startsWith('HWTIME '));
  if (r.status !== 0 || !line)
    throw new Error(`${opts.what ?? argv.join(' ')} failed (${r.status}):\n${r.stdout}${r.stderr}`);
  const [wall, user, sys, rssKb] = line.slice(7).split(' ').map(Number) as [number, number, number, number];
  return { total_ms: wall * 1000, cpu_ms: (user + sys) * 1000, peak_rss: rssKb * 1024 };
}

/**
 * The same without blocking, for runs side by side (cp to several destinations at once): wall
 * seconds from here (finer than /usr/bin/time's 10 ms), CPU seconds of the child, and its stdout.
 */
export function timeCommand(
  argv: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ seconds: number; cpu: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', 'HWTIME %U %S', ...argv], {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      const m = /HWTIME ([\d.]+) ([\d.]+)\s*$/.exec(stderr);
      if (code !== 0 || !m) reject(new Error(`${argv.join(' ')} failed (${code}): ${stderr}`));
      else resolve({ seconds, cpu: Number(m[1]) + Number(m[2]), stdout });
    });
  });
}

/** The CPU model and the flags that decide hash speed here (SIMD width, SHA extensions). */
export function cpuDescription(): { model: string; cores: number; flags: string[] } {
  const info = readFileSync('/proc/cpuinfo', 'utf8');
  const flags = (/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(' ');
  const wanted = ['sse4_2', 'avx', 'avx2', 'avx512f', 'avx512vl', 'bmi2', 'sha_ni', 'aes', 'vaes'];
  return {
    model: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    flags: wanted.filter((f) => flags.includes(f)),
  };
}

/** The 1-minute load average, for the record of a shared machine. */
export const load1 = (): number => loadavg()[0] as number;
