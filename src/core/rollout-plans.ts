import type { Execution } from '../domain/deployment.js';
import { deploymentOutcome } from '../domain/deployment.js';
import type { Fleet } from '../fleet/fleet.js';
import type { Store } from '../store/store.js';
import type { Active, ExecutionDriver, Transition } from './rollout-state.js';
import { editExecution, newExecution, plannedExecutions, ringOf } from './rollout-state.js';

/** What planning a deployment's transitions needs of its controller. */
export interface PlanContext {
  readonly fleet: Fleet;
  readonly driver: ExecutionDriver;
  readonly store: Store;
  /** A deployment that has ended leaves memory once nothing it started is outstanding. */
  retire(a: Active): void;
  /** The device no longer has an execution in flight. */
  settle(a: Active, e: Execution): void;
}

/*
 * The plans of a deployment's transitions: each edits a Transition (copies of the record and executions)
 * and queues what happens once it is committed; nothing here changes memory or the store by itself.
 */

/**
 * Plans the move to `stage`: its ring's devices (and devices that moved into
 * rings already reached) are queued. A ring with no devices has nothing to
 * wait for: it is passed at once, without a soak, with an evaluation that
 * says so, and the next one begins.
 */
export function planStage(ctx: PlanContext, a: Active, t: Transition, stage: number, now: number): void {
  const last = a.rec.spec.stages.length - 1;
  let added = 0;
  for (let k = stage; ; k++) {
    t.rec.stage = k;
    t.rec.phase = 'dispatching';
    t.rec.soakUntil = null;
    for (let j = 0; j <= k; j++) added += planMembers(ctx, a, t, j, now);
    t.after.push((x) => (x.lastMemberScan = now));
    if (stageSize(a, t, k) > 0) return;
    const ring = ringOf(a, k);
    t.evaluations.push({ stage: k, ring, at: now, verdict: 'skip', reason: `ring ${ring} has no devices: skipped at once, without a soak`, figures: { devices: 0 } });
    t.after.push((x) => x.lastVerdict.set(k, 'skip'));
    if (k >= last) {
      // Devices queued just now for earlier rings are updated first; the deployment completes once they are.
      if (added === 0) planComplete(ctx, a, t, now);
      return;
    }
  }
}

/** Queues (in the plan) every device of the stage's ring that has no execution yet; returns how many. */
export function planMembers(ctx: PlanContext, a: Active, t: Transition, stage: number, now: number): number {
  let n = 0;
  for (const deviceId of ctx.fleet.members(ringOf(a, stage))) {
    if (a.execs.has(deviceId) || t.execs.has(deviceId)) continue;
    t.execs.set(deviceId, newExecution(deviceId, stage, now));
    n++;
  }
  return n;
}

function stageSize(a: Active, t: Transition, stage: number): number {
  let n = 0;
  for (const e of plannedExecutions(a, t)) if (e.stage === stage) n++;
  return n;
}

export function planNextStage(ctx: PlanContext, a: Active, t: Transition, now: number): void {
  if (t.rec.stage + 1 < t.rec.spec.stages.length) {
    planStage(ctx, a, t, t.rec.stage + 1, now);
    return;
  }
  // Devices that moved into a reached ring since the last look are updated before the deployment completes.
  let added = 0;
  for (let k = 0; k <= t.rec.stage; k++) added += planMembers(ctx, a, t, k, now);
  if (added > 0) {
    t.rec.phase = 'dispatching';
    t.rec.soakUntil = null;
    return;
  }
  planComplete(ctx, a, t, now);
}

function planComplete(ctx: PlanContext, a: Active, t: Transition, now: number): void {
  t.rec.status = 'completed';
  t.rec.phase = 'soaking';
  t.rec.endedAt = now;
  // Completed says the plan ran to its end, not that every device has the release: the outcome says who has not, and why.
  t.rec.detail.outcome = deploymentOutcome(plannedExecutions(a, t));
  t.events.push({ status: 'completed', action: 'complete' });
  t.after.push((x) => ctx.retire(x));
}

