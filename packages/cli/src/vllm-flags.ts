/**
 * `--vllm-url` and friends for `hotweights worker`: the sidecar beside vLLM servers without
 * spelling out `--adapter-option`s. Each flag is a setting of the `vllm` adapter plugin
 * (`url`, `pause-mode`, `prepare-timeout-s`, `commit-timeout-s`); an `--adapter-option` of the
 * same key wins. `--vllm-url` alone implies `--adapter vllm`.
 */
import { ConfigError } from '@hotweights/core';
import type { Command } from 'commander';
import { type AdapterFlags, collect } from './adapter-options.js';

export interface VllmFlags {
  vllmUrl?: string[];
  vllmPauseMode?: string;
  vllmPrepareTimeout?: string;
  vllmCommitTimeout?: string;
}

export function addVllmOptions(cmd: Command): Command {
  return cmd
    .option(
      '--vllm-url <url>',
      'a vLLM server this worker drives (implies --adapter vllm; repeatable or comma-separated for data-parallel servers)',
      collect,
    )
    .option('--vllm-pause-mode <mode>', 'how vLLM pauses for a commit: wait (default), abort or keep')
    .option('--vllm-prepare-timeout <s>', 'seconds for hw_prepare on every vLLM worker (default 600)')
    .option('--vllm-commit-timeout <s>', 'seconds for pause, hw_commit and hw_rollback each (default 300)');
}

/** The adapter settings the flags mean, keyed by adapter name (openAdapter's `defaults`). */
export function vllmDefaults(flags: VllmFlags & AdapterFlags): Record<string, Record<string, string>> {
  const settings: Record<string, string> = {};
  const urls = (flags.vllmUrl ?? []).flatMap((u) => u.split(',')).map((u) => u.trim());
  if (urls.some((u) => u === '')) {
    throw new ConfigError('--vllm-url: an empty URL; expected e.g. --vllm-url http://127.0.0.1:8000');
  }
  if (urls.length > 0) settings.url = urls.join(',');
  if (flags.vllmPauseMode !== undefined) settings['pause-mode'] = flags.vllmPauseMode;
  if (flags.vllmPrepareTimeout !== undefined) settings['prepare-timeout-s'] = flags.vllmPrepareTimeout;
  if (flags.vllmCommitTimeout !== undefined) settings['commit-timeout-s'] = flags.vllmCommitTimeout;
  if (Object.keys(settings).length === 0) return {};
  if (flags.adapter !== undefined && flags.adapter !== 'vllm') {
    throw new ConfigError(
      `--vllm-* flags set the vllm adapter, but --adapter is ${flags.adapter}: drop them or use --adapter vllm`,
    );
  }
  return { vllm: settings };
}

/** `--vllm-url` without `--adapter` chooses the vllm adapter. */
export function withVllmAdapter<F extends VllmFlags & AdapterFlags>(flags: F): F {
  return flags.adapter === undefined && (flags.vllmUrl?.length ?? 0) > 0
    ? { ...flags, adapter: 'vllm' }
    : flags;
}
