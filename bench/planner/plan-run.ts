/**
 * One timed plan run in a fresh process (so peak RSS is this run's): load the manifests, create
 * the plan, write it. Prints one JSON line: phase times (ms), items, buckets, peak RSS (bytes).
 * Usage: plan-run.ts <prev|-> <next> <out.json> <bucketBytes> (manifests binary or JSON)
 */
import { performance } from 'node:perf_hooks';
import { loadManifest } from '@hotweights/manifest';
import { createPlan, writePlan } from '@hotweights/planner';

const [prevPath, nextPath, outPath, bucketArg] = process.argv.slice(2);
if (!nextPath || !outPath || !bucketArg)
  throw new Error('usage: plan-run.ts <prev|-> <next> <out> <bucketBytes>');
const cpu0 = process.cpuUsage();
/** CPU ms of this process (all its threads) since the start: robust to a machine shared with others. */
const cpu = () => {
  const u = process.cpuUsage(cpu0);
  return (u.user + u.system) / 1000;
};
const t0 = performance.now();
// As `hotweights plan` does: both reads start at once, next is validated while prev still reads.
const prevLoad = prevPath && prevPath !== '-' ? loadManifest(prevPath, { lazyIndex: true, map: true }) : null;
prevLoad?.catch(() => {});
const next = await loadManifest(nextPath, { map: true });
const prev = prevLoad ? await prevLoad : null;
const t1 = performance.now();
const c1 = cpu();
const plan = createPlan({
  prev,
  next,
  checkpointRoot: '/ckpt',
  nextManifestPath: nextPath,
  bucketBytes: Number(bucketArg),
});
const t2 = performance.now();
const c2 = cpu();
await writePlan(plan, outPath);
const t3 = performance.now();
// Peak memory of the run itself: counting items below builds the item objects.
const peakRss = process.resourceUsage().maxRSS * 1024;
console.log(
  JSON.stringify({
    load_ms: t1 - t0,
    plan_ms: t2 - t1,
    write_ms: t3 - t2,
    total_ms: t3 - t0,
    cpu_ms: cpu(),
    load_cpu_ms: c1,
    plan_cpu_ms: c2 - c1,
    items: plan.buckets.reduce((s, b) => s + b.items.length, 0),
    buckets: plan.buckets.length,
    planned_bytes: plan.total_bytes,
    peak_rss: peakRss,
  }),
);
