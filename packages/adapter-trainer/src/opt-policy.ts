/**
 * The optimizer-state policies as `hotweights opt-check` previews them. The rules are not written
 * here: they are read from python/src/hotweights_trainer/policies.json, the same table the Python
 * module applies to a live optimizer, so the preview and the swap cannot drift apart.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '@hotweights/core';

export type OptPolicy = 'preserve' | 'reset' | 'attenuate';

interface PolicyTable {
  readonly state: Readonly<Record<string, string>>;
  readonly actions: Readonly<Record<string, '1' | '0' | 'attenuation'>>;
  readonly policies: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

export const POLICY_TABLE_URL = new URL('../python/src/hotweights_trainer/policies.json', import.meta.url);

let table: PolicyTable | undefined;

export function policyTable(): PolicyTable {
  table ??= JSON.parse(readFileSync(POLICY_TABLE_URL, 'utf8')) as PolicyTable;
  return table;
}

/** The factor each optimizer-state entry of a changed parameter is multiplied by under `policy`. */
export function policyFactors(policy: string, attenuation: number): Record<string, number> {
  const t = policyTable();
  const rules = t.policies[policy];
  if (!rules) {
    throw new ConfigError(
      `unknown optimizer policy ${JSON.stringify(policy)}: expected one of ${Object.keys(t.policies).join(', ')}`,
    );
  }
  if (!(attenuation >= 0 && attenuation <= 1)) {
    throw new ConfigError(`attenuation ${attenuation}: expected a number in 0..1`);
  }
  const value = { '1': 1, '0': 0, attenuation } as const;
  return Object.fromEntries(
    Object.keys(t.state).map((key) => [key, value[t.actions[rules[key] as string] as keyof typeof value]]),
  );
}

export interface PolicyPreview {
  readonly policy: string;
  readonly attenuation: number;
  readonly doc: string;
  /** Per state entry: its meaning and the factor on changed / unchanged parameters. */
  readonly state: readonly { key: string; meaning: string; updated: number; unchanged: 1 }[];
  readonly updated: number;
  readonly unchanged: number;
}

/** What `policy` does to the optimizer state of `updated` changed and `unchanged` other parameters. */
export function previewPolicy(o: {
  policy: string;
  attenuation: number;
  updated: number;
  unchanged: number;
}): PolicyPreview {
  const f = policyFactors(o.policy, o.attenuation);
  const t = policyTable();
  return {
    policy: o.policy,
    attenuation: o.attenuation,
    doc: t.policies[o.policy]?.doc ?? '',
    state: Object.entries(t.state).map(([key, meaning]) => ({
      key,
      meaning,
      updated: f[key] as number,
      unchanged: 1,
    })),
    updated: o.updated,
    unchanged: o.unchanged,
  };
}
