/** One table from method name to handler: every RPC of protocol.ts is served by exactly one entry. */
import type { JsonObject } from '@hotweights/manifest';
import type { MethodName } from '../protocol.js';
import { ackHandle, getHandle, postHandle } from './handles.js';
import { reportHave, whoHas } from './holders.js';
import { getCurrentManifest, setCurrentManifest } from './manifests.js';
import { heartbeat, listWorkers, register } from './membership.js';
import { rendezvous } from './rendezvous.js';
import type { CoordinatorState } from './state.js';
import { abort, begin, commit, getPlan, getUpdate, precommit, rollback, submitPlan } from './updates.js';

export interface HandlerContext {
  readonly state: CoordinatorState;
  /** The status view (it also needs the service's token guard). */
  readonly status: () => unknown;
}

export type Handler = (ctx: HandlerContext, params: JsonObject) => unknown;

export const HANDLERS: Readonly<Record<MethodName, Handler>> = {
  // liveness and views
  ping: () => ({ pong: true, now: Date.now() }),
  status: (ctx) => ctx.status(),
  // membership and leases
  list_workers: (ctx) => listWorkers(ctx.state),
  register: (ctx, p) => register(ctx.state, p),
  heartbeat: (ctx, p) => heartbeat(ctx.state, p),
  // the update state machine
  get_plan: (ctx, p) => getPlan(ctx.state, p),
  submit_plan: (ctx, p) => submitPlan(ctx.state, p),
  begin: (ctx, p) => begin(ctx.state, p),
  precommit: (ctx, p) => precommit(ctx.state, p),
  commit: (ctx, p) => commit(ctx.state, p),
  abort: (ctx, p) => abort(ctx.state, p),
  get_update: (ctx, p) => getUpdate(ctx.state, p),
  rollback: (ctx, p) => rollback(ctx.state, p),
  // manifests
  get_current_manifest: (ctx) => getCurrentManifest(ctx.state),
  set_current_manifest: (ctx, p) => setCurrentManifest(ctx.state, p),
  // bucket holders
  who_has: (ctx, p) => whoHas(ctx.state, p),
  report_have: (ctx, p) => reportHave(ctx.state, p),
  // the update's rendezvous (node ids, transport addresses)
  rendezvous: (ctx, p) => rendezvous(ctx.state, p),
  // transfer handles
  post_handle: (ctx, p) => postHandle(ctx.state, p),
  get_handle: (ctx, p) => getHandle(ctx.state, p),
  ack_handle: (ctx, p) => ackHandle(ctx.state, p),
};
