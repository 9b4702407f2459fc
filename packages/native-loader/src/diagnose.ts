/**
 * Turns what the dynamic loader said about an addon file into a problem and a fix. The messages
 * matched are glibc's and Node's own (`dlopen` errors and the ABI check), the failures a user of
 * a prebuilt tarball can actually meet.
 */

export interface Diagnosis {
  readonly problem: string;
  readonly fix: string;
}

/** How to rebuild the addon from the shipped sources. */
export function rebuildFix(packageName: string, tuple: string): string {
  return (
    `build it from the shipped sources with a C++ compiler, make and python3 on PATH: ` +
    `\`npm rebuild ${packageName}\` (node-gyp needs Node's headers: it downloads them, or set ` +
    `npm_config_nodedir to a Node install that has include/node), ` +
    `or install a ${packageName} tarball packed on ${tuple} (\`npm pack\` puts prebuilds/${tuple} in it)`
  );
}

/** Problem and fix for an error thrown by `require()` of an addon file that exists. */
export function diagnoseLoadFailure(
  packageName: string,
  tuple: string,
  err: unknown,
  systemLibraries: Readonly<Record<string, string>>,
): Diagnosis {
  const text = err instanceof Error ? err.message : String(err);
  const rebuild = rebuildFix(packageName, tuple);
  const missingLib = /([\w.+-]+\.so(?:\.[\d.]+)?): cannot open shared object file/.exec(text)?.[1];
  if (missingLib) {
    const known = Object.entries(systemLibraries).find(([prefix]) => missingLib.startsWith(prefix));
    return {
      problem: `the system library ${missingLib} is not installed (${firstLine(text)})`,
      fix: known
        ? `install it: ${known[1]}`
        : `install the system package that provides ${missingLib} (Debian/Ubuntu: \`apt-file search ${missingLib}\` names it), or ${rebuild}`,
    };
  }
  const glibc = /version `(GLIBC(?:XX)?_[\d.]+)' not found/.exec(text)?.[1];
  if (glibc)
    return {
      problem: `the prebuild needs ${glibc}, newer than this system's C library (${firstLine(text)})`,
      fix: rebuild,
    };
  if (/NODE_MODULE_VERSION|compiled against a different Node\.js version/.test(text))
    return { problem: `it was built for another Node.js version (${firstLine(text)})`, fix: rebuild };
  if (/invalid ELF header|wrong ELF class|ELF file|not a valid|file too short|exec format/i.test(text))
    return {
      problem: `it is not a library for this platform and architecture (${firstLine(text)})`,
      fix: `remove it and ${rebuild}`,
    };
  return { problem: firstLine(text), fix: rebuild };
}

function firstLine(text: string): string {
  return text.split('\n')[0]?.trim() ?? text;
}
