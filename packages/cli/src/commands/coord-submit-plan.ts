import { readFile } from 'node:fs/promises';
import { CheckpointError, isErrorKind, SchemaError } from '@hotweights/core';
import { isBinaryManifest, loadPlan, parseManifestBinary, serializeManifest } from '@hotweights/manifest';
import type { CommandModule } from '../command.js';
import { coordinatorManifestSource, endpointOption, withClient } from './coord-client.js';
import { setCoordinatorManifestSource } from './plan.js';

async function readManifestDocument(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    const bytes = await readFile(path);
    // A binary manifest (publish's default) is validated and sent in its JSON form.
    if (isBinaryManifest(bytes))
      return JSON.parse(serializeManifest(parseManifestBinary(bytes, path))) as Record<string, unknown>;
    text = bytes.toString('utf8');
  } catch (err) {
    if (isErrorKind(err, 'SchemaError')) throw err;
    throw new CheckpointError(
      `cannot read manifest ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      {
        cause: err,
      },
    );
  }
  try {
    const doc = JSON.parse(text) as unknown;
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new Error('not an object');
    return doc as Record<string, unknown>;
  } catch (err) {
    throw new SchemaError({
      file: path,
      field: '(root)',
      expected: 'a JSON manifest object',
      got: (err as Error).message,
    });
  }
}

export const coordSubmitPlanCommand: CommandModule = {
  name: 'coord-submit-plan',
  register(program, ctx) {
    // The control plane is installed: `plan --coord-endpoint` can ask the coordinator.
    setCoordinatorManifestSource(coordinatorManifestSource);
    endpointOption(
      program
        .command('coord-submit-plan')
        .description(
          'Send a plan (and optionally its next manifest, which becomes current on commit) to the coordinator',
        )
        .requiredOption('--plan <file>', 'plan JSON written by `hotweights plan`')
        .option(
          '--manifest <file>',
          "the next version's manifest (default: the plan's next_manifest.path if readable)",
        )
        .option('--json', 'print the reply as JSON'),
    ).action(
      async (opts: {
        plan: string;
        manifest?: string;
        json?: boolean;
        endpoint?: string;
        timeout?: string;
      }) => {
        const c = ctx();
        const plan = await loadPlan(opts.plan);
        let manifestPath = opts.manifest;
        if (!manifestPath && plan.next_manifest.path) {
          try {
            await readFile(plan.next_manifest.path, { flag: 'r' });
            manifestPath = plan.next_manifest.path;
          } catch {
            // Not readable from here: commit will not change the current manifest.
          }
        }
        const manifest = manifestPath ? await readManifestDocument(manifestPath) : undefined;
        const reply = await withClient(c, opts, (client) => client.submitPlan(plan, manifest));
        if (opts.json) c.json(reply);
        else
          c.out(
            `plan for ${reply.version} submitted (${reply.buckets} bucket(s), ${reply.plan_digest.slice(0, 19)}…)${manifest ? ' with its manifest' : ''}; start it with: hotweights begin --version ${reply.version}`,
          );
      },
    );
  },
};
