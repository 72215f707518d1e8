import type { DeviceMetrics } from '../domain/metrics.js';
import type { DeploymentRecord, Execution, GateEvaluation, Moments, Payload } from '../domain/deployment.js';
import { addMoment, emptyMoments, regressed } from '../domain/deployment.js';
import { Heap } from '../util/heap.js';

/** How the controller reaches devices. The orchestrator's runs payloads as tasks; the simulator's on a virtual fleet. */
export interface ExecutionDriver {
  /** Whether the device can be reached now. */
  online(deviceId: string): boolean;
  /** The device's health now, or null when it has not reported any. */
  metrics(deviceId: string): DeviceMetrics | null;
  /** Null when the device can run the payload at all, else why not (the execution is `skipped` with that reason). */
  refuses(deviceId: string, payload: Payload): string | null;
  /**
   * Starts the payload on the device. The outcome comes back through
   * `RolloutController.report` with the same deployment id and device id.
   * Resolves with a handle (a task id) once the start is committed.
   */
  start(deploymentId: string, deviceId: string, payload: Payload, rollback: boolean): { handle: string; committed: Promise<void> };
  /** Stops a started payload; `reason` says what stopped it (recorded with the task). */
  cancel(handle: string, reason: string): void;
}

export type ExecutionOutcome =
  | { kind: 'succeeded' }
  | { kind: 'failed'; reason: string }
  | { kind: 'timed_out'; reason: string }
  | { kind: 'rejected'; reason: string }
  /** The device went away mid-update (offline, restart): it is tried again when it returns. */
  | { kind: 'lost'; reason: string };

export interface StageStats {
  succeeded: number;
  failed: number;
  rejected: number;
  timedOut: number;
  observed: number;
  regressed: number;
  /** Updates whose device went away mid-update (they are tried again, but the loss is evidence). */
  lost: number;
  models: Map<string, { judged: number; failed: number }>;
  cpu: Moments;
  memory: Moments;
  drain: Moments;
}

export interface Active {
  rec: DeploymentRecord;
  execs: Map<string, Execution>;
  /** Devices waiting to be dispatched, in order (may hold stale entries: checked on use). */
  pending: string[];
  pendingAt: number;
  /** Queued devices that were offline, and skipped ones: looked at again now and then. */
  parked: Set<string>;
  lastParkedScan: number;
  lastMemberScan: number;
  tokens: number;
  lastRefill: number;
  /** Per stage: successes (for exponential rates) and the gate's counters since its last reset. */
  successes: number[];
  stats: StageStats[];
  observe: Heap<{ due: number; deviceId: string }>;
  gateDirty: boolean;
  lastVerdict: Map<number, string>;
  inFlight: number;
  /** Devices with an update running, for the gate's stalled count. */
  running: Set<string>;
  /** Per stage: executions in flight, and successes not yet observed. */
  stageInFlight: number[];
  stageObserving: number[];
  rollbacksOutstanding: number;
}

/**
 * A change of one deployment's record, planned on copies without touching
 * memory: committed in one store write (the record, the executions and the
 * gate evaluations together), and only then applied to memory.
 */
export interface Transition {
  /** The record after the transition. */
  rec: DeploymentRecord;
  /** New executions, and copies of changed ones, by device. */
  execs: Map<string, Execution>;
  evaluations: GateEvaluation[];
  /** Once committed, before the copies replace memory's executions (they see the old states). */
  before: ((a: Active) => void)[];
  /** Once memory holds the new record and executions. */
  after: ((a: Active) => void)[];
  /** Awaited last: work that starts from the committed state (the rollback tasks) and its own commits. */
  finish: ((a: Active) => Promise<void>)[];
  events: { status: string; action: string }[];
}

export type Report = [deviceId: string, outcome: ExecutionOutcome, rollback: boolean];

export interface DeploymentView {
  deployment: DeploymentRecord;
  executions: Execution[];
  evaluations: GateEvaluation[];
}

export const PARKED_SCAN_MS = 30_000;
export const MEMBER_SCAN_MS = 60_000;

export function emptyStats(): StageStats {
  return { succeeded: 0, failed: 0, rejected: 0, timedOut: 0, observed: 0, regressed: 0, lost: 0, models: new Map(), cpu: emptyMoments(), memory: emptyMoments(), drain: emptyMoments() };
}

