#include "mpi_library.h"

#include <dlfcn.h>

#include <mutex>

#include "hotweights/dl_symbols.h"

namespace hwmpi {

namespace {

std::mutex g_mutex;
bool g_tried = false;
std::string g_path;
LoadResult g_result;
Api g_api;

using hwdl::Resolve;

LoadResult Load(const std::string &path) {
  LoadResult r;
  // RTLD_GLOBAL: Open MPI dlopens its own components, which need libmpi's symbols.
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  if (!handle) {
    r.reason = hwdl::OpenFailure(path, dlerror(), path + " not found");
    return r;
  }
  Api a;
  std::string missing;
  Resolve(handle, "MPI_Initialized", &a.Initialized, &missing);
  Resolve(handle, "MPI_Finalized", &a.Finalized, &missing);
  Resolve(handle, "MPI_Init_thread", &a.Init_thread, &missing);
  Resolve(handle, "MPI_Finalize", &a.Finalize, &missing);
  Resolve(handle, "MPI_Abort", &a.Abort, &missing);
  Resolve(handle, "MPI_Comm_rank", &a.Comm_rank, &missing);
  Resolve(handle, "MPI_Comm_size", &a.Comm_size, &missing);
  Resolve(handle, "MPI_Comm_group", &a.Comm_group, &missing);
  Resolve(handle, "MPI_Group_incl", &a.Group_incl, &missing);
  Resolve(handle, "MPI_Group_free", &a.Group_free, &missing);
  Resolve(handle, "MPI_Comm_create_group", &a.Comm_create_group, &missing);
  Resolve(handle, "MPI_Comm_free", &a.Comm_free, &missing);
  Resolve(handle, "MPI_Comm_set_errhandler", &a.Comm_set_errhandler, &missing);
  Resolve(handle, "MPI_Bcast", &a.Bcast, &missing);
  Resolve(handle, "MPI_Allgather", &a.Allgather, &missing);
  Resolve(handle, "MPI_Barrier", &a.Barrier, &missing);
  Resolve(handle, "MPI_Error_string", &a.Error_string, &missing);
  Resolve(handle, "MPI_Get_library_version", &a.Get_library_version, &missing);
  if (!a.Init_thread) {
    r.reason = path + " is not an MPI library (no MPI_Init_thread)";
    return r;
  }
  if (!missing.empty()) {
    r.reason = path + " lacks MPI-3 functions (" + missing + ")";
    return r;
  }
  // Open MPI's handle ABI: predefined handles are addresses of these globals.
  std::string abi_missing;
  Resolve(handle, "ompi_mpi_comm_world", &a.comm_world, &abi_missing);
  Resolve(handle, "ompi_mpi_byte", &a.byte, &abi_missing);
  Resolve(handle, "ompi_mpi_errors_return", &a.errors_return, &abi_missing);
  char version[kMpiMaxLibraryVersionString + 1] = {0};
  int len = 0;
  // MPI_Get_library_version may be called before MPI_Init (MPI-3.0 section 8.1.1).
  if (a.Get_library_version(version, &len) == kMpiSuccess) {
    std::string v(version, len > 0 && len <= kMpiMaxLibraryVersionString ? len : 0);
    r.version = v.substr(0, v.find_first_of("\r\n,"));
  }
  if (!abi_missing.empty()) {
    r.reason = path + " is not Open MPI (" + (r.version.empty() ? "unknown MPI" : r.version) +
               "): only Open MPI's ABI is supported (missing " + abi_missing + ")";
    return r;
  }
  g_api = a;
  r.ok = true;
  return r;
}

}  // namespace

LoadResult LoadMpiLibrary(const std::string &path) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_tried && path == g_path) return g_result;
  if (g_tried && g_result.ok) {
    LoadResult r;
    r.reason = "this process already uses " + g_path + "; cannot also open " + path;
    return r;
  }
  g_tried = true;
  g_path = path;
  g_result = Load(path);
  return g_result;
}

const Api &GetApi() { return g_api; }

}  // namespace hwmpi
