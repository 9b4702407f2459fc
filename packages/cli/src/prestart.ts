/**
 * What a command starts before the CLI's modules load (Node's module loader spends ~50 ms on them,
 * on one core). `publish`: its hash workers, which boot on the other core meanwhile (see
 * @hotweights/planner's hash-prestart). Nothing here may import a package's entry point.
 */
import { prestartHashWorkers } from '@hotweights/planner/hash-prestart';

export function prestart(args: readonly string[]): void {
  if (args[0] === 'publish' && !args.includes('--help') && !args.includes('-h')) prestartHashWorkers();
}
