/* The reference: plain MPI_Bcast of the same sizes from rank 0 to every rank, timed like the
 * Node side (barrier, broadcast, barrier). Prints one JSON line per size on rank 0.
 * Usage: mpirun -n N ./bcast ITERATIONS SIZE_MIB... */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  int provided, rank, size;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int iterations = atoi(argv[1]);
  for (int a = 2; a < argc; a++) {
    size_t bytes = (size_t)atol(argv[a]) << 20;
    unsigned char *buf = malloc(bytes);
    memset(buf, rank == 0 ? 0xab : 0, bytes); /* touch every page before timing */
    double best = 1e30, total = 0;
    double *times = malloc(sizeof(double) * iterations);
    for (int i = 0; i <= iterations; i++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t = MPI_Wtime();
      for (size_t off = 0; off < bytes; off += (size_t)1 << 30) {
        size_t n = bytes - off < ((size_t)1 << 30) ? bytes - off : ((size_t)1 << 30);
        MPI_Bcast(buf + off, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
      }
      MPI_Barrier(MPI_COMM_WORLD);
      t = MPI_Wtime() - t;
      if (i == 0) continue; /* warm-up */
      times[i - 1] = t;
      total += t;
      if (t < best) best = t;
    }
    if (buf[bytes - 1] != 0xab) fprintf(stderr, "rank %d: wrong bytes\n", rank);
    if (rank == 0) {
      printf("{\"ranks\":%d,\"mib\":%ld,\"seconds\":[", size, atol(argv[a]));
      for (int i = 0; i < iterations; i++) printf("%s%.6f", i ? "," : "", times[i]);
      printf("]}\n");
      fflush(stdout);
    }
    free(times);
    free(buf);
  }
  MPI_Finalize();
  return 0;
}
