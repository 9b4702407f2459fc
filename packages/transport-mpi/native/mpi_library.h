// Opens the MPI shared library with dlopen and resolves the Api. Never aborts: every failure
// becomes a reason string that the probe shows to the user.
#pragma once

#include <string>

#include "mpi_abi.h"

namespace hwmpi {

struct LoadResult {
  bool ok = false;
  std::string reason;   // why the library is unusable (when !ok)
  std::string version;  // MPI_Get_library_version's first line (when ok)
};

// Opens `path` once (later calls with the same path return the cached result; another path
// after a successful load is refused, since one process can only host one MPI).
LoadResult LoadMpiLibrary(const std::string &path);

// The resolved functions; valid only after LoadMpiLibrary returned ok.
const Api &GetApi();

}  // namespace hwmpi
