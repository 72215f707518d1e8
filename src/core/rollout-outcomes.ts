import type { Execution } from '../domain/deployment.js';
import { regressed } from '../domain/deployment.js';
import { onMains } from '../domain/metrics.js';
import type { PlanContext } from './rollout-plans.js';
import type { Active, ExecutionOutcome } from './rollout-state.js';
import { countObservation, countOutcome, round2 } from './rollout-state.js';

/** What applying outcomes and observations needs of the controller. */
export interface OutcomeContext extends PlanContext {
  write(p: Promise<void>): void;
  readonly modelOf: (deviceId: string) => string | undefined;
}

/**
 * An execution's outcome (its task ended), applied to the deployment in memory and written behind: a
 * success is observed after the stage's `observeMs`; a device that went away mid-update goes back to the
 * queue; a rollback's outcome settles the rollback. An update that ends after the transition that
 * cancelled it changes nothing.
 */
export function applyOutcome(ctx: OutcomeContext, a: Active, e: Execution, outcome: ExecutionOutcome, rollback: boolean, now: number): void {
  const deviceId = e.deviceId;
  if (rollback) {
    if (e.rollbackTaskId === null) return;
    a.rollbacksOutstanding--;
    if (outcome.kind === 'succeeded') {
      e.state = 'rolled_back';
      e.reason = 'rolled back';
    } else {
      e.reason = `rollback failed: ${outcome.reason}`;
    }
    ctx.write(ctx.store.saveExecutions(a.rec.seq, [e]));
    ctx.retire(a);
    return;
  }
  if (e.state !== 'in_progress') return;
  ctx.settle(a, e);
  e.endedAt = now;
  switch (outcome.kind) {
    case 'succeeded': {
      e.state = 'succeeded';
      e.reason = null;
      a.successes[e.stage] = (a.successes[e.stage] ?? 0) + 1;
      const observeMs = a.rec.spec.stages[e.stage]?.gate.observeMs ?? 0;
      a.observe.push({ due: now + observeMs, deviceId });
      a.stageObserving[e.stage] = (a.stageObserving[e.stage] ?? 0) + 1;
      break;
    }
    case 'lost': {
      const st = a.stats[e.stage];
      if (st && e.startedAt !== null && e.startedAt >= a.rec.gateResetAt) st.lost++;
      a.gateDirty = true;
      e.state = 'queued';
      e.reason = outcome.reason;
      e.endedAt = null;
      e.taskId = null;
      a.parked.add(deviceId);
      break;
    }
    default:
      e.state = outcome.kind;
      e.reason = outcome.reason;
  }
  if (e.state !== 'queued') {
    countOutcome(a, e, 1, ctx.modelOf);
    a.gateDirty = true;
  }
  ctx.write(ctx.store.saveExecutions(a.rec.seq, [e]));
  if (outcome.kind === 'succeeded' && (a.rec.spec.stages[e.stage]?.gate.observeMs ?? 0) === 0) observeDue(ctx, a, now);
  ctx.retire(a);
}

/** Observes the successes whose observation is due: each device's health against its baseline, for the gate. */
export function observeDue(ctx: OutcomeContext, a: Active, now: number): void {
  const changed: Execution[] = [];
  for (let top = a.observe.peek(); top && top.due <= now; top = a.observe.peek()) {
    a.observe.pop();
    const e = a.execs.get(top.deviceId);
    if (!e || e.observedAt !== null) continue;
    a.stageObserving[e.stage] = (a.stageObserving[e.stage] ?? 1) - 1;
    if (e.state !== 'succeeded') continue;
    e.observedAt = now;
    const r = ctx.driver.online(e.deviceId) ? ctx.driver.metrics(e.deviceId) : null;
    if (r && e.baseline) {
      e.observed = r;
      e.cpuDelta = round2(r.cpu - e.baseline.cpu);
      e.memoryDelta = round2(r.memory - e.baseline.memory);
      // Drain only compares like with like: a device plugged in or unplugged meanwhile tells nothing about the release.
      e.drainDelta = onMains(r) || onMains(e.baseline) ? 0 : round2(r.drain - e.baseline.drain);
      if (e.endedAt !== null && e.endedAt >= a.rec.gateResetAt) countObservation(a, e, 1);
      const g = a.rec.spec.stages[e.stage]?.gate;
      const hurt = g !== undefined && regressed(g, e.cpuDelta, e.memoryDelta, e.drainDelta);
      void ctx.fleet.recordImpact(e.deviceId, hurt);
    } else {
      e.reason = 'not observed after the update: the device was offline';
    }
    a.gateDirty = true;
    changed.push(e);
  }
  ctx.write(ctx.store.saveExecutions(a.rec.seq, changed));
}
