/**
 * Typed bindings to UCX's UCP API through koffi: the only module that talks to koffi or knows a C
 * layout. Handles, request pointers and buffer addresses travel as plain numbers (`intptr_t`):
 * user-space addresses fit in 53 bits, and a `ucs_status_ptr_t` is then a request (> 0), UCS_OK
 * (0) or an error status (< 0), so no pointer object is ever needed.
 *
 * The struct layouts below are UCX 1.13's. Only fields present since UCX 1.10 are ever set (every
 * struct starts with a field mask that says which ones), so a library from 1.12 on reads them
 * right; test/layout.test.ts compares every size and offset with the installed headers.
 */
import koffi, { type LibraryHandle, type TypeObject } from 'koffi';

export const UCP_LIBRARY = 'libucp.so.0';
export const UCS_LIBRARY = 'libucs.so.0';
/** The oldest UCX we accept, and the API version we ask `ucp_init_version` for. */
export const MIN_UCX = { major: 1, minor: 12 } as const;

export const UCS_OK = 0;
export const UCS_INPROGRESS = 1;
/** A host the kernel has no route or neighbour for (connect() failed with EHOSTUNREACH). */
export const UCS_ERR_UNREACHABLE = -6;
export const UCS_ERR_MESSAGE_TRUNCATED = -9;
/** ucp_worker_arm: events are still unprocessed, progress again before arming. */
export const UCS_ERR_BUSY = -15;
export const UCS_ERR_CANCELED = -16;

export const UCP_PARAM_FIELD_FEATURES = 1n << 0n;
export const UCP_FEATURE_TAG = 1n << 0n;
/** Only transports that can signal the worker's event fd (ucp_worker_get_efd, ucp_worker_arm). */
export const UCP_FEATURE_WAKEUP = 1n << 4n;
export const UCP_WORKER_PARAM_FIELD_THREAD_MODE = 1n << 0n;
export const UCS_THREAD_MODE_SINGLE = 0;
export const UCP_EP_PARAM_FIELD_REMOTE_ADDRESS = 1n << 0n;
export const UCP_OP_ATTR_FIELD_FLAGS = 1 << 4;
export const UCP_OP_ATTR_FLAG_NO_IMM_CMPL = 1 << 16;
export const UCP_EP_CLOSE_FLAG_FORCE = 1 << 0;

const ptr = 'intptr_t';

/**
 * Scalar typedefs of the headers and the koffi type each is bound as. `ucs_status_t` is a packed
 * enum (one byte): binding it as `int` would read garbage from the upper bytes of the register.
 */
export const SCALARS = {
  ucs_status_t: 'int8_t',
  ucs_status_ptr_t: ptr,
  ucp_tag_t: 'uint64_t',
  ucp_datatype_t: 'uint64_t',
  ucs_thread_mode_t: 'int',
  ucp_err_handling_mode_t: 'int',
  ucs_memory_type_t: 'int',
  ucs_cpu_set_t: 'uint64_t[16]',
} as const;
koffi.alias('ucs_status_t', SCALARS.ucs_status_t);

/** The structs we hand to UCX, named as in the headers (layout.test.ts checks each field). */
export const STRUCTS = {
  ucp_params_t: koffi.struct('ucp_params_t', {
    field_mask: 'uint64_t',
    features: 'uint64_t',
    request_size: 'size_t',
    request_init: ptr,
    request_cleanup: ptr,
    tag_sender_mask: 'uint64_t',
    mt_workers_shared: 'int',
    estimated_num_eps: 'size_t',
    estimated_num_ppn: 'size_t',
    name: ptr,
  }),
  ucp_worker_params_t: koffi.struct('ucp_worker_params_t', {
    field_mask: 'uint64_t',
    thread_mode: 'int',
    cpu_mask: koffi.array('uint64_t', 16), // ucs_cpu_set_t: 1024 bits
    events: 'uint32_t',
    user_data: ptr,
    event_fd: 'int',
    flags: 'uint64_t',
    name: ptr,
    am_alignment: 'size_t',
    client_id: 'uint64_t',
  }),
  ucp_ep_params_t: koffi.struct('ucp_ep_params_t', {
    field_mask: 'uint64_t',
    address: ptr,
    err_mode: 'int',
    err_handler: koffi.struct('ucp_err_handler_t', { cb: ptr, arg: ptr }),
    user_data: ptr,
    flags: 'uint32_t',
    sockaddr: koffi.struct('ucs_sock_addr_t', { addr: ptr, addrlen: 'uint32_t' }),
    conn_request: ptr,
    name: ptr,
    local_sockaddr: 'ucs_sock_addr_t',
  }),
  ucp_request_param_t: koffi.struct('ucp_request_param_t', {
    op_attr_mask: 'uint32_t',
    flags: 'uint32_t',
    request: ptr,
    cb: ptr, // a union of callback pointers; we never set it (no callbacks from UCX)
    datatype: 'uint64_t',
    user_data: ptr,
    reply_buffer: ptr,
    memory_type: 'int',
    recv_info: ptr, // a union of two pointers
    memh: ptr,
  }),
  ucp_tag_recv_info_t: koffi.struct('ucp_tag_recv_info_t', { sender_tag: 'uint64_t', length: 'size_t' }),
} as const;

