import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { COMMAND_LOADERS, commandNameOf, loadCommands } from '../src/commands/index.js';
import { buildProgram, listCommands, main } from '../src/program.js';
import { runCli } from './run-cli.js';

const PKG_VERSION = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** Runs the program's main() here, capturing what it writes and the exit code it returns. */
async function mainInProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const writeOut = process.stdout.write;
  const writeErr = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await main(['node', 'hotweights', ...args]);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
  }
}

function stackLines(text: string): string[] {
  return text.split('\n').filter((l) => /^\s+at /.test(l));
}

describe('hotweights program', { timeout: 60_000 }, () => {
  it('prints its version with --version and -V', async () => {
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag]);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(PKG_VERSION);
    }
  });

  it('lists every registered command in --help', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: hotweights /);
    const program = buildProgram(
      () => {
        throw new Error('help needs no context');
      },
      await loadCommands(),
    );
    expect(program.commands.length).toBeGreaterThanOrEqual(Object.keys(COMMAND_LOADERS).length);
    for (const c of program.commands) expect(r.stdout).toContain(c.name());
  });

  it('loads only the command being run, each loader giving the command it is named for', async () => {
    for (const [name, load] of Object.entries(COMMAND_LOADERS)) expect((await load()).name).toBe(name);
    expect(commandNameOf(['--debug', 'replicate', '--plan', 'p.json'])).toBe('replicate');
    expect(commandNameOf(['verify-plan', '--help'])).toBe('verify-plan');
    // Help, version and unknown words load every command (for help text and suggestions).
    expect(commandNameOf(['--help'])).toBeUndefined();
    expect(commandNameOf(['-V'])).toBeUndefined();
    expect(commandNameOf(['help', 'plan'])).toBeUndefined();
    expect(commandNameOf(['replicat'])).toBeUndefined();
    const r = await runCli(['replicat']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('(Did you mean replicate?)');
  });

  it('--help works for every command, at every depth, and exits 0', async () => {
    const program = buildProgram(
      () => {
        throw new Error('help needs no context');
      },
      await loadCommands(),
    );
    const paths = listCommands(program).map((c) => c.path);
    expect(paths.map((p) => p.join(' '))).toContain('transports');
    // Through main() in this process (a node process per command would take minutes as the
    // command list grows); the real binary is checked for one command below.
    for (const path of paths) {
      const r = await mainInProcess([...path, '--help']);
      expect({ path, code: r.code, stderr: r.stderr }).toEqual({ path, code: 0, stderr: '' });
      expect(r.stdout).toContain(`Usage: hotweights ${path.join(' ')}`);
    }
    const real = await runCli(['transports', '--help']);
    expect(real.code).toBe(0);
    expect(real.stdout).toMatch(/^Usage: hotweights transports \[options\]/);
    expect(real.stdout).toContain('--json');
  });

  it('prints help on stderr and exits 1 when no command is given', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Usage: hotweights /);
  });

  it('turns an unknown command into one line and exit code 2', async () => {
    const r = await runCli(['no-such-command']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/unknown command 'no-such-command'/);
  });

  it('turns an unknown option into one line with a suggestion, exit code 2', async () => {
    const r = await runCli(['transports', '--jsn']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual([
      "hotweights: unknown option '--jsn' (Did you mean --json?)",
    ]);
  });

  it('reports a bad HOTWEIGHTS_* value as one line naming the variable, without a stack', async () => {
    const r = await runCli(['transports'], { env: { HOTWEIGHTS_INFLIGHT_BUCKETS: 'many' } });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(
      'hotweights: error [HW_CONFIG]: HOTWEIGHTS_INFLIGHT_BUCKETS="many": expected an integer',
    );
  });

  it("leaves a command's own --version flag to the command", async () => {
    // A command declaring --version (as `commit --version v2` does in the seed documents) gets
    // the value; the program's -V/--version applies only before the command name.
    const program = buildProgram(
      () => {
        throw new Error('not needed');
      },
      await loadCommands(),
    );
    let seen: string | undefined;
    program
      .command('probe-version')
      .option('--version <v>')
      .action((opts: { version?: string }) => {
        seen = opts.version;
      });
    await program.parseAsync(['node', 'hotweights', 'probe-version', '--version', 'v2']);
    expect(seen).toBe('v2');
    const r = await runCli(['transports', '--version']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe("hotweights: unknown option '--version'");
  });

  it('prints the stack with --debug, before or after the command name', async () => {
    for (const args of [
      ['--debug', 'transports'],
      ['transports', '--debug'],
    ]) {
      const r = await runCli(args, { env: { HOTWEIGHTS_INFLIGHT_BUCKETS: 'many' } });
      expect(r.code).toBe(1);
      const lines = r.stderr.trim().split('\n');
      expect(lines[0]).toBe(
        'hotweights: error [HW_CONFIG]: HOTWEIGHTS_INFLIGHT_BUCKETS="many": expected an integer',
      );
      expect(lines[1]).toMatch(/^ConfigError: HOTWEIGHTS_INFLIGHT_BUCKETS/);
      expect(stackLines(r.stderr).length).toBeGreaterThan(0);
    }
  });
});
