/**
 * The coordinator process: a ZeroMQ ROUTER answering requests and a PUB socket sending events.
 * Frames are checked before anything is parsed; every bad request gets an error reply when the
 * sender can be answered at all, and nothing a client sends can stop the loop.
 */
import { CoordinatorError, type HotweightsConfig, isErrorKind } from '@hotweights/core';
import type { Registry } from 'prom-client';
import { Publisher, Router } from 'zeromq';
import { TokenGuard } from './auth.js';
import type { StateBackend } from './backends/backend.js';
import { MemoryBackend } from './backends/memory.js';
import { RedisBackend } from './backends/redis.js';
import { bindable, checkEndpoint, defaultPubEndpoint } from './endpoint.js';
import { CoordinatorMetrics } from './metrics.js';
import {
  type CoordEvent,
  ERROR_CODES,
  parseRequest,
  RequestError,
  type RpcReply,
  replyFrame,
} from './protocol.js';
import { RefusalLog } from './refusal-log.js';
import { CoordinatorService } from './service.js';
import { parseUploadHeader, UPLOAD_HEADER_BYTES, UPLOAD_PART_BYTES, UploadAssembler } from './upload.js';

export interface CoordinatorServerOptions {
  /** Where requests arrive, e.g. `tcp://0.0.0.0:5555` (`tcp://127.0.0.1:0`: any free port). */
  readonly endpoint: string;
  /** Where events go; default: request port + 1. */
  readonly pubEndpoint?: string | undefined;
  /** Default: a MemoryBackend. */
  readonly backend?: StateBackend | undefined;
  readonly token?: string | undefined;
  readonly leaseS?: number;
  readonly heartbeatS?: number;
  readonly handleTtlS?: number;
  /**
   * Largest request accepted (bytes), default 256 MiB. Requests over one frame (256 KiB) arrive in
   * parts, each checked for the token before it is kept; bigger requests get HW_COORD_TOO_LARGE.
   */
  readonly maxRequestBytes?: number;
  /** Register coordinator metrics here (serve it with core's startMetricsServer). */
  readonly metricsRegistry?: Registry | undefined;
  /** Test hook: ms each precommit reply is held (see HOTWEIGHTS_TEST_PRECOMMIT_DELAY_MS). */
  readonly precommitReplyDelayMs?: number | undefined;
  /** One line per event and per failed request (never containing the token). */
  readonly log?: ((line: string) => void) | undefined;
}

const DEFAULT_MAX_REQUEST = 256 * 1024 * 1024;
/**
 * ZeroMQ drops a connection announcing a bigger frame before buffering it: one part and its header.
 * The receive queue of each connection holds at most RECEIVE_QUEUE messages (then TCP pushes back),
 * so a peer without the token makes the coordinator hold a few MiB at most.
 */
const MAX_FRAME = UPLOAD_PART_BYTES + UPLOAD_HEADER_BYTES;
const RECEIVE_QUEUE = 4;

export class CoordinatorServer {
  readonly endpoint: string;
  readonly pubEndpoint: string;
  readonly service: CoordinatorService;
  readonly #router: Router;
  readonly #pub: Publisher;
  readonly #reaper: NodeJS.Timeout;
  readonly #metrics: CoordinatorMetrics | undefined;
  readonly #maxRequest: number;
  readonly #log: (line: string) => void;
  readonly #refusals: RefusalLog;
  readonly #uploads: UploadAssembler;
  #closed = false;
  readonly #loop: Promise<void>;