export type StructName = keyof typeof STRUCTS;

export interface AssumedLayout {
  readonly structs: Record<StructName, { size: number; offsets: Record<string, number> }>;
  readonly scalars: Record<keyof typeof SCALARS, number>;
}

/** sizeof and every offsetof the bindings assume, for the layout test. */
export function assumedLayout(): AssumedLayout {
  const structs = {} as AssumedLayout['structs'];
  for (const [name, type] of Object.entries(STRUCTS) as [StructName, TypeObject][]) {
    const offsets: Record<string, number> = {};
    for (const [member, info] of Object.entries(koffi.type(type).members ?? {}))
      offsets[member] = info.offset;
    structs[name] = { size: koffi.sizeof(type), offsets };
  }
  const scalars = {} as Record<keyof typeof SCALARS, number>;
  for (const [name, type] of Object.entries(SCALARS) as [keyof typeof SCALARS, string][]) {
    const array = /^(\w+)\[(\d+)\]$/.exec(type);
    scalars[name] = array ? koffi.sizeof(array[1] as string) * Number(array[2]) : koffi.sizeof(type);
  }
  return { structs, scalars };
}

export interface RequestParam {
  op_attr_mask?: number;
  flags?: number;
}

/** The UCP functions we call, with JS types. */
export interface Ucp {
  readonly version: { readonly major: number; readonly minor: number; readonly release: number };
  configRead(): number;
  configModify(config: number, name: string, value: string): number;
  configRelease(config: number): void;
  init(params: object, config: number, out: number[]): number;
  cleanup(context: number): void;
  workerCreate(context: number, params: object, out: number[]): number;
  workerDestroy(worker: number): void;
  workerGetAddress(worker: number): { status: number; address?: Uint8Array };
  workerProgress(worker: number): number;
  /** The worker's event fd (`fd` is -1 unless status is UCS_OK); needs UCP_FEATURE_WAKEUP. */
  workerGetEfd(worker: number): { status: number; fd: number };
  /** UCS_OK: the efd will be signalled by the next event; UCS_ERR_BUSY: progress first. */
  workerArm(worker: number): number;
  /** Makes the efd readable now (safe from any thread). */
  workerSignal(worker: number): number;
  /**
   * poll(2) for `fd` readable, on libuv's thread pool (the JS thread goes on): calls `done` with
   * poll's result (> 0 readable, 0 timed out, < 0 failed) once, on the JS thread. Absent where
   * libc's poll could not be bound (then the worker spins).
   */
  readonly waitReadable?: (fd: number, timeoutMs: number, done: (result: number) => void) => void;
  epCreate(worker: number, params: object, out: number[]): number;
  epClose(ep: number, param: RequestParam): number;
  tagSend(ep: number, buffer: number, length: number, tag: bigint, param: RequestParam): number;
  tagRecv(
    worker: number,
    buffer: number,
    length: number,
    tag: bigint,
    mask: bigint,
    param: RequestParam,
  ): number;
  /** Status of a request, and for a finished receive the length that landed. */
  recvTest(request: number): { status: number; length: number };
  requestCheck(request: number): number;
  requestCancel(worker: number, request: number): void;
  requestFree(request: number): void;
  statusString(status: number): string;
}

const POLLIN = 1;
koffi.struct('hw_pollfd', { fd: 'int', events: 'short', revents: 'short' });