/** The in-memory state of a deployment, from its record and executions (not registered). */
export function buildActive(rec: DeploymentRecord, executions: Execution[], now: number, modelOf: (deviceId: string) => string | undefined): Active {
  const stages = Math.max(1, rec.spec.stages.length);
  const a: Active = {
    rec,
    execs: new Map(executions.map((e) => [e.deviceId, e])),
    pending: [],
    pendingAt: 0,
    parked: new Set(),
    lastParkedScan: 0,
    lastMemberScan: 0,
    tokens: 1,
    lastRefill: now,
    successes: new Array<number>(stages).fill(0),
    stats: Array.from({ length: stages }, emptyStats),
    observe: new Heap((x, y) => x.due < y.due),
    gateDirty: true,
    lastVerdict: new Map(),
    inFlight: 0,
    running: new Set(),
    stageInFlight: new Array<number>(stages).fill(0),
    stageObserving: new Array<number>(stages).fill(0),
    rollbacksOutstanding: 0,
  };
  for (const e of executions) {
    if (e.state === 'queued') a.pending.push(e.deviceId);
    else if (e.state === 'skipped') a.parked.add(e.deviceId);
    if (e.state === 'succeeded') a.successes[e.stage] = (a.successes[e.stage] ?? 0) + 1;
    if (e.endedAt !== null && e.endedAt >= rec.gateResetAt) countOutcome(a, e, 1, modelOf);
    if (e.state === 'succeeded' && e.observedAt === null && e.endedAt !== null) {
      a.observe.push({ due: e.endedAt + (rec.spec.stages[e.stage]?.gate.observeMs ?? 0), deviceId: e.deviceId });
      a.stageObserving[e.stage] = (a.stageObserving[e.stage] ?? 0) + 1;
    }
  }
  return a;
}

/** Adds (or removes) an execution's outcome, and its observation if any, to its stage's gate counters. */
export function countOutcome(a: Active, e: Execution, sign: 1 | -1, modelOf: (deviceId: string) => string | undefined): void {
  const s = a.stats[e.stage];
  if (!s) return;
  const failed = e.state === 'failed' || e.state === 'rejected';
  if (e.state === 'succeeded' || e.state === 'rolled_back') s.succeeded += sign;
  else if (e.state === 'failed') s.failed += sign;
  else if (e.state === 'rejected') s.rejected += sign;
  else if (e.state === 'timed_out') s.timedOut += sign;
  else return;
  const model = modelOf(e.deviceId) ?? '(unknown model)';
  const m = s.models.get(model) ?? { judged: 0, failed: 0 };
  m.judged += sign;
  if (failed) m.failed += sign;
  s.models.set(model, m);
  countObservation(a, e, sign);
}

export function countObservation(a: Active, e: Execution, sign: 1 | -1): void {
  const s = a.stats[e.stage];
  const g = a.rec.spec.stages[e.stage]?.gate;
  if (!s || !g || e.cpuDelta === null || e.memoryDelta === null || e.drainDelta === null) return;
  s.observed += sign;
  if (regressed(g, e.cpuDelta, e.memoryDelta, e.drainDelta)) s.regressed += sign;
  addMoment(s.cpu, e.cpuDelta, sign);
  addMoment(s.memory, e.memoryDelta, sign);
  addMoment(s.drain, e.drainDelta, sign);
}

/** A transition of the deployment, planned on copies (see Transition). */
export function beginTransition(a: Active): Transition {
  return { rec: { ...a.rec, detail: { ...a.rec.detail } }, execs: new Map(), evaluations: [], before: [], after: [], finish: [], events: [] };
}

/** The execution as the transition leaves it: its copy, made on first edit. */
export function editExecution(t: Transition, e: Execution): Execution {
  let copy = t.execs.get(e.deviceId);
  if (!copy) {
    copy = { ...e };
    t.execs.set(e.deviceId, copy);
  }
  return copy;
}

/** Every execution as the transition leaves it. */
export function* plannedExecutions(a: Active, t: Transition): Generator<Execution> {
  for (const e of a.execs.values()) yield t.execs.get(e.deviceId) ?? e;
  for (const e of t.execs.values()) if (!a.execs.has(e.deviceId)) yield e;
}

/** The ring of a stage of the deployment. */
export function ringOf(a: Active, stage: number): string {
  return a.rec.spec.stages[stage]?.ring ?? '?';
}

/** The most affected devices of a deployment, by the size of their health change. */
export function impactRanking(view: DeploymentView, limit: number): { deviceId: string; ring: string; cpuDelta: number; memoryDelta: number; drainDelta: number; score: number }[] {
  const rows = view.executions
    .filter((e) => e.cpuDelta !== null && e.memoryDelta !== null && e.drainDelta !== null)
    .map((e) => {
      const cpu = e.cpuDelta as number;
      const memory = e.memoryDelta as number;
      const drain = e.drainDelta as number;
      // Only worsening counts; battery drain weighs double (%/h is a smaller unit than points).
      return { deviceId: e.deviceId, ring: view.deployment.spec.stages[e.stage]?.ring ?? '?', cpuDelta: cpu, memoryDelta: memory, drainDelta: drain, score: round2(Math.max(0, cpu) + Math.max(0, memory) + 2 * Math.max(0, drain)) };
    });
  rows.sort((x, y) => y.score - x.score || x.deviceId.localeCompare(y.deviceId));
  return rows.slice(0, limit);
}

export function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

export function newExecution(deviceId: string, stage: number, now: number): Execution {
  return {
    deviceId, stage, state: 'queued', taskId: null, reason: null, baseline: null, observed: null,
    cpuDelta: null, memoryDelta: null, drainDelta: null, rollbackTaskId: null, queuedAt: now, startedAt: null, endedAt: null, observedAt: null,
  };
}
