/**
 * Requests larger than one frame (a plan of a million entries is ~35 MB) arrive as parts: ZeroMQ
 * drops any connection announcing a frame over the socket's small maxMessageSize before buffering
 * it, so a peer without the token can never make the coordinator hold more than a few frames.
 *
 * A part is two frames: a small JSON header `{id, method: "upload", token, params: {offset,
 * total}}` and the bytes. The token is checked on every part's header before its bytes are kept;
 * the assembled body is then handled as an ordinary request (and checked again there).
 */
import { type JsonObject, SchemaChecker } from '@hotweights/manifest';
import type { TokenGuard } from './auth.js';
import { ERROR_CODES, RequestError } from './protocol.js';

/** The method name of a part (never a service method). */
export const UPLOAD_METHOD = 'upload';
/** Bytes of request body per part; the socket accepts this plus the header's slack. */
export const UPLOAD_PART_BYTES = 256 * 1024;
/** Largest header of a part. */
export const UPLOAD_HEADER_BYTES = 4096;

interface Upload {
  readonly total: number;
  readonly parts: Buffer[];
  received: number;
  touched: number;
}

export interface UploadPart {
  readonly id: string | number;
  readonly token: string | undefined;
  readonly offset: number;
  readonly total: number;
}

/** Reads a part's header; throws RequestError (with the id when it could be read). */
export function parseUploadHeader(header: Buffer): UploadPart {
  if (header.length > UPLOAD_HEADER_BYTES) {
    throw new RequestError(null, ERROR_CODES.badRequest, `upload header over ${UPLOAD_HEADER_BYTES} bytes`);
  }
  let value: unknown;
  try {
    value = JSON.parse(header.toString('utf8'));
  } catch {
    throw new RequestError(
      null,
      ERROR_CODES.badRequest,
      'expected 1 frame (JSON request), or an upload part',
    );
  }
  const o = (value !== null && typeof value === 'object' && !Array.isArray(value) ? value : {}) as JsonObject;
  const id = typeof o.id === 'string' && o.id.length <= 128 ? o.id : typeof o.id === 'number' ? o.id : null;
  if (id === null || o.method !== UPLOAD_METHOD) {
    throw new RequestError(id, ERROR_CODES.badRequest, 'expected 1 frame (JSON request), or an upload part');
  }
  if (o.token !== undefined && typeof o.token !== 'string') {
    throw new RequestError(id, ERROR_CODES.badRequest, 'request.token: expected a string');
  }
  try {
    const c = new SchemaChecker(undefined);
    const params = c.object(o.params, 'params');
    const offset = c.count(params.offset, 'params.offset');
    const total = c.count(params.total, 'params.total', { min: 1 });
    return { id, token: o.token as string | undefined, offset, total };
  } catch (err) {
    throw new RequestError(id, ERROR_CODES.badRequest, `upload: ${(err as Error).message}`);
  }
}

/**
 * Assembles the parts of each peer's uploads. Only parts whose header carries the token are kept,
 * at most `maxBytes` per request and `maxPending` requests at a time; an upload that stops
 * receiving parts for `idleMs` is dropped.
 */
export class UploadAssembler {
  readonly #uploads = new Map<string, Upload>();

  constructor(
    private readonly guard: TokenGuard,
    private readonly maxBytes: number,
    private readonly maxPending = 16,
    private readonly idleMs = 60_000,
  ) {}

  /** Adds one part; returns the whole body once its last part arrived, else undefined. */
  add(peer: string, part: UploadPart, bytes: Buffer): Buffer | undefined {
    if (!this.guard.allows(part.token)) {
      // Dropping the upload as well: a refused peer holds nothing here.
      this.#uploads.delete(`${peer}/${part.id}`);
      throw new RequestError(
        part.id,
        ERROR_CODES.unauthorized,
        'upload: a valid token is required to send large requests',
      );
    }
    if (part.total > this.maxBytes) {
      throw new RequestError(
        part.id,
        ERROR_CODES.tooLarge,
        `request of ${part.total} bytes is over the ${this.maxBytes}-byte limit`,
      );
    }
    const key = `${peer}/${part.id}`;
    const now = Date.now();
    this.#expire(now);
    let upload = this.#uploads.get(key);
    if (!upload && part.offset === 0) {
      if (this.#uploads.size >= this.maxPending) {
        throw new RequestError(
          part.id,
          ERROR_CODES.refused,
          `upload: ${this.maxPending} large requests already in progress; retry`,
        );
      }
      upload = { total: part.total, parts: [], received: 0, touched: now };
      this.#uploads.set(key, upload);
    }
    if (!upload || upload.received !== part.offset || upload.total !== part.total) {
      this.#uploads.delete(key);
      throw new RequestError(
        part.id,
        ERROR_CODES.badRequest,
        `upload: part at offset ${part.offset} out of order`,
      );
    }
    if (part.offset + bytes.length > part.total) {
      this.#uploads.delete(key);
      throw new RequestError(
        part.id,
        ERROR_CODES.badRequest,
        `upload: parts exceed the announced ${part.total} bytes`,
      );
    }
    upload.parts.push(bytes);
    upload.received += bytes.length;
    upload.touched = now;
    if (upload.received < upload.total) return undefined;
    this.#uploads.delete(key);
    return Buffer.concat(upload.parts, upload.total);
  }

  #expire(now: number): void {
    for (const [key, u] of this.#uploads) if (now - u.touched > this.idleMs) this.#uploads.delete(key);
  }

  clear(): void {
    this.#uploads.clear();
  }
}

/** The frames of one request body: itself when it fits one part, else header + bytes per part. */
export function requestFrames(
  id: string,
  token: string | undefined,
  body: Buffer,
  partBytes = UPLOAD_PART_BYTES,
): Array<Buffer | string | Array<Buffer | string>> {
  if (body.length <= partBytes) return [body];
  const out: Array<Array<Buffer | string>> = [];
  for (let offset = 0; offset < body.length; offset += partBytes) {
    const header = {
      id,
      method: UPLOAD_METHOD,
      params: { offset, total: body.length },
      ...(token === undefined ? {} : { token }),
    };
    out.push([JSON.stringify(header), body.subarray(offset, offset + partBytes)]);
  }
  return out;
}