/** libc's poll(2), or undefined where no glibc is found (musl names its libc otherwise). */
function bindPoll(): ReturnType<LibraryHandle['func']> | undefined {
  try {
    return koffi.load('libc.so.6').func('int poll(hw_pollfd *fds, unsigned long nfds, int timeout)');
  } catch {
    return undefined;
  }
}

let loaded: { ucp?: Ucp; error?: string } | undefined;

/** Opens libucp once per process. Never throws: a failure comes back as a reason. */
export function loadUcp(): { ucp?: Ucp; error?: string } {
  loaded ??= open();
  return loaded;
}

function open(): { ucp?: Ucp; error?: string } {
  // UCX's memory hooks (libucm patches mmap/munmap to keep RDMA registrations current) were
  // followed by V8 heap corruption in about one loaded 3-rank run in 20 here, and none in 24
  // without them. They only help RDMA registration caching: off unless the user says otherwise.
  // Set before the library loads, as libucm reads it when it is loaded.
  process.env.UCX_MEM_EVENTS ??= 'no';
  // UCX connects over TCP with a blocking connect() by default: a peer whose SYN-ACK never comes
  // back (a route or neighbour entry still down) would freeze this rank's event loop, and with it
  // the control star that tells every rank to stop, for the kernel's whole SYN timeout (~2 min).
  // UCX reads its transports' settings from the environment (ucp_config_modify does not reach
  // them in UCX 1.13); a user's own UCX_TCP_CONN_NB wins.
  process.env.UCX_TCP_CONN_NB ??= 'y';
  let lib: LibraryHandle;
  let ucs: LibraryHandle;
  try {
    lib = koffi.load(UCP_LIBRARY);
    ucs = koffi.load(UCS_LIBRARY);
  } catch (err) {
    return {
      error: `${UCP_LIBRARY} could not be opened (${(err as Error).message.split('\n')[0]}); install UCX >= ${MIN_UCX.major}.${MIN_UCX.minor} (Debian/Ubuntu: apt-get install libucx0)`,
    };
  }
  try {
    return { ucp: bind(lib, ucs) };
  } catch (err) {
    return { error: `${UCP_LIBRARY} lacks a function we need: ${(err as Error).message}` };
  }
}