  private constructor(args: {
    router: Router;
    pub: Publisher;
    service: CoordinatorService;
    metrics: CoordinatorMetrics | undefined;
    maxRequest: number;
    leaseS: number;
    token: string | undefined;
    log: (line: string) => void;
  }) {
    this.#router = args.router;
    this.#pub = args.pub;
    this.service = args.service;
    this.#metrics = args.metrics;
    this.#maxRequest = args.maxRequest;
    this.#log = args.log;
    this.#refusals = new RefusalLog(args.log);
    this.#uploads = new UploadAssembler(new TokenGuard(args.token), args.maxRequest);
    this.endpoint = args.router.lastEndpoint ?? '';
    this.pubEndpoint = args.pub.lastEndpoint ?? '';
    this.service.publish = (e) => this.#publish(e);
    const every = Math.max(20, Math.min(1000, (args.leaseS * 1000) / 4));
    this.#reaper = setInterval(() => {
      this.service.reap().catch((err: unknown) => this.#log(`lease check failed: ${(err as Error).message}`));
    }, every);
    this.#loop = this.#serve();
  }

  static async start(opts: CoordinatorServerOptions): Promise<CoordinatorServer> {
    checkEndpoint(opts.endpoint);
    const pubEndpoint = checkEndpoint(opts.pubEndpoint ?? defaultPubEndpoint(opts.endpoint), 'pub endpoint');
    const maxRequest = opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST;
    const leaseS = opts.leaseS ?? 10;
    const metrics = opts.metricsRegistry ? new CoordinatorMetrics(opts.metricsRegistry) : undefined;
    const service = await CoordinatorService.open({
      backend: opts.backend ?? new MemoryBackend(),
      token: opts.token,
      leaseS,
      heartbeatS: opts.heartbeatS ?? 2,
      handleTtlS: opts.handleTtlS ?? 30,
      metrics,
      precommitReplyDelayMs: opts.precommitReplyDelayMs,
    });
    // Frames between maxRequest and MAX_FRAME are answered with an error.
    // sendTimeout 0: a reply to a peer that does not read (its queue is full) is dropped rather
    // than blocking the loop, which would make the next send fail with EBUSY.
    const router = new Router({
      linger: 0,
      maxMessageSize: MAX_FRAME,
      receiveHighWaterMark: RECEIVE_QUEUE,
      sendTimeout: 0,
      sendHighWaterMark: 10_000,
    });
    const pub = new Publisher({ linger: 0, sendHighWaterMark: 100_000, sendTimeout: 0 });
    try {
      await router.bind(bindable(opts.endpoint));
      await pub.bind(bindable(pubEndpoint));
    } catch (err) {
      router.close();
      pub.close();
      await service.close();
      throw new CoordinatorError(
        'HW_COORD_BIND',
        `cannot listen on ${opts.endpoint} / ${pubEndpoint}: ${(err as Error).message} (port in use? pick another with --endpoint/--pub-endpoint)`,
        { cause: err },
      );
    }
    return new CoordinatorServer({
      router,
      pub,
      service,
      metrics,
      maxRequest,
      leaseS,
      token: opts.token,
      log: opts.log ?? (() => {}),
    });
  }

  #publish(e: CoordEvent): void {
    if (this.#closed) return;
    const summary = Object.entries(e)
      .filter(([k]) => k !== 'event' && k !== 'at')
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    this.#log(`event ${e.event} ${summary}`);
    // A PUB socket drops what it cannot queue; subscribers that miss events re-read status.
    safeSend(() => this.#pub.send([e.event, JSON.stringify(e)]));
  }

  async #serve(): Promise<void> {
    while (!this.#closed) {
      let frames: Buffer[];
      try {
        frames = await this.#router.receive();
      } catch (err) {
        if (this.#closed) return;
        this.#log(`receive failed: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      try {
        this.#handle(frames);
      } catch (err) {
        this.#log(`request dropped: ${(err as Error).message}`);
      }
    }
  }

  #handle(frames: Buffer[]): void {
    const [identity, ...rest] = frames;
    if (!identity) return;
    // DEALER clients send [json]; REQ clients send ['', json]; a part of a large request is
    // [header, bytes]. Anything else is answered plainly.
    const envelope: Buffer[] = rest.length === 2 && rest[0]?.length === 0 ? [Buffer.alloc(0)] : [];
    const part = rest.length === 2 && envelope.length === 0 ? rest : undefined;
    const body =
      rest.length === 1 ? rest[0] : rest.length === 2 && rest[0]?.length === 0 ? rest[1] : undefined;
    const peer = identity.toString('hex');
    const started = process.hrtime.bigint();
    const reply = (r: RpcReply, method: string) => {
      const text = 'result' in r ? replyFrame(r.id, r.result) : JSON.stringify(r);
      // The peer went away or stopped reading: nothing to answer.
      safeSend(() => this.#router.send([identity, ...envelope, text]));
      this.#metrics?.rpcSeconds.observe({ method }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    const fail = (id: string | number | null, err: unknown, method: string) => {
      const { code, message } = toErrorBody(err);
      this.#metrics?.rpcErrors.inc({ code });
      if (code === ERROR_CODES.internal) this.#log(`internal error in ${method}: ${message}`);
      // Not-found answers are part of normal polling, not refusals.
      else if (code !== ERROR_CODES.notFound) this.#refusals.refused(method, peer, code, message);
      reply({ id, error: { code, message } }, method);
    };
    if (part?.[0] && part[1]) {
      let whole: Buffer | undefined;
      try {
        whole = this.#uploads.add(peer, parseUploadHeader(part[0]), part[1]);
      } catch (err) {
        fail(err instanceof RequestError ? err.requestId : null, err, 'upload');
        return;
      }
      if (whole) this.#request(whole, reply, fail);
      return;
    }
    if (!body) {
      fail(
        null,
        new RequestError(null, ERROR_CODES.badRequest, `expected 1 frame (JSON request), got ${rest.length}`),
        'invalid',
      );
      return;
    }
    if (body.length > this.#maxRequest) {
      fail(
        null,
        new RequestError(
          null,
          ERROR_CODES.tooLarge,
          `request of ${body.length} bytes is over the ${this.#maxRequest}-byte limit`,
        ),
        'invalid',
      );
      return;
    }
    this.#request(body, reply, fail);
  }

  #request(
    body: Buffer,
    reply: (r: RpcReply, method: string) => void,
    fail: (id: string | number | null, err: unknown, method: string) => void,
  ): void {
    let request: ReturnType<typeof parseRequest>;
    try {
      request = parseRequest(body);
    } catch (err) {
      fail(err instanceof RequestError ? err.requestId : null, err, 'invalid');
      return;
    }
    this.service.call(request.method, request.params, request.token).then(
      (result) => reply({ id: request.id, result }, request.method),
      (err: unknown) => fail(request.id, err, request.method),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#reaper);
    this.#uploads.clear();
    this.#router.close();
    this.#pub.close();
    await this.#loop;
    await this.service.close();
  }
}

/** Sends without ever throwing into the caller: zeromq may throw synchronously or reject. */
function safeSend(send: () => Promise<void>): void {
  try {
    send().catch(() => {});
  } catch {
    // dropped
  }
}

function toErrorBody(err: unknown): { code: string; message: string } {
  if (isErrorKind(err, 'CoordinatorError')) return { code: err.code, message: err.message };
  if (err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('HW_')) {
    return { code: err.code, message: err.message };
  }
  return { code: ERROR_CODES.internal, message: `internal error: ${(err as Error)?.message ?? String(err)}` };
}

/** Opens the backend the configuration names (memory, or Redis at HOTWEIGHTS_REDIS_URL). */
export async function openBackend(
  config: Pick<HotweightsConfig, 'coordBackend' | 'redisUrl'>,
  override?: 'memory' | 'redis',
): Promise<StateBackend> {
  const kind = override ?? config.coordBackend;
  return kind === 'redis' ? RedisBackend.connect({ url: config.redisUrl }) : new MemoryBackend();
}
