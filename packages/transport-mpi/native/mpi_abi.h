// The slice of Open MPI's C ABI this addon uses, declared by hand so the addon builds without
// mpi.h and loads where no MPI is installed. Open MPI handles are pointers to exported globals
// (MPI_COMM_WORLD is &ompi_mpi_comm_world, MPI_BYTE is &ompi_mpi_byte, ...), looked up with dlsym.
// An MPI with another ABI (MPICH's integer handles) lacks those symbols and is reported unusable.
// test/abi.test.ts compiles a C probe with mpicc and checks these values against the real mpi.h.
#pragma once

#include <cstddef>

namespace hwmpi {

using MPI_Comm = void *;
using MPI_Datatype = void *;
using MPI_Group = void *;
using MPI_Errhandler = void *;

constexpr int kMpiSuccess = 0;
constexpr int kMpiThreadSerialized = 2;
constexpr int kMpiThreadMultiple = 3;
constexpr int kMpiMaxErrorString = 256;
constexpr int kMpiMaxLibraryVersionString = 256;

using FnInitialized = int (*)(int *);
using FnFinalized = int (*)(int *);
using FnInitThread = int (*)(int *, char ***, int, int *);
using FnFinalize = int (*)();
using FnAbort = int (*)(MPI_Comm, int);
using FnCommRank = int (*)(MPI_Comm, int *);
using FnCommSize = int (*)(MPI_Comm, int *);
using FnCommGroup = int (*)(MPI_Comm, MPI_Group *);
using FnGroupIncl = int (*)(MPI_Group, int, const int *, MPI_Group *);
using FnGroupFree = int (*)(MPI_Group *);
using FnCommCreateGroup = int (*)(MPI_Comm, MPI_Group, int, MPI_Comm *);
using FnCommFree = int (*)(MPI_Comm *);
using FnCommSetErrhandler = int (*)(MPI_Comm, MPI_Errhandler);
using FnBcast = int (*)(void *, int, MPI_Datatype, int, MPI_Comm);
using FnAllgather = int (*)(const void *, int, MPI_Datatype, void *, int, MPI_Datatype, MPI_Comm);
using FnBarrier = int (*)(MPI_Comm);
using FnErrorString = int (*)(int, char *, int *);
using FnGetLibraryVersion = int (*)(char *, int *);

// Function pointers and handles resolved from the opened library.
struct Api {
  FnInitialized Initialized = nullptr;
  FnFinalized Finalized = nullptr;
  FnInitThread Init_thread = nullptr;
  FnFinalize Finalize = nullptr;
  FnAbort Abort = nullptr;
  FnCommRank Comm_rank = nullptr;
  FnCommSize Comm_size = nullptr;
  FnCommGroup Comm_group = nullptr;
  FnGroupIncl Group_incl = nullptr;
  FnGroupFree Group_free = nullptr;
  FnCommCreateGroup Comm_create_group = nullptr;
  FnCommFree Comm_free = nullptr;
  FnCommSetErrhandler Comm_set_errhandler = nullptr;
  FnBcast Bcast = nullptr;
  FnAllgather Allgather = nullptr;
  FnBarrier Barrier = nullptr;
  FnErrorString Error_string = nullptr;
  FnGetLibraryVersion Get_library_version = nullptr;
  MPI_Comm comm_world = nullptr;
  MPI_Datatype byte = nullptr;
  MPI_Errhandler errors_return = nullptr;
};

}  // namespace hwmpi
