/**
 * The wire protocol of the control plane. Requests are one JSON frame `{id, method, params,
 * token?}`; replies are `{id, result}` or `{id, error: {code, message}}`. Events go out on the PUB
 * socket as two frames: the event name (the subscription topic) and a JSON body.
 */
import { CoordinatorError, isErrorKind } from '@hotweights/core';
import { type JsonObject, SchemaChecker } from '@hotweights/manifest';

export const ERROR_CODES = {
  badRequest: 'HW_COORD_BAD_REQUEST',
  unknownMethod: 'HW_COORD_UNKNOWN_METHOD',
  badParams: 'HW_COORD_BAD_PARAMS',
  unauthorized: 'HW_COORD_UNAUTHORIZED',
  refused: 'HW_COORD_REFUSED',
  noQuorum: 'HW_COORD_NO_QUORUM',
  notFound: 'HW_COORD_NOT_FOUND',
  unknownWorker: 'HW_COORD_UNKNOWN_WORKER',
  digestMismatch: 'HW_COORD_DIGEST_MISMATCH',
  tooLarge: 'HW_COORD_TOO_LARGE',
  internal: 'HW_COORD_INTERNAL',
  unreachable: 'HW_COORD_UNREACHABLE',
  rankHeld: 'HW_COORD_RANK_HELD',
  notHolder: 'HW_COORD_NOT_HOLDER',
  badLeaseKey: 'HW_COORD_LEASE_KEY',
} as const;

/** Every RPC. `mutating` ones need the token when the server has one. */
export const METHODS = {
  ping: { mutating: false },
  status: { mutating: false },
  list_workers: { mutating: false },
  get_plan: { mutating: false },
  get_current_manifest: { mutating: false },
  who_has: { mutating: false },
  get_update: { mutating: false },
  register: { mutating: true },
  heartbeat: { mutating: true },
  submit_plan: { mutating: true },
  begin: { mutating: true },
  precommit: { mutating: true },
  commit: { mutating: true },
  abort: { mutating: true },
  rollback: { mutating: true },
  set_current_manifest: { mutating: true },
  report_have: { mutating: true },
  rendezvous: { mutating: true },
  // Handles grant access to staged memory, so even reading them needs the token.
  post_handle: { mutating: true },
  get_handle: { mutating: true },
  ack_handle: { mutating: true },
} as const;

export type MethodName = keyof typeof METHODS;

export function isMethodName(name: string): name is MethodName {
  return Object.hasOwn(METHODS, name);
}

export interface RpcRequest {
  readonly id: string | number;
  readonly method: MethodName;
  readonly params: JsonObject;
  readonly token: string | undefined;
}

export interface RpcErrorBody {
  readonly code: string;
  readonly message: string;
}

export type RpcReply =
  | { readonly id: string | number | null; readonly result: unknown }
  | { readonly id: string | number | null; readonly error: RpcErrorBody };

/** Event names published on the PUB socket (also the subscription topics). */
export type EventName =
  | 'plan'
  | 'begin'
  | 'precommit'
  | 'quorum'
  | 'commit'
  | 'abort'
  | 'worker_joined'
  | 'worker_lost'
  | 'manifest';

export interface CoordEvent {
  readonly event: EventName;
  /** Increases by one for every event; a subscriber that sees a gap re-reads `status`. */
  readonly seq: number;
  readonly at: number;
  readonly version?: string;
  readonly [key: string]: unknown;
}

/**
 * Parses one request frame. Throws CoordinatorError with the id when it could be read, so the
 * reply still reaches the caller's pending call.
 */
export function parseRequest(frame: Buffer): RpcRequest {
  let value: unknown;
  try {
    value = JSON.parse(frame.toString('utf8'));
  } catch {
    throw requestError(null, ERROR_CODES.badRequest, 'request is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw requestError(null, ERROR_CODES.badRequest, 'request must be a JSON object {id, method, params}');
  }
  const o = value as JsonObject;
  const id = o.id;
  if (!(typeof id === 'string' && id.length <= 128) && !(typeof id === 'number' && Number.isFinite(id))) {
    throw requestError(
      null,
      ERROR_CODES.badRequest,
      'request.id: expected a string (<= 128 chars) or a number',
    );
  }
  if (typeof o.method !== 'string') {
    throw requestError(id, ERROR_CODES.badRequest, 'request.method: expected a string');
  }
  if (!isMethodName(o.method)) {
    const shown = JSON.stringify(o.method.slice(0, 40));
    throw requestError(id, ERROR_CODES.unknownMethod, `unknown method ${shown}`);
  }
  const params = o.params ?? {};
  if (params === null || typeof params !== 'object' || Array.isArray(params)) {
    throw requestError(id, ERROR_CODES.badRequest, 'request.params: expected an object');
  }
  if (o.token !== undefined && typeof o.token !== 'string') {
    throw requestError(id, ERROR_CODES.badRequest, 'request.token: expected a string');
  }
  return { id, method: o.method, params: params as JsonObject, token: o.token as string | undefined };
}

/** A CoordinatorError that also remembers which request it answers. */
export class RequestError extends CoordinatorError {
  readonly requestId: string | number | null;
  constructor(requestId: string | number | null, code: string, message: string, cause?: unknown) {
    super(code, message, cause === undefined ? {} : { cause });
    this.requestId = requestId;
  }
}

function requestError(id: unknown, code: string, message: string): RequestError {
  const safeId = typeof id === 'string' || typeof id === 'number' ? id : null;
  return new RequestError(safeId, code, message);
}

/** Validates params with SchemaChecker and turns its errors into HW_COORD_BAD_PARAMS. */
export function checkParams<T>(method: string, read: (c: SchemaChecker) => T): T {
  try {
    return read(new SchemaChecker(undefined));
  } catch (err) {
    if (isErrorKind(err, 'SchemaError')) {
      throw new CoordinatorError(ERROR_CODES.badParams, `${method}: params.${err.message}`, { cause: err });
    }
    throw err;
  }
}

/**
 * A result that is already JSON text. Large documents every worker fetches (the plan, the next
 * manifest) are serialised once per update instead of once per request.
 */
export class RawJson {
  constructor(readonly json: string) {}
}

/** The reply frame for `id` and `result` (RawJson spliced in as is). */
export function replyFrame(id: string | number | null, result: unknown): string {
  if (result instanceof RawJson) return `{"id":${JSON.stringify(id)},"result":${result.json}}`;
  return JSON.stringify({ id, result });
}
