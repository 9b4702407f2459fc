/**
 * The struct layouts the koffi bindings assume, against the installed UCX headers: a tiny C
 * program compiled here prints sizeof/offsetof of every struct member and typedef we bind.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assumedLayout, loadUcp } from '../src/ucp.js';

const dir = mkdtempSync(join(tmpdir(), 'hw-ucx-layout-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const assumed = assumedLayout();

function probeSource(): string {
  const lines = ['#include <stdio.h>', '#include <stddef.h>', '#include <ucp/api/ucp.h>', 'int main(void) {'];
  lines.push('  printf("{\\"structs\\":{");');
  Object.entries(assumed.structs).forEach(([name, layout], i) => {
    const members = Object.keys(layout.offsets)
      .map((m) => `\\"${m}\\":%zu`)
      .join(',');
    const args = Object.keys(layout.offsets)
      .map((m) => `offsetof(${name}, ${m})`)
      .join(', ');
    lines.push(
      `  printf("${i ? ',' : ''}\\"${name}\\":{\\"size\\":%zu,\\"offsets\\":{${members}}}", sizeof(${name}), ${args});`,
    );
  });
  lines.push('  printf("},\\"scalars\\":{");');
  Object.keys(assumed.scalars).forEach((name, i) => {
    lines.push(`  printf("${i ? ',' : ''}\\"${name}\\":%zu", sizeof(${name}));`);
  });
  lines.push('  printf("},\\"version\\":[%d,%d]}\\n", UCP_API_MAJOR, UCP_API_MINOR);', '  return 0;', '}');
  return lines.join('\n');
}

describe('UCX struct layouts', () => {
  it('match the installed headers member by member', () => {
    const source = join(dir, 'probe.c');
    writeFileSync(source, probeSource());
    execFileSync('gcc', ['-o', join(dir, 'probe'), source], { stdio: 'pipe' });
    const actual = JSON.parse(execFileSync(join(dir, 'probe'), { encoding: 'utf8' })) as {
      structs: unknown;
      scalars: unknown;
      version: [number, number];
    };
    expect(actual.structs).toEqual(assumed.structs);
    expect(actual.scalars).toEqual(assumed.scalars);
    // The headers and the library loaded at run time are the same UCX here.
    const { ucp } = loadUcp();
    expect([ucp?.version.major, ucp?.version.minor]).toEqual(actual.version);
  });
});
