// How a hotweights addon opens a system library with dlopen and resolves its symbols: one copy
// for every addon (transport-mpi, transport-cuda-ipc, transport-nccl), so failures read alike.
#ifndef HOTWEIGHTS_DL_SYMBOLS_H_
#define HOTWEIGHTS_DL_SYMBOLS_H_

#include <dlfcn.h>

#include <string>

namespace hwdl {

// dlerror() for a missing file is long ("...: cannot open shared object file: No such file or
// directory"); users need the short form, which each library words itself (`not_found`).
inline std::string OpenFailure(const std::string &path, const char *err, const std::string &not_found) {
  std::string text = err ? err : "unknown dlopen error";
  if (text.find("No such file") != std::string::npos) return not_found;
  return "cannot open " + path + ": " + text;
}

// Sets *out to `name`, or to `fallback` (an older entry point) when `name` is missing. When both
// are missing *out is left as is and `name` is appended to the comma list *missing; pass no list
// for an optional symbol.
template <typename T>
bool Resolve(void *handle, const char *name, T *out, std::string *missing = nullptr,
             const char *fallback = nullptr) {
  void *sym = dlsym(handle, name);
  if (!sym && fallback) sym = dlsym(handle, fallback);
  if (!sym) {
    if (missing) *missing += (missing->empty() ? "" : ", ") + std::string(name);
    return false;
  }
  *out = reinterpret_cast<T>(sym);
  return true;
}

}  // namespace hwdl

#endif  // HOTWEIGHTS_DL_SYMBOLS_H_
