import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const PACKAGE = resolve(import.meta.dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'hw-dl-symbols-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The include directory as a binding.gyp asks for it: `node -p` in the addon's folder. */
function includeDir(cwd: string): string {
  const printed = execFileSync('node', ['-p', "require('@hotweights/native-loader/include').include_dir"], {
    cwd,
    encoding: 'utf8',
  }).trim();
  return resolve(cwd, printed);
}

describe('hotweights/dl_symbols.h', () => {
  it('is found through the include export, relative to the addon folder, and ships in the tarball', () => {
    const addon = resolve(PACKAGE, '../transport-mpi');
    expect(existsSync(join(includeDir(addon), 'hotweights/dl_symbols.h'))).toBe(true);
    const [{ files }] = JSON.parse(
      execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
        cwd: PACKAGE,
        encoding: 'utf8',
      }),
    ) as [{ files: { path: string }[] }];
    const shipped = files.map((f) => f.path);
    expect(shipped).toEqual(expect.arrayContaining(['include.cjs', 'include/hotweights/dl_symbols.h']));
  });

  it('words a missing library as the caller asks and resolves required, fallback and optional symbols', () => {
    // A real dlopen of the C math library, built against the header as an addon would be.
    const source = join(tmp, 'probe.cc');
    writeFileSync(
      source,
      `#include <cstdio>
#include "hotweights/dl_symbols.h"
int main() {
  dlopen("libnope.so.9", RTLD_NOW);
  const char *err = dlerror();
  std::printf("%s\\n", hwdl::OpenFailure("libnope.so.9", err, "libnope.so.9 not found").c_str());
  std::printf("%s\\n", hwdl::OpenFailure("x.so", nullptr, "x.so not found").c_str());
  void *m = dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
  double (*cosine)(double) = nullptr, (*sine)(double) = nullptr, (*none)(double) = nullptr;
  std::string missing;
  bool found = hwdl::Resolve(m, "cos", &cosine, &missing);
  hwdl::Resolve(m, "hw_no_sin", &sine, &missing, "sin");
  hwdl::Resolve(m, "hw_absent_a", &none, &missing);
  hwdl::Resolve(m, "hw_absent_b", &none, &missing);
  hwdl::Resolve(m, "hw_optional", &none);
  std::printf("%d %g %g %d [%s]\\n", found, cosine(0), sine(0), none == nullptr, missing.c_str());
}
`,
    );
    const binary = join(tmp, 'probe');
    execFileSync('c++', ['-std=c++17', `-I${includeDir(PACKAGE)}`, source, '-o', binary, '-ldl']);
    expect(execFileSync(binary, { encoding: 'utf8' }).split('\n')).toEqual([
      'libnope.so.9 not found',
      'cannot open x.so: unknown dlopen error',
      '1 1 0 1 [hw_absent_a, hw_absent_b]',
      '',
    ]);
  });
});
