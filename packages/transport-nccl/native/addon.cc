// N-API surface of the NCCL transport. JS owns policy (which communicators, deadlines, what a
// failure means); this file opens the libraries, hands work to each transport's engine thread and
// settles promises on the JS thread.
#include <napi.h>

#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include "device_library.h"
#include "nccl_engine.h"

namespace hwnccl {
namespace {

struct State {
  int next_engine = 1;
  int next_comm = 1;
  int pending = 0;  // ops submitted and not yet settled; the event loop stays alive while > 0
  bool tsfn_made = false;
  // After an abort a thread may stay stuck in a call that never returns (ncclCommInitRank with a
  // dead peer): its pending op must not keep the process alive.
  bool abandoned = false;
  Napi::ThreadSafeFunction tsfn;
  // Engines are never deleted: a detached thread may still be inside a blocked call.
  std::unordered_map<int, Engine *> engines;
};

// Never destroyed: detached engine threads may still run while the process exits.
State &g_state = *new State;

// Guards the hand-over of finished ops to the JS thread against the environment's teardown: once
// the cleanup hook ran, engine threads (some may outlive it, after an abort) never touch the
// thread-safe function again, which Node frees with the environment.
std::mutex &g_exit_mutex = *new std::mutex;
bool g_exiting = false;

void OnEnvCleanup(void *) {
  {
    std::lock_guard<std::mutex> lock(g_exit_mutex);
    g_exiting = true;
  }
  // An engine may still be copying into a JS buffer (an op abandoned after an abort): let it
  // finish that before V8's heap goes away.
  for (auto &entry : g_state.engines) entry.second->Quiesce(2000);
}

std::string Str(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string("expected ") + what + " as a string");
  return info[i].As<Napi::String>().Utf8Value();
}

int Int(const Napi::CallbackInfo &info, size_t i, const char *what) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string("expected ") + what + " as a number");
  return info[i].As<Napi::Number>().Int32Value();
}

Engine *EngineArg(const Napi::CallbackInfo &info) {
  auto it = g_state.engines.find(Int(info, 0, "the engine id"));
  if (it == g_state.engines.end()) throw Napi::Error::New(info.Env(), "no such NCCL engine");
  return it->second;
}

Libraries Loaded(const Napi::CallbackInfo &info) {
  Libraries libs = LoadLibraries(Str(info, 0, "the NCCL library path"), Str(info, 1, "the CUDA runtime path"));
  if (!libs.ok) throw Napi::Error::New(info.Env(), libs.reason);
  return libs;
}

void Settle(Napi::Env env, Op *op) {
  if (op->ok) {
    op->deferred.Resolve(op->kind == Op::Kind::kSplit ? Napi::Boolean::New(env, op->has_comm) : env.Undefined());
  } else {
    op->deferred.Reject(Napi::Error::New(env, op->error).Value());
  }
  delete op;
  if (--g_state.pending == 0 && !g_state.abandoned) g_state.tsfn.Unref(env);
}

Napi::Promise Submit(Napi::Env env, Engine *engine, Op *op) {
  Napi::Promise promise = op->deferred.Promise();
  if (g_state.pending++ == 0 && !g_state.abandoned) g_state.tsfn.Ref(env);
  engine->Submit(op);
  return promise;
}

// probe(ncclPath, cudartPath) -> {ok, reason?, nccl?, cudaRuntime?, cudart?, devices, split}.
// Opens the libraries and counts devices; creates no context and no communicator.
Napi::Value Probe(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Libraries r = LoadLibraries(Str(info, 0, "the NCCL library path"), Str(info, 1, "the CUDA runtime path"));
  Napi::Object out = Napi::Object::New(env);
  out.Set("ok", r.ok);
  if (!r.ok) out.Set("reason", r.reason);
  if (r.nccl_version) out.Set("nccl", VersionText(r.nccl_version, true));
  if (r.cuda_runtime_version) out.Set("cudaRuntime", VersionText(r.cuda_runtime_version, false));
  if (!r.cudart_path.empty()) out.Set("cudart", r.cudart_path);
  out.Set("devices", r.devices);
  out.Set("split", r.split);
  return out;
}

// uniqueId(ncclPath, cudartPath) -> Uint8Array(128): ncclGetUniqueId, for rank 0 to hand out.
Napi::Value UniqueId(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Loaded(info);
  ncclUniqueId id{};
  ncclResult_t rc = Nccl().GetUniqueId(&id);
  if (rc != kNcclSuccess) throw Napi::Error::New(env, NcclErrorText("ncclGetUniqueId", rc, nullptr));
  Napi::Uint8Array out = Napi::Uint8Array::New(env, kNcclUniqueIdBytes);
  std::memcpy(out.Data(), id.internal, kNcclUniqueIdBytes);
  return out;
}