/** Unpaused: back in progress, and a pause for want of evidence is over. */
export function planUnpause(t: Transition): void {
  if (t.rec.detail.pauseReason === 'insufficient_evidence') t.rec.haltReason = null;
  delete t.rec.detail.pauseReason;
  t.rec.status = 'in_progress';
}

export function planAbort(ctx: PlanContext, a: Active, t: Transition, now: number): void {
  const cancelReason = `deployment ${a.rec.id} was aborted by an operator`;
  for (const e of a.execs.values()) {
    if (e.state === 'queued' || e.state === 'skipped') {
      const c = editExecution(t, e);
      c.state = 'cancelled';
      c.reason = 'the deployment was aborted by an operator before this device was updated';
      c.endedAt = now;
    } else if (e.state === 'in_progress') {
      planStop(ctx, t, e, cancelReason);
      const c = editExecution(t, e);
      c.state = 'cancelled';
      c.reason = 'the deployment was aborted by an operator during the update';
      c.endedAt = now;
    }
  }
  delete t.rec.detail.pauseReason;
  t.rec.status = 'cancelled';
  t.rec.endedAt = now;
  t.rec.detail.outcome = deploymentOutcome(plannedExecutions(a, t));
  t.after.push((x) => {
    x.pending = [];
    x.pendingAt = 0;
    x.parked.clear();
    ctx.retire(x);
  });
}

/** Once committed: the running update is cancelled, saying what cancelled it, and no longer counts as in flight. */
function planStop(ctx: PlanContext, t: Transition, e: Execution, cancelReason: string): void {
  const deviceId = e.deviceId;
  t.before.push((x) => {
    const current = x.execs.get(deviceId);
    if (!current || current.state !== 'in_progress') return;
    if (current.taskId !== null) ctx.driver.cancel(current.taskId, cancelReason);
    ctx.settle(x, current);
  });
}

/**
 * Every device that got (or may have got) the update gets the rollback
 * payload. The rollback is committed first; the rollback tasks are started
 * from the committed state, and their starts committed, before the
 * transition is over.
 */
export function planRollback(ctx: PlanContext, a: Active, t: Transition, now: number, why: string): void {
  const cancelReason = `deployment ${a.rec.id} was ${why}`;
  const targets: string[] = [];
  for (const e of a.execs.values()) {
    if (e.state === 'queued' || e.state === 'skipped') {
      const c = editExecution(t, e);
      c.state = 'cancelled';
      c.reason = `${why} before this device was updated`;
      c.endedAt = now;
    } else if (e.state === 'in_progress') {
      planStop(ctx, t, e, cancelReason);
      const c = editExecution(t, e);
      c.state = 'cancelled';
      c.reason = `${why} during the update; rollback sent`;
      c.endedAt = now;
      targets.push(e.deviceId);
    } else if ((e.state === 'succeeded' || e.state === 'failed' || e.state === 'timed_out') && e.rollbackTaskId === null) {
      editExecution(t, e).reason = `${why}; rollback sent`;
      targets.push(e.deviceId);
    }
  }
  delete t.rec.detail.pauseReason;
  t.rec.status = 'rolled_back';
  // Over at once when there is nothing to roll back; otherwise when the last device has answered (see retire).
  const inFlightLeft = a.inFlight - [...a.execs.values()].filter((e) => e.state === 'in_progress').length;
  const over = targets.length === 0 && inFlightLeft === 0 && a.rollbacksOutstanding === 0;
  t.rec.endedAt = over ? now : null;
  t.rec.detail.outcome = deploymentOutcome(plannedExecutions(a, t));
  t.after.push((x) => {
    x.pending = [];
    x.pendingAt = 0;
    x.parked.clear();
  });
  t.finish.push(async (x) => {
    const started: Execution[] = [];
    const committed: Promise<void>[] = [];
    for (const deviceId of targets) {
      const e = x.execs.get(deviceId);
      if (!e) continue;
      const run = ctx.driver.start(x.rec.id, deviceId, x.rec.spec.rollbackPayload, true);
      e.rollbackTaskId = run.handle;
      x.rollbacksOutstanding++;
      started.push(e);
      committed.push(run.committed);
    }
    ctx.retire(x);
    await Promise.all([...committed, ctx.store.saveExecutions(x.rec.seq, started)]);
  });
}