function bind(lib: LibraryHandle, ucs: LibraryHandle): Ucp {
  const getVersion = lib.func(
    'void ucp_get_version(_Out_ uint32_t *major, _Out_ uint32_t *minor, _Out_ uint32_t *release)',
  );
  const configRead = lib.func(
    'ucs_status_t ucp_config_read(const char *prefix, const char *file, _Out_ intptr_t *config)',
  );
  const configModify = lib.func(
    'ucs_status_t ucp_config_modify(intptr_t config, const char *name, const char *value)',
  );
  const configRelease = lib.func('void ucp_config_release(intptr_t config)');
  const init = lib.func(
    'ucs_status_t ucp_init_version(uint32_t major, uint32_t minor, const ucp_params_t *params, intptr_t config, _Out_ intptr_t *context)',
  );
  const cleanup = lib.func('void ucp_cleanup(intptr_t context)');
  const workerCreate = lib.func(
    'ucs_status_t ucp_worker_create(intptr_t context, const ucp_worker_params_t *params, _Out_ intptr_t *worker)',
  );
  const workerDestroy = lib.func('void ucp_worker_destroy(intptr_t worker)');
  const getAddress = lib.func(
    'ucs_status_t ucp_worker_get_address(intptr_t worker, _Out_ intptr_t *address, _Out_ size_t *length)',
  );
  const releaseAddress = lib.func('void ucp_worker_release_address(intptr_t worker, intptr_t address)');
  const progress = lib.func('uint32_t ucp_worker_progress(intptr_t worker)');
  const getEfd = lib.func('ucs_status_t ucp_worker_get_efd(intptr_t worker, _Out_ int *fd)');
  const arm = lib.func('ucs_status_t ucp_worker_arm(intptr_t worker)');
  const signal = lib.func('ucs_status_t ucp_worker_signal(intptr_t worker)');
  const poll = bindPoll();
  const epCreate = lib.func(
    'ucs_status_t ucp_ep_create(intptr_t worker, const ucp_ep_params_t *params, _Out_ intptr_t *ep)',
  );
  const epClose = lib.func('intptr_t ucp_ep_close_nbx(intptr_t ep, const ucp_request_param_t *param)');
  const tagSend = lib.func(
    'intptr_t ucp_tag_send_nbx(intptr_t ep, intptr_t buffer, size_t count, uint64_t tag, const ucp_request_param_t *param)',
  );
  const tagRecv = lib.func(
    'intptr_t ucp_tag_recv_nbx(intptr_t worker, intptr_t buffer, size_t count, uint64_t tag, uint64_t mask, const ucp_request_param_t *param)',
  );
  const recvTest = lib.func(
    'ucs_status_t ucp_tag_recv_request_test(intptr_t request, _Out_ ucp_tag_recv_info_t *info)',
  );
  const check = lib.func('ucs_status_t ucp_request_check_status(intptr_t request)');
  const cancel = lib.func('void ucp_request_cancel(intptr_t worker, intptr_t request)');
  const free = lib.func('void ucp_request_free(intptr_t request)');
  const statusString = ucs.func('const char *ucs_status_string(ucs_status_t status)');

  const major = [0];
  const minor = [0];
  const release = [0];
  getVersion(major, minor, release);
  const out = [0];
  const param = (p: RequestParam) => ({ op_attr_mask: p.op_attr_mask ?? 0, flags: p.flags ?? 0 });
  return {
    version: { major: major[0] ?? 0, minor: minor[0] ?? 0, release: release[0] ?? 0 },
    configRead: () => {
      const status = configRead(null, null, out) as number;
      if (status !== UCS_OK) throw new Error(`ucp_config_read: ${statusString(status)}`);
      return out[0] ?? 0;
    },
    configModify: (config, name, value) => configModify(config, name, value) as number,
    configRelease: (config) => configRelease(config),
    init: (params, config, o) => init(MIN_UCX.major, MIN_UCX.minor, params, config, o) as number,
    cleanup: (context) => cleanup(context),
    workerCreate: (context, params, o) => workerCreate(context, params, o) as number,
    workerDestroy: (worker) => workerDestroy(worker),
    workerGetAddress: (worker) => {
      const address = [0];
      const length = [0];
      const status = getAddress(worker, address, length) as number;
      if (status !== UCS_OK) return { status };
      // Copied out (not a koffi.view over UCX's memory, which is released right below).
      const bytes = Uint8Array.from(
        koffi.decode(BigInt(address[0] ?? 0), 'uint8', length[0] ?? 0) as number[],
      );
      releaseAddress(worker, address[0]);
      return { status, address: bytes };
    },
    workerProgress: (worker) => progress(worker) as number,
    workerGetEfd: (worker) => {
      const fd = [-1];
      const status = getEfd(worker, fd) as number;
      return { status, fd: status === UCS_OK ? (fd[0] ?? -1) : -1 };
    },
    workerArm: (worker) => arm(worker) as number,
    workerSignal: (worker) => signal(worker) as number,
    ...(poll && {
      waitReadable: (fd: number, timeoutMs: number, done: (result: number) => void) => {
        poll.async({ fd, events: POLLIN, revents: 0 }, 1, timeoutMs, (err: unknown, result: number) =>
          done(err ? -1 : result),
        );
      },
    }),
    epCreate: (worker, params, o) => epCreate(worker, params, o) as number,
    epClose: (ep, p) => Number(epClose(ep, param(p))),
    tagSend: (ep, buffer, length, tag, p) => Number(tagSend(ep, buffer, length, tag, param(p))),
    tagRecv: (worker, buffer, length, tag, mask, p) =>
      Number(tagRecv(worker, buffer, length, tag, mask, param(p))),
    recvTest: (request) => {
      const info = [{ sender_tag: 0n, length: 0 }];
      const status = recvTest(request, info) as number;
      return { status, length: Number(info[0]?.length ?? 0) };
    },
    requestCheck: (request) => check(request) as number,
    requestCancel: (worker, request) => cancel(worker, request),
    requestFree: (request) => free(request),
    statusString: (status) => String(statusString(status)),
  };
}

/** Address of a buffer's first byte, for a non-blocking operation (the caller keeps it alive). */
export function addressOf(data: Uint8Array): number {
  return data.byteLength === 0 ? 0 : Number(koffi.address(data));
}
