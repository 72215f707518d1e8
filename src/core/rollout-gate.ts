import type { Execution, Stage, StageEvidence } from '../domain/deployment.js';
import { preflightFailure, ratePerMinute } from '../domain/deployment.js';
import type { Fleet } from '../fleet/fleet.js';
import type { Store } from '../store/store.js';
import type { Active, ExecutionDriver } from './rollout-state.js';
import { emptyStats, PARKED_SCAN_MS, ringOf } from './rollout-state.js';

/**
 * Starts the stage's queued devices at the stage's rate (a token bucket), each after its pre-flight checks;
 * offline devices are parked and looked at again now and then, and a device that cannot run the payload
 * at all is skipped, not failed.
 */
export function dispatchStage(ctx: { driver: ExecutionDriver; fleet: Fleet; store: Store; write(p: Promise<void>): void }, a: Active, stage: Stage, now: number): void {
  const rate = ratePerMinute(stage.rate, a.successes[a.rec.stage] ?? 0);
  const perMs = rate / 60_000;
  a.tokens = Math.min(a.tokens + (now - a.lastRefill) * perMs, Math.max(1, perMs * 5000));
  a.lastRefill = now;
  const started: Execution[] = [];
  if (now - a.lastParkedScan >= PARKED_SCAN_MS && a.parked.size > 0) {
    a.lastParkedScan = now;
    // Offline and skipped devices get another chance, ahead of the queue.
    a.pending.splice(a.pendingAt, 0, ...a.parked);
    a.parked.clear();
  }
  while (a.tokens >= 1 && a.pendingAt < a.pending.length) {
    const deviceId = a.pending[a.pendingAt++] as string;
    const e = a.execs.get(deviceId);
    if (!e || (e.state !== 'queued' && e.state !== 'skipped')) continue;
    const st = a.rec.spec.stages[e.stage] as Stage;
    if (!ctx.driver.online(deviceId)) {
      a.parked.add(deviceId);
      continue;
    }
    // A device that cannot run the payload at all (no agent, no such capability) is skipped, not failed.
    const metrics = ctx.driver.metrics(deviceId);
    const why = ctx.driver.refuses(deviceId, a.rec.spec.payload) ?? (metrics === null ? 'pre-flight: the device has not reported its health yet' : preflightFailure(st.preflight, metrics));
    if (why !== null) {
      if (e.state !== 'skipped' || e.reason !== why) {
        e.state = 'skipped';
        e.reason = why;
        started.push(e);
      }
      a.parked.add(deviceId);
      continue;
    }
    a.tokens -= 1;
    e.state = 'in_progress';
    e.reason = null;
    e.baseline = metrics;
    e.startedAt = now;
    e.endedAt = null;
    a.inFlight++;
    a.running.add(deviceId);
    a.stageInFlight[e.stage] = (a.stageInFlight[e.stage] ?? 0) + 1;
    ctx.fleet.markInflight(deviceId, 1);
    const { handle, committed } = ctx.driver.start(a.rec.id, deviceId, a.rec.spec.payload, false);
    e.taskId = handle;
    ctx.write(committed);
    started.push(e);
  }
  if (a.pendingAt > 4096 && a.pendingAt * 2 > a.pending.length) {
    a.pending = a.pending.slice(a.pendingAt);
    a.pendingAt = 0;
  }
  ctx.write(ctx.store.saveExecutions(a.rec.seq, started));
}

/**
 * Every device of the current stage has an outcome or cannot get one now
 * (offline, skipped), and every success has been observed. Constant time:
 * the queue is visited in order, so nothing is left once the cursor is at
 * its end.
 */
export function stageDone(a: Active): boolean {
  const k = a.rec.stage;
  return a.pendingAt >= a.pending.length && (a.stageInFlight[k] ?? 0) === 0 && (a.stageObserving[k] ?? 0) === 0;
}

/** What the stage's gate judges: its counters since the gate's last reset, and the updates that stalled. */
export function gateInput(a: Active, done: boolean, now: number, driver: ExecutionDriver, fleet: Fleet) {
  const s = a.stats[a.rec.stage] ?? emptyStats();
  const stalledMs = a.rec.spec.stages[a.rec.stage]?.gate.stalledMs ?? 0;
  let stalled = 0;
  if (stalledMs > 0) {
    // Running too long, or its device dropped off mid-update (a crashed agent looks like that).
    for (const deviceId of a.running) {
      const e = a.execs.get(deviceId);
      if (e && e.stage === a.rec.stage && e.startedAt !== null && e.startedAt >= a.rec.gateResetAt && (now - e.startedAt >= stalledMs || !driver.online(deviceId))) stalled++;
    }
  }
  return {
    ring: ringOf(a, a.rec.stage),
    ringDevices: fleet.ringSize(ringOf(a, a.rec.stage)),
    stageDone: done,
    succeeded: s.succeeded,
    failed: s.failed,
    rejected: s.rejected,
    timedOut: s.timedOut,
    stalled: stalled + s.lost,
    observed: s.observed,
    regressed: s.regressed,
    models: s.models,
    cpu: s.cpu,
    memory: s.memory,
    drain: s.drain,
  };
}

/** What became of the stage's devices so far: judged, or why not. */
export function stageEvidence(a: Active, stage: number, now: number, driver: ExecutionDriver): StageEvidence {
  const stalledMs = a.rec.spec.stages[stage]?.gate.stalledMs ?? 0;
  const x = { ring: ringOf(a, stage), devices: 0, judged: 0, running: 0, offline: 0, queued: 0, refused: new Map<string, number>(), preflight: new Map<string, number>() };
  for (const e of a.execs.values()) {
    if (e.stage !== stage) continue;
    x.devices++;
    switch (e.state) {
      case 'in_progress':
        // A stalled update counts for the gate as timed out: it is evidence.
        if (stalledMs > 0 && e.startedAt !== null && (now - e.startedAt >= stalledMs || !driver.online(e.deviceId))) x.judged++;
        else x.running++;
        break;
      case 'queued':
        if (driver.online(e.deviceId)) x.queued++;
        else x.offline++;
        break;
      case 'skipped': {
        const reason = e.reason ?? 'no reason given';
        const into = reason.startsWith('pre-flight') ? x.preflight : x.refused;
        into.set(reason, (into.get(reason) ?? 0) + 1);
        break;
      }
      case 'cancelled':
        break;
      default:
        x.judged++;
    }
  }
  return x;
}
