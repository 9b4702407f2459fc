// N-API surface of the MPI transport. JS owns policy (groups, deadlines, what a failure means);
// this file owns the MPI session: open the library, MPI_Init_thread, hand work to the ordered MPI
// thread, settle promises on the JS thread, finalize or abort at the end.
#include <napi.h>

#include <string>
#include <vector>

#include "mpi_library.h"
#include "mpi_thread.h"

namespace hwmpi {
namespace {

struct Session {
  bool initialized = false;
  bool finalized = false;
  int rank = 0;
  int size = 0;
  int next_comm = 1;
  int pending = 0;  // ops submitted and not yet settled; the event loop stays alive while > 0
  MpiThread thread;
  Napi::ThreadSafeFunction tsfn;
};

Session g_session;

Napi::Object LoadResultObject(Napi::Env env, const LoadResult &r) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("ok", r.ok);
  if (!r.ok) out.Set("reason", r.reason);
  if (!r.version.empty()) out.Set("version", r.version);
  return out;
}

std::string PathArg(const Napi::CallbackInfo &info) {
  if (info.Length() < 1 || !info[0].IsString())
    throw Napi::TypeError::New(info.Env(), "expected the MPI library path as a string");
  return info[0].As<Napi::String>().Utf8Value();
}

void RequireRunning(Napi::Env env) {
  if (!g_session.initialized) throw Napi::Error::New(env, "MPI is not initialized (call init first)");
  if (g_session.finalized) throw Napi::Error::New(env, "MPI was already finalized in this process");
}

// probe(path) -> {ok, reason?, version?}: opens the library without initializing MPI.
Napi::Value Probe(const Napi::CallbackInfo &info) {
  return LoadResultObject(info.Env(), LoadMpiLibrary(PathArg(info)));
}

void Settle(Napi::Env env, Op *op) {
  if (op->rc == kMpiSuccess) {
    op->deferred.Resolve(env.Undefined());
  } else {
    Napi::Error err = Napi::Error::New(env, op->error);
    err.Set("mpiErrorCode", Napi::Number::New(env, op->rc));
    if (op->size_mismatch) err.Set("sizeMismatch", Napi::Boolean::New(env, true));
    op->deferred.Reject(err.Value());
  }
  delete op;
  if (--g_session.pending == 0) g_session.tsfn.Unref(env);
}

// init(path) -> {rank, size, threadLevel, version}. Idempotent within a process.
Napi::Value Init(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  std::string path = PathArg(info);
  LoadResult lib = LoadMpiLibrary(path);
  if (!lib.ok) throw Napi::Error::New(env, lib.reason);
  if (g_session.finalized) throw Napi::Error::New(env, "MPI was already finalized in this process");
  const Api &a = GetApi();
  if (!g_session.initialized) {
    int already = 0;
    a.Initialized(&already);
    if (already) throw Napi::Error::New(env, "MPI was initialized by someone else in this process");
    int provided = 0;
    int rc = a.Init_thread(nullptr, nullptr, kMpiThreadMultiple, &provided);
    if (rc != kMpiSuccess) throw Napi::Error::New(env, "MPI_Init_thread failed with code " + std::to_string(rc));
    // Every call after init runs on the one MPI thread, so SERIALIZED is enough; MULTIPLE is asked
    // for so that MPI_Abort from the JS thread is legal while the MPI thread is busy.
    if (provided < kMpiThreadSerialized) {
      a.Abort(a.comm_world, 1);
      throw Napi::Error::New(env, "MPI provides thread level " + std::to_string(provided) +
                                      ", at least MPI_THREAD_SERIALIZED is needed");
    }
    a.Comm_set_errhandler(a.comm_world, a.errors_return);
    a.Comm_rank(a.comm_world, &g_session.rank);
    a.Comm_size(a.comm_world, &g_session.size);
    g_session.tsfn = Napi::ThreadSafeFunction::New(
        env, Napi::Function::New(env, [](const Napi::CallbackInfo &) {}), "hotweights-mpi", 0, 1);
    g_session.tsfn.Unref(env);
    g_session.thread.Start(&a, [](Op *op) {
      g_session.tsfn.NonBlockingCall(op, [](Napi::Env env, Napi::Function, Op *done) { Settle(env, done); });
    });
    g_session.initialized = true;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("rank", g_session.rank);
  out.Set("size", g_session.size);
  out.Set("version", lib.version);
  return out;
}

Napi::Promise Submit(Napi::Env env, Op *op) {
  Napi::Promise promise = op->deferred.Promise();
  if (g_session.pending++ == 0) g_session.tsfn.Ref(env);
  g_session.thread.Submit(op);
  return promise;
}

// createComm(worldRanks[]) -> {id, done}: id is usable at once by later submissions.
Napi::Value CreateComm(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireRunning(env);
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "expected an array of ranks");
  Napi::Array ranks = info[0].As<Napi::Array>();
  auto *op = new Op(env);
  op->kind = Op::Kind::kCreateComm;
  for (uint32_t i = 0; i < ranks.Length(); i++) {
    int r = ranks.Get(i).As<Napi::Number>().Int32Value();
    if (r < 0 || r >= g_session.size) {
      delete op;
      throw Napi::RangeError::New(env, "rank " + std::to_string(r) + " is outside the world");
    }
    op->ranks.push_back(r);
  }
  op->comm_id = g_session.next_comm++;
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", op->comm_id);
  out.Set("done", Submit(env, op));
  return out;
}

// freeComm(id) -> Promise<void>
Napi::Value FreeComm(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireRunning(env);
  auto *op = new Op(env);
  op->kind = Op::Kind::kFreeComm;
  op->comm_id = info[0].As<Napi::Number>().Int32Value();
  return Submit(env, op);
}

// bcast(commId, root, Uint8Array, chunkBytes) -> Promise<void>
Napi::Value Bcast(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireRunning(env);
  if (info.Length() < 4 || !info[2].IsTypedArray())
    throw Napi::TypeError::New(env, "expected (commId, root, Uint8Array, chunkBytes)");
  Napi::TypedArray view = info[2].As<Napi::TypedArray>();
  if (view.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(env, "data must be a Uint8Array");
  Napi::Uint8Array bytes = view.As<Napi::Uint8Array>();
  auto *op = new Op(env);
  op->kind = Op::Kind::kBcast;
  op->comm_id = info[0].As<Napi::Number>().Int32Value();
  op->root = info[1].As<Napi::Number>().Int32Value();
  op->data = bytes.Data();
  op->length = bytes.ByteLength();
  double chunk = info[3].As<Napi::Number>().DoubleValue();
  op->chunk = chunk > 0 ? static_cast<size_t>(chunk) : 0;
  op->keep = Napi::Persistent(bytes.As<Napi::Object>());
  return Submit(env, op);
}

// barrier(commId) -> Promise<void>
Napi::Value Barrier(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  RequireRunning(env);
  auto *op = new Op(env);
  op->kind = Op::Kind::kBarrier;
  op->comm_id = info[0].As<Napi::Number>().Int32Value();
  return Submit(env, op);
}

// finalize(): runs what is queued, stops the MPI thread and calls MPI_Finalize.
Napi::Value Finalize(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!g_session.initialized || g_session.finalized) return env.Undefined();
  g_session.thread.DrainAndJoin();
  g_session.tsfn.Release();
  g_session.finalized = true;
  int rc = GetApi().Finalize();
  if (rc != kMpiSuccess) throw Napi::Error::New(env, "MPI_Finalize failed with code " + std::to_string(rc));
  return env.Undefined();
}

// abort(code): MPI_Abort on MPI_COMM_WORLD. Ends every process of the job, this one included.
Napi::Value Abort(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (!g_session.initialized || g_session.finalized) return env.Undefined();
  int code = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  GetApi().Abort(GetApi().comm_world, code);
  return env.Undefined();
}

Napi::Value Status(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("initialized", g_session.initialized);
  out.Set("finalized", g_session.finalized);
  out.Set("pending", g_session.pending);
  return out;
}

// The ABI constants this addon assumes; test/abi.test.ts compares them with mpi.h.
Napi::Value Abi(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  out.Set("MPI_SUCCESS", kMpiSuccess);
  out.Set("MPI_THREAD_SERIALIZED", kMpiThreadSerialized);
  out.Set("MPI_THREAD_MULTIPLE", kMpiThreadMultiple);
  out.Set("MPI_MAX_ERROR_STRING", kMpiMaxErrorString);
  out.Set("MPI_MAX_LIBRARY_VERSION_STRING", kMpiMaxLibraryVersionString);
  out.Set("handleBytes", static_cast<double>(sizeof(MPI_Comm)));
  return out;
}

}  // namespace

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("init", Napi::Function::New(env, Init));
  exports.Set("createComm", Napi::Function::New(env, CreateComm));
  exports.Set("freeComm", Napi::Function::New(env, FreeComm));
  exports.Set("bcast", Napi::Function::New(env, Bcast));
  exports.Set("barrier", Napi::Function::New(env, Barrier));
  exports.Set("finalize", Napi::Function::New(env, Finalize));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("status", Napi::Function::New(env, Status));
  exports.Set("abi", Napi::Function::New(env, Abi));
  return exports;
}

}  // namespace hwmpi

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return hwmpi::InitModule(env, exports); }

NODE_API_MODULE(hotweights_mpi, InitAddon)
