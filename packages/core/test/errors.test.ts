import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  AdapterError,
  ERROR_BRAND,
  hasErrorCode,
  isErrorKind,
  isHotweightsError,
  NoTransportError,
  TransportError,
} from '@hotweights/core';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

type ErrorsModule = typeof import('../src/errors.js');

/**
 * A second copy of core's errors module, as an application gets when a plugin brings its own
 * @hotweights/core: the same source compiled into a separate file in a temporary folder.
 */
let dir: string;
let other: ErrorsModule;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hw-errors-copy-'));
  const source = await readFile(fileURLToPath(new URL('../src/errors.ts', import.meta.url)), 'utf8');
  const js = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  }).outputText;
  await writeFile(join(dir, 'errors.mjs'), js);
  other = (await import(pathToFileURL(join(dir, 'errors.mjs')).href)) as ErrorsModule;
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('errors are recognised by brand and code across copies of core', () => {
  it('the copy is really another module (instanceof fails)', () => {
    const theirs = new other.AdapterError('from the copy');
    expect(theirs instanceof AdapterError).toBe(false);
    expect(other.ERROR_BRAND).toBe(ERROR_BRAND);
  });

  it("this copy recognises the other copy's errors by kind and code", () => {
    const theirs = new other.NoTransportError('nothing here', { mpi: 'not under mpirun' });
    expect(isHotweightsError(theirs)).toBe(true);
    expect(isErrorKind(theirs, 'TransportError')).toBe(true);
    expect(isErrorKind(theirs, 'NoTransportError')).toBe(true);
    expect(isErrorKind(theirs, 'AdapterError')).toBe(false);
    expect(hasErrorCode(theirs, 'HW_NO_TRANSPORT')).toBe(true);
    expect(hasErrorCode(theirs, 'HW_TRANSPORT', 'HW_NO_TRANSPORT')).toBe(true);
    expect(hasErrorCode(theirs, 'HW_TRANSPORT')).toBe(false);
  });

  it("the other copy recognises this copy's errors", () => {
    const ours = new TransportError('timed out', { code: 'HW_TIMEOUT' });
    expect(other.isHotweightsError(ours)).toBe(true);
    expect(other.isErrorKind(ours, 'TransportError')).toBe(true);
    expect(other.isErrorKind(ours, 'NoTransportError')).toBe(false);
    expect(other.hasErrorCode(ours, 'HW_TIMEOUT')).toBe(true);
  });

  it('plain errors and look-alikes without the brand are not hotweights errors', () => {
    const lookalike = Object.assign(new Error('x'), { code: 'HW_ADAPTER', name: 'AdapterError' });
    expect(isHotweightsError(lookalike)).toBe(false);
    expect(hasErrorCode(lookalike, 'HW_ADAPTER')).toBe(false);
    expect(isHotweightsError(null)).toBe(false);
    expect(isHotweightsError('HW_ADAPTER')).toBe(false);
  });

  it('the brand is not enumerable (spreads and listings of an error do not carry it)', () => {
    const e = new NoTransportError('none', { local: 'down' });
    expect(Object.getOwnPropertyDescriptor(e, ERROR_BRAND)?.enumerable).toBe(false);
    expect(Object.getOwnPropertySymbols({ ...e })).toEqual([]);
    expect(e.code).toBe('HW_NO_TRANSPORT');
    expect(e.name).toBe('NoTransportError');
  });
});
