import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadNative } from '../src/index.js';

// The addon declares Open MPI's ABI by hand (native/mpi_abi.h). This compiles a C probe against
// the installed mpi.h with mpicc and checks that the hand-written values still match.
const PROBE = `#include <mpi.h>
#include <stdio.h>
int main(void) {
  printf("{\\"MPI_SUCCESS\\":%d,\\"MPI_THREAD_SERIALIZED\\":%d,\\"MPI_THREAD_MULTIPLE\\":%d,", MPI_SUCCESS, MPI_THREAD_SERIALIZED, MPI_THREAD_MULTIPLE);
  printf("\\"MPI_MAX_ERROR_STRING\\":%d,\\"MPI_MAX_LIBRARY_VERSION_STRING\\":%d,", MPI_MAX_ERROR_STRING, MPI_MAX_LIBRARY_VERSION_STRING);
  printf("\\"handleBytes\\":%d,", (int)sizeof(MPI_Comm));
  /* Predefined handles must be the addresses of the globals the addon looks up with dlsym. */
  printf("\\"worldIsGlobal\\":%d,", (void *)MPI_COMM_WORLD == (void *)&ompi_mpi_comm_world);
  printf("\\"byteIsGlobal\\":%d,", (void *)MPI_BYTE == (void *)&ompi_mpi_byte);
  printf("\\"errorsReturnIsGlobal\\":%d}\\n", (void *)MPI_ERRORS_RETURN == (void *)&ompi_mpi_errors_return);
  return 0;
}
`;

const dir = mkdtempSync(join(tmpdir(), 'hw-mpi-abi-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('hand-declared Open MPI ABI', () => {
  it('matches the installed mpi.h', () => {
    writeFileSync(join(dir, 'probe.c'), PROBE);
    execFileSync('mpicc', ['-o', join(dir, 'probe'), join(dir, 'probe.c')]);
    const real = JSON.parse(execFileSync(join(dir, 'probe'), { encoding: 'utf8' })) as Record<string, number>;
    const { native } = loadNative();
    const ours = native?.abi() ?? {};
    for (const [key, value] of Object.entries(ours))
      expect({ key, value }).toEqual({ key, value: real[key] });
    expect(real.worldIsGlobal).toBe(1);
    expect(real.byteIsGlobal).toBe(1);
    expect(real.errorsReturnIsGlobal).toBe(1);
  });
});
