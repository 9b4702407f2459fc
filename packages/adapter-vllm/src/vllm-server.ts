/**
 * One vLLM server's HTTP surface as the adapter uses it: the dev-mode endpoints
 * (`/collective_rpc`, `/pause`, `/resume`, `/reset_prefix_cache`, `/update_weight_version`,
 * `/weight_info`), which vLLM registers only with `VLLM_SERVER_DEV_MODE=1`.
 */
import { AdapterError, TimeoutError } from '@hotweights/core';

export type PauseMode = 'wait' | 'abort' | 'keep';

export class VllmServer {
  readonly url: string;

  constructor(url: string) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new AdapterError(
        `vLLM url ${JSON.stringify(url)} is not a URL: expected e.g. http://127.0.0.1:8000`,
        {
          code: 'HW_ADAPTER_INVALID',
        },
      );
    }
    this.url = parsed.origin + parsed.pathname.replace(/\/+$/, '');
  }

  /** Calls `method` on every worker of this server; one result per worker, in rank order. */
  async collectiveRpc(method: string, args: readonly string[], timeoutMs: number): Promise<unknown[]> {
    // vLLM forwards only string arguments; the worker-side timeout is a little shorter than ours
    // so that vLLM reports a hung worker itself when it can.
    const body = { method, args, kwargs: {}, timeout: Math.max(1, timeoutMs / 1000 - 1) };
    const out = (await this.call('POST', '/collective_rpc', body, timeoutMs, method)) as {
      results?: unknown;
    };
    if (!out || !Array.isArray(out.results)) {
      throw new AdapterError(`vLLM at ${this.url}: /collective_rpc ${method} returned no results list`);
    }
    return out.results;
  }

  async pause(mode: PauseMode, timeoutMs: number): Promise<void> {
    await this.call('POST', `/pause?mode=${mode}`, undefined, timeoutMs, 'pause');
  }

  async resume(timeoutMs: number): Promise<void> {
    await this.call('POST', '/resume', undefined, timeoutMs, 'resume');
  }

  async resetPrefixCache(timeoutMs: number): Promise<void> {
    await this.call('POST', '/reset_prefix_cache', undefined, timeoutMs, 'reset_prefix_cache');
  }

  async updateWeightVersion(version: string, timeoutMs: number): Promise<void> {
    await this.call(
      'POST',
      '/update_weight_version',
      { new_version: version },
      timeoutMs,
      'update_weight_version',
    );
  }

  async weightVersion(timeoutMs: number): Promise<string | null> {
    const out = (await this.call('GET', '/weight_info', undefined, timeoutMs, 'weight_info')) as {
      weight_version?: unknown;
    };
    return typeof out?.weight_version === 'string' ? out.weight_version : null;
  }

  private async call(
    verb: 'GET' | 'POST',
    path: string,
    body: unknown,
    timeoutMs: number,
    what: string,
  ): Promise<unknown> {
    const where = `${verb} ${this.url}${path}`;
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method: verb,
        signal: AbortSignal.timeout(timeoutMs),
        ...(body === undefined
          ? {}
          : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: string } };
      if (e.name === 'TimeoutError' || e.name === 'AbortError') {
        throw new TimeoutError(`vLLM ${what} timed out after ${timeoutMs / 1000} s (${where})`, {
          cause: err,
        });
      }
      throw new AdapterError(`cannot reach vLLM: ${where}: ${e.cause?.code ?? e.message}`, { cause: err });
    }
    const text = await res.text().catch(() => '');
    if (res.status === 404) {
      throw new AdapterError(
        `vLLM answered 404 to ${where}: its dev-mode endpoints are off; start vLLM with ` +
          'VLLM_SERVER_DEV_MODE=1 (and keep that server on a trusted network)',
        { code: 'HW_ADAPTER_INVALID' },
      );
    }
    if (!res.ok && /TimeoutError|timed out/i.test(text)) {
      // vLLM gave up waiting for a worker (the `timeout` we pass to collective_rpc).
      throw new TimeoutError(`vLLM ${what} timed out in the server: ${where}: ${text.slice(0, 2000)}`);
    }
    if (!res.ok) {
      throw new AdapterError(`vLLM ${what} failed: ${where} answered ${res.status}: ${text.slice(0, 2000)}`);
    }
    if (!text) return null;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  }
}