// open(ncclPath, cudartPath, device) -> {engine, done}: a new engine; done settles once the
// device is selected and the streams exist.
Napi::Value Open(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Loaded(info);
  int device = Int(info, 2, "the device ordinal");
  if (!g_state.tsfn_made) {
    g_state.tsfn = Napi::ThreadSafeFunction::New(
        env, Napi::Function::New(env, [](const Napi::CallbackInfo &) {}), "hotweights-nccl", 0, 1);
    g_state.tsfn.Unref(env);
    g_state.tsfn_made = true;
    // Registered after the thread-safe function, so it runs before that is torn down.
    napi_add_env_cleanup_hook(env, OnEnvCleanup, nullptr);
  }
  int id = g_state.next_engine++;
  auto *engine = new Engine(device, [](Op *op) {
    std::lock_guard<std::mutex> lock(g_exit_mutex);
    if (g_exiting) return;  // the op is abandoned with the process
    g_state.tsfn.NonBlockingCall(op, [](Napi::Env env, Napi::Function, Op *done) {
      // An op abandoned after an abort may finish while the process exits: then there is no env,
      // or one that can no longer run JS (napi calls fail and node-addon-api throws). Nothing is
      // waiting for it any more.
      if (static_cast<napi_env>(env) == nullptr) return;
      try {
        Settle(env, done);
      } catch (const Napi::Error &) {
      }
    });
  });
  g_state.engines[id] = engine;
  auto *op = new Op(env);
  op->kind = Op::Kind::kSetup;
  Napi::Object out = Napi::Object::New(env);
  out.Set("engine", id);
  out.Set("done", Submit(env, engine, op));
  return out;
}

// initComm(engine, uniqueId, nranks, rank) -> {id, done}: ncclCommInitRank; id is usable at once.
Napi::Value InitComm(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Engine *engine = EngineArg(info);
  if (info.Length() < 2 || !info[1].IsTypedArray())
    throw Napi::TypeError::New(env, "expected the unique id as a Uint8Array");
  Napi::Uint8Array id = info[1].As<Napi::Uint8Array>();
  if (id.ByteLength() != kNcclUniqueIdBytes)
    throw Napi::RangeError::New(env, "an NCCL unique id has " + std::to_string(kNcclUniqueIdBytes) + " bytes");
  auto *op = new Op(env);
  op->kind = Op::Kind::kInitComm;
  std::memcpy(op->unique_id.internal, id.Data(), kNcclUniqueIdBytes);
  op->nranks = Int(info, 2, "the number of ranks");
  op->rank = Int(info, 3, "the rank");
  op->comm_id = g_state.next_comm++;
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", op->comm_id);
  out.Set("done", Submit(env, engine, op));
  return out;
}

// split(engine, parentId, color, key) -> {id, done: Promise<boolean>} (false: not a member).
Napi::Value Split(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Engine *engine = EngineArg(info);
  auto *op = new Op(env);
  op->kind = Op::Kind::kSplit;
  op->parent_id = Int(info, 1, "the parent communicator");
  op->color = Int(info, 2, "the color");
  op->key = Int(info, 3, "the key");
  op->comm_id = g_state.next_comm++;
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", op->comm_id);
  out.Set("done", Submit(env, engine, op));
  return out;
}

// bcast(engine, commId, root, rank, Uint8Array, chunkBytes) -> Promise<void>; root and rank are
// ranks inside the communicator.
Napi::Value Bcast(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Engine *engine = EngineArg(info);
  if (info.Length() < 6 || !info[4].IsTypedArray())
    throw Napi::TypeError::New(env, "expected (engine, commId, root, rank, Uint8Array, chunkBytes)");
  Napi::TypedArray view = info[4].As<Napi::TypedArray>();
  if (view.TypedArrayType() != napi_uint8_array) throw Napi::TypeError::New(env, "data must be a Uint8Array");
  Napi::Uint8Array bytes = view.As<Napi::Uint8Array>();
  auto *op = new Op(env);
  op->kind = Op::Kind::kBcast;
  op->comm_id = Int(info, 1, "the communicator");
  op->root = Int(info, 2, "the root");
  op->rank = Int(info, 3, "the rank");
  op->host = bytes.Data();
  op->length = bytes.ByteLength();
  double chunk = info[5].As<Napi::Number>().DoubleValue();
  op->chunk = chunk > 0 ? static_cast<size_t>(chunk) : 0;
  op->keep = Napi::Persistent(bytes.As<Napi::Object>());
  return Submit(env, engine, op);
}

// abort(engine, reason): ncclCommAbort on every communicator of the engine, from this thread.
Napi::Value Abort(const Napi::CallbackInfo &info) {
  EngineArg(info)->Abort(Str(info, 1, "the reason"));
  if (!g_state.abandoned && g_state.pending > 0) g_state.tsfn.Unref(info.Env());
  g_state.abandoned = true;
  return info.Env().Undefined();
}

// close(engine) -> Promise<void>: ncclCommDestroy, frees the slots and streams, ends the thread.
Napi::Value Close(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Engine *engine = EngineArg(info);
  auto *op = new Op(env);
  op->kind = Op::Kind::kClose;
  return Submit(env, engine, op);
}

}  // namespace

Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, Probe));
  exports.Set("uniqueId", Napi::Function::New(env, UniqueId));
  exports.Set("open", Napi::Function::New(env, Open));
  exports.Set("initComm", Napi::Function::New(env, InitComm));
  exports.Set("split", Napi::Function::New(env, Split));
  exports.Set("bcast", Napi::Function::New(env, Bcast));
  exports.Set("abort", Napi::Function::New(env, Abort));
  exports.Set("close", Napi::Function::New(env, Close));
  return exports;
}

}  // namespace hwnccl

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return hwnccl::InitModule(env, exports); }

NODE_API_MODULE(hotweights_nccl, InitAddon)
