import type {
  DeploymentAction,
  DeploymentRecord,
  DeploymentSpec,
  DeviceReading,
  Execution,
  ExecutionState,
  GateEvaluation,
  Moments,
  Payload,
  Stage,
} from '../domain/deployment.js';
import type { StageEvidence } from '../domain/deployment.js';
import {
  addMoment,
  countExecutionStates,
  deploymentOutcome,
  emptyMoments,
  evidenceShortfall,
  regressed,
  inMaintenanceWindow,
  judgeGate,
  pauseReasonOf,
  preflightFailure,
  ratePerMinute,
  TERMINAL_DEPLOYMENT_STATES,
  TRANSITIONS,
  unjudgedNote,
} from '../domain/deployment.js';
import { OrchestratorError } from '../domain/errors.js';
import type { Fleet } from '../fleet/fleet.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import { steadyWall } from '../util/clock.js';
import { Heap } from '../util/heap.js';
import { newTaskId } from '../util/ids.js';
import type { Logger } from '../util/logger.js';
import type { EventBus } from './events.js';

/** How the controller reaches devices. The orchestrator's runs payloads as tasks; the simulator's on a virtual fleet. */
export interface ExecutionDriver {
  /** Whether the device can be reached now. */
  online(deviceId: string): boolean;
  /** The device's health now, or null when it has not reported any. */
  reading(deviceId: string): DeviceReading | null;
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

interface StageStats {
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

interface Active {
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
interface Transition {
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

type Report = [deviceId: string, outcome: ExecutionOutcome, rollback: boolean];

export interface DeploymentView {
  deployment: DeploymentRecord;
  executions: Execution[];
  evaluations: GateEvaluation[];
}

const PARKED_SCAN_MS = 30_000;
const MEMBER_SCAN_MS = 60_000;

function emptyStats(): StageStats {
  return { succeeded: 0, failed: 0, rejected: 0, timedOut: 0, observed: 0, regressed: 0, lost: 0, models: new Map(), cpu: emptyMoments(), memory: emptyMoments(), drain: emptyMoments() };
}

/**
 * Runs staged deployments: dispatches each stage's devices at the stage's
 * rate inside the maintenance windows, after pre-flight checks; records each
 * device's health before its update and after `observeMs`; judges the stage's
 * gate on every new outcome and when its soak ends; halts (and rolls back, if
 * asked) when a gate fails; moves on ring by ring. All state changes are
 * written to the store; what it keeps in memory is rebuilt from the store on
 * start.
 */
export class RolloutController {
  private readonly store: Store;
  private readonly clock: Clock;
  /**
   * The controller's time: the wall clock at its start plus the monotonic time since, so that a soak, an
   * observation delay, a dispatch rate or a stall is measured in elapsed time even if the system clock is
   * set meanwhile. Its instants are what the records keep (they match the wall clock unless it was set).
   */
  private readonly now: () => number;
  private readonly fleet: Fleet;
  private readonly driver: ExecutionDriver;
  private readonly events: EventBus;
  private readonly log: Logger;
  private readonly active = new Map<string, Active>();
  /** Writes not yet awaited by anyone, so that `flush()` can wait for them. */
  private readonly writes = new Set<Promise<void>>();
  /**
   * Per deployment, the end of the chain of its serialised work (operator
   * actions, creation, each tick's step and the transitions it makes): one at
   * a time, in arrival order. Never rejects.
   */
  private readonly chains = new Map<string, Promise<void>>();
  /** Deployments with a transition between its plan and its application (the commit under way). */
  private readonly busy = new Set<string>();
  /** Outcomes that arrived while their deployment was busy: applied, in order, once it is not. */
  private readonly deferred = new Map<string, Report[]>();

  constructor(options: { store: Store; clock: Clock; fleet: Fleet; driver: ExecutionDriver; events: EventBus; log: Logger }) {
    this.store = options.store;
    this.clock = options.clock;
    this.now = steadyWall(options.clock);
    this.fleet = options.fleet;
    this.driver = options.driver;
    this.events = options.events;
    this.log = options.log;
  }

  // ---------------------------------------------------------------- loading

  /**
   * Loads the deployments that have not ended. An execution that was in
   * progress when the last process stopped is over: if its task is gone, the
   * device goes back to the queue (the update is tried again).
   */
  async load(taskLive: (taskId: string) => boolean, repairs?: (() => Promise<void>)[]): Promise<void> {
    for (const rec of await this.store.loadActiveDeployments()) {
      if (rec.kind !== 'rollout') continue;
      const a = this.track(rec, await this.store.getExecutions(rec.seq));
      const now = this.now();
      const changed: Execution[] = [];
      for (const e of a.execs.values()) {
        if (e.state === 'in_progress' && (e.taskId === null || !taskLive(e.taskId))) {
          e.state = 'queued';
          e.taskId = null;
          e.reason = 'interrupted by an orchestrator restart; updated again';
          a.pending.push(e.deviceId);
          changed.push(e);
        } else if (e.state === 'in_progress') {
          this.fleet.markInflight(e.deviceId, 1);
          a.inFlight++;
          a.running.add(e.deviceId);
          a.stageInFlight[e.stage] = (a.stageInFlight[e.stage] ?? 0) + 1;
        }
        if (e.rollbackTaskId !== null && e.state !== 'rolled_back' && e.reason?.startsWith('rollback failed') !== true) {
          if (taskLive(e.rollbackTaskId)) a.rollbacksOutstanding++;
        }
      }
      // Loading while the store cannot commit (after a failed write): written once it can.
      if (repairs) repairs.push(() => this.store.saveExecutions(rec.seq, changed));
      else this.write(this.store.saveExecutions(rec.seq, changed));
      void now;
    }
  }

  private track(rec: DeploymentRecord, executions: Execution[]): Active {
    const a = this.build(rec, executions);
    this.active.set(rec.id, a);
    return a;
  }

  /** The in-memory state of a deployment, from its record and executions (not registered). */
  private build(rec: DeploymentRecord, executions: Execution[]): Active {
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
      lastRefill: this.now(),
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
      if (e.endedAt !== null && e.endedAt >= rec.gateResetAt) this.count(a, e, 1);
      if (e.state === 'succeeded' && e.observedAt === null && e.endedAt !== null) {
        a.observe.push({ due: e.endedAt + (rec.spec.stages[e.stage]?.gate.observeMs ?? 0), deviceId: e.deviceId });
        a.stageObserving[e.stage] = (a.stageObserving[e.stage] ?? 0) + 1;
      }
    }
    return a;
  }

  /** Adds (or removes) an execution's outcome, and its observation if any, to its stage's gate counters. */
  private count(a: Active, e: Execution, sign: 1 | -1): void {
    const s = a.stats[e.stage];
    if (!s) return;
    const failed = e.state === 'failed' || e.state === 'rejected';
    if (e.state === 'succeeded' || e.state === 'rolled_back') s.succeeded += sign;
    else if (e.state === 'failed') s.failed += sign;
    else if (e.state === 'rejected') s.rejected += sign;
    else if (e.state === 'timed_out') s.timedOut += sign;
    else return;
    const model = this.fleet.modelOf(e.deviceId) ?? '(unknown model)';
    const m = s.models.get(model) ?? { judged: 0, failed: 0 };
    m.judged += sign;
    if (failed) m.failed += sign;
    s.models.set(model, m);
    this.countObservation(a, e, sign);
  }

  private countObservation(a: Active, e: Execution, sign: 1 | -1): void {
    const s = a.stats[e.stage];
    const g = a.rec.spec.stages[e.stage]?.gate;
    if (!s || !g || e.cpuDelta === null || e.memoryDelta === null || e.drainDelta === null) return;
    s.observed += sign;
    if (regressed(g, e.cpuDelta, e.memoryDelta, e.drainDelta)) s.regressed += sign;
    addMoment(s.cpu, e.cpuDelta, sign);
    addMoment(s.memory, e.memoryDelta, sign);
    addMoment(s.drain, e.drainDelta, sign);
  }

  private write(p: Promise<void>): void {
    this.writes.add(p);
    void p.then(
      () => this.writes.delete(p),
      (err: unknown) => {
        this.writes.delete(p);
        this.log.error({ err }, 'deployment write failed');
      },
    );
  }

  /** Resolves once the work serialised so far has ended and every write made so far has committed. */
  async flush(): Promise<void> {
    await Promise.all([...this.chains.values()]);
    await Promise.all([...this.writes]);
  }

  // ---------------------------------------------------------------- serialisation

  /**
   * Runs `fn` after every piece of work queued before it for the same
   * deployment has ended (whatever its outcome), and before any queued after
   * it.
   */
  private serial<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.chains.get(id) ?? Promise.resolve()).then(fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.chains.set(id, tail);
    void tail.then(() => {
      if (this.chains.get(id) === tail) this.chains.delete(id);
    });
    return run;
  }

  private replay(id: string): void {
    const reports = this.deferred.get(id);
    if (!reports) return;
    this.deferred.delete(id);
    for (const [deviceId, outcome, rollback] of reports) this.report(id, deviceId, outcome, rollback);
  }

  private begin(a: Active): Transition {
    return { rec: { ...a.rec, detail: { ...a.rec.detail } }, execs: new Map(), evaluations: [], before: [], after: [], finish: [], events: [] };
  }

  /** The execution as the transition leaves it: its copy, made on first edit. */
  private edit(t: Transition, e: Execution): Execution {
    let copy = t.execs.get(e.deviceId);
    if (!copy) {
      copy = { ...e };
      t.execs.set(e.deviceId, copy);
    }
    return copy;
  }

  /** Every execution as the transition leaves it. */
  private *planned(a: Active, t: Transition): Generator<Execution> {
    for (const e of a.execs.values()) yield t.execs.get(e.deviceId) ?? e;
    for (const e of t.execs.values()) if (!a.execs.has(e.deviceId)) yield e;
  }

  /**
   * Commits the transition in one store write, then applies it to memory. A
   * refused write throws and leaves memory exactly as it was: nothing of the
   * transition (no task cancelled, no rollback sent) has happened. Outcomes
   * reported while the write is under way wait (`report`), so that what the
   * transition planned from memory is still true when it is applied; they
   * then apply to the state it left.
   */
  private async commit(a: Active, t: Transition, register = false): Promise<void> {
    const id = t.rec.id;
    this.busy.add(id);
    try {
      await this.store.saveDeployment({ ...t.rec }, { executions: [...t.execs.values()], evaluations: t.evaluations });
      this.apply(a, t, register);
    } finally {
      this.busy.delete(id);
      this.replay(id);
    }
    for (const f of t.finish) await f(a);
  }

  private apply(a: Active, t: Transition, register: boolean): void {
    if (register) this.active.set(t.rec.id, a);
    for (const f of t.before) f(a);
    a.rec = t.rec;
    for (const e of t.execs.values()) {
      const current = a.execs.get(e.deviceId);
      if (current) {
        Object.assign(current, e);
      } else {
        a.execs.set(e.deviceId, e);
        if (e.state === 'queued') a.pending.push(e.deviceId);
      }
    }
    for (const f of t.after) f(a);
    for (const ev of t.events) this.events.emit('deployment.changed', { deploymentId: t.rec.id, ...ev });
  }

  // ---------------------------------------------------------------- API

  async create(spec: DeploymentSpec, options: { id?: string; start?: boolean } = {}): Promise<DeploymentRecord> {
    const id = options.id ?? `dep-${newTaskId().slice(0, 8)}`;
    // Serialised like any action, so that an action right after a create with start waits for the start.
    return this.serial(id, async () => {
      if (this.active.has(id) || (await this.store.getDeployment(id))) throw new OrchestratorError('ORCH_DEPLOYMENT_EXISTS', `deployment ${id} already exists`);
      const now = this.now();
      const rec: Omit<DeploymentRecord, 'seq'> = {
        id,
        kind: 'rollout',
        spec,
        status: 'scheduled',
        stage: 0,
        phase: 'dispatching',
        soakUntil: null,
        gateResetAt: 0,
        haltReason: null,
        detail: {},
        createdAt: now,
        startedAt: null,
        endedAt: null,
      };
      const seq = await this.store.insertDeployment(rec);
      const full = { ...rec, seq };
      this.track(full, []);
      if (options.start) return this.actNow(id, 'start');
      return { ...full };
    });
  }

  /**
   * An operator's action; refused with 409 from a state it does not apply to.
   * Actions on one deployment run one at a time, in arrival order, and each
   * is committed before it is answered.
   */
  act(id: string, action: DeploymentAction): Promise<DeploymentRecord> {
    return this.serial(id, () => this.actNow(id, action));
  }

  private async actNow(id: string, action: DeploymentAction): Promise<DeploymentRecord> {
    let a = this.active.get(id);
    let loaded = false;
    if (!a) {
      const stored = await this.store.getDeployment(id);
      if (!stored) throw new OrchestratorError('ORCH_DEPLOYMENT_NOT_FOUND', `deployment ${id} not found`);
      if (stored.kind === 'seed') throw new OrchestratorError('ORCH_DEPLOYMENT_STATE', `deployment ${id} was started through /start_deployment; use /complete_deployment`);
      // An ended deployment can still be rolled back: it comes back into memory for that, once the rollback is committed.
      if (!TRANSITIONS[action].from.includes(stored.status)) {
        throw new OrchestratorError('ORCH_DEPLOYMENT_STATE', `deployment ${id} is ${stored.status}; ${action} applies to ${TRANSITIONS[action].from.join(', ')}`);
      }
      a = this.build(stored, await this.store.getExecutions(stored.seq));
      loaded = true;
    }
    const rec = a.rec;
    const tr = TRANSITIONS[action];
    if (!tr.from.includes(rec.status)) {
      throw new OrchestratorError('ORCH_DEPLOYMENT_STATE', `deployment ${id} is ${rec.status}; ${action} applies to ${tr.from.join(', ')}`);
    }
    const now = this.now();
    const t = this.begin(a);
    const ring = this.ringOf(a, rec.stage);
    switch (action) {
      case 'start':
        t.rec.status = 'in_progress';
        t.rec.startedAt = now;
        this.planStage(a, t, 0, now);
        break;
      case 'pause':
        t.rec.status = 'paused';
        t.rec.detail.pauseReason = 'operator';
        break;
      case 'resume':
        // Paused for want of evidence: resuming waits one more soak, in which offline and skipped devices get their chance again.
        if (pauseReasonOf(rec) === 'insufficient_evidence') {
          t.rec.phase = 'soaking';
          t.rec.soakUntil = now + (rec.spec.stages[rec.stage]?.soakMs ?? 0);
        }
        this.planUnpause(t);
        t.after.push((x) => (x.lastRefill = now));
        break;
      case 'promote': {
        const why = pauseReasonOf(rec) === 'insufficient_evidence' ? 'without the evidence its gate asked for' : 'soak skipped';
        this.planUnpause(t);
        t.evaluations.push({ stage: rec.stage, ring, at: now, verdict: 'override', reason: `ring ${ring}: promoted by an operator; ${why}`, figures: {} });
        t.after.push((x) => {
          x.lastVerdict.set(rec.stage, 'override');
          x.lastRefill = now;
        });
        this.planNextStage(a, t, now);
        break;
      }
      case 'acknowledge':
        t.rec.status = 'in_progress';
        t.rec.haltReason = null;
        t.rec.gateResetAt = now;
        t.evaluations.push({ stage: rec.stage, ring, at: now, verdict: 'override', reason: `ring ${ring}: halt acknowledged by an operator; resuming`, figures: {} });
        t.after.push((x) => {
          // The gate of the halted stage starts over from outcomes after this instant.
          x.stats[rec.stage] = emptyStats();
          x.lastVerdict.set(rec.stage, 'override');
          x.lastRefill = now;
        });
        break;
      case 'abort':
        this.planAbort(a, t, now);
        break;
      case 'rollback':
        this.planRollback(a, t, now, 'rolled back by an operator');
        break;
    }
    t.events.push({ status: t.rec.status, action });
    await this.commit(a, t, loaded);
    return { ...a.rec };
  }

  private ringOf(a: Active, stage: number): string {
    return a.rec.spec.stages[stage]?.ring ?? '?';
  }

  async get(id: string): Promise<DeploymentView> {
    // An action or transition of this deployment in flight: show its outcome (what a restart would show).
    // (So never called from the deployment's own chain: it would wait for itself.)
    await this.chains.get(id);
    const a = this.active.get(id);
    const rec = a ? { ...a.rec } : await this.store.getDeployment(id);
    if (!rec) throw new OrchestratorError('ORCH_DEPLOYMENT_NOT_FOUND', `deployment ${id} not found`);
    await Promise.all([...this.writes]);
    const executions = a ? [...a.execs.values()].map((e) => ({ ...e })) : await this.store.getExecutions(rec.seq);
    return { deployment: rec, executions, evaluations: await this.store.getGateEvaluations(rec.seq) };
  }

  list(limit: number, before?: number): Promise<DeploymentRecord[]> {
    return this.store.listDeployments(limit, before);
  }

  /** The deployment's record without its executions (cheap), or null when it is not running. */
  peek(id: string): DeploymentRecord | null {
    const a = this.active.get(id);
    return a ? { ...a.rec } : null;
  }

  /** Successful executions of a running deployment. */
  succeeded(id: string): number {
    return (this.active.get(id)?.successes ?? []).reduce((x, y) => x + y, 0);
  }

  isActive(id: string): boolean {
    return this.active.has(id);
  }

  // ---------------------------------------------------------------- stages

  /**
   * Plans the move to `stage`: its ring's devices (and devices that moved into
   * rings already reached) are queued. A ring with no devices has nothing to
   * wait for: it is passed at once, without a soak, with an evaluation that
   * says so, and the next one begins.
   */
  private planStage(a: Active, t: Transition, stage: number, now: number): void {
    const last = a.rec.spec.stages.length - 1;
    let added = 0;
    for (let k = stage; ; k++) {
      t.rec.stage = k;
      t.rec.phase = 'dispatching';
      t.rec.soakUntil = null;
      for (let j = 0; j <= k; j++) added += this.planMembers(a, t, j, now);
      t.after.push((x) => (x.lastMemberScan = now));
      if (this.stageSize(a, t, k) > 0) return;
      const ring = this.ringOf(a, k);
      t.evaluations.push({ stage: k, ring, at: now, verdict: 'skip', reason: `ring ${ring} has no devices: skipped at once, without a soak`, figures: { devices: 0 } });
      t.after.push((x) => x.lastVerdict.set(k, 'skip'));
      if (k >= last) {
        // Devices queued just now for earlier rings are updated first; the deployment completes once they are.
        if (added === 0) this.planComplete(a, t, now);
        return;
      }
    }
  }

  /** Queues (in the plan) every device of the stage's ring that has no execution yet; returns how many. */
  private planMembers(a: Active, t: Transition, stage: number, now: number): number {
    let n = 0;
    for (const deviceId of this.fleet.members(this.ringOf(a, stage))) {
      if (a.execs.has(deviceId) || t.execs.has(deviceId)) continue;
      t.execs.set(deviceId, newExecution(deviceId, stage, now));
      n++;
    }
    return n;
  }

  private stageSize(a: Active, t: Transition, stage: number): number {
    let n = 0;
    for (const e of this.planned(a, t)) if (e.stage === stage) n++;
    return n;
  }

  /** Queues every device of the stage's ring that has no execution yet, now (not a transition: the record does not change); returns how many. */
  private addMembers(a: Active, stage: number, now: number): number {
    const fresh: Execution[] = [];
    for (const deviceId of this.fleet.members(this.ringOf(a, stage))) {
      if (a.execs.has(deviceId)) continue;
      const e = newExecution(deviceId, stage, now);
      a.execs.set(deviceId, e);
      a.pending.push(deviceId);
      fresh.push(e);
    }
    this.write(this.store.saveExecutions(a.rec.seq, fresh));
    return fresh.length;
  }

  private planNextStage(a: Active, t: Transition, now: number): void {
    if (t.rec.stage + 1 < t.rec.spec.stages.length) {
      this.planStage(a, t, t.rec.stage + 1, now);
      return;
    }
    // Devices that moved into a reached ring since the last look are updated before the deployment completes.
    let added = 0;
    for (let k = 0; k <= t.rec.stage; k++) added += this.planMembers(a, t, k, now);
    if (added > 0) {
      t.rec.phase = 'dispatching';
      t.rec.soakUntil = null;
      return;
    }
    this.planComplete(a, t, now);
  }

  private planComplete(a: Active, t: Transition, now: number): void {
    t.rec.status = 'completed';
    t.rec.phase = 'soaking';
    t.rec.endedAt = now;
    // Completed says the plan ran to its end, not that every device has the release: the outcome says who has not, and why.
    t.rec.detail.outcome = deploymentOutcome(this.planned(a, t));
    t.events.push({ status: 'completed', action: 'complete' });
    t.after.push((x) => this.retire(x));
  }

  /** Unpaused: back in progress, and a pause for want of evidence is over. */
  private planUnpause(t: Transition): void {
    if (t.rec.detail.pauseReason === 'insufficient_evidence') t.rec.haltReason = null;
    delete t.rec.detail.pauseReason;
    t.rec.status = 'in_progress';
  }

  /**
   * A deployment that has ended leaves memory once nothing it started is
   * outstanding; a rollback ends (its `endedAt` and outcome are committed)
   * when the last rolled-back device has answered.
   */
  private retire(a: Active): void {
    if (!TERMINAL_DEPLOYMENT_STATES.has(a.rec.status) || a.inFlight > 0 || a.rollbacksOutstanding > 0) return;
    if (a.rec.status === 'rolled_back' && a.rec.endedAt === null) {
      const id = a.rec.id;
      this.serial(id, () => this.endRollback(id)).catch((err: unknown) => this.log.error({ err, deploymentId: id }, 'could not record the end of a rollback; tried again at the next tick'));
      return;
    }
    if (this.active.get(a.rec.id) === a) this.active.delete(a.rec.id);
  }

  private async endRollback(id: string): Promise<void> {
    const a = this.active.get(id);
    if (!a || a.rec.status !== 'rolled_back' || a.rec.endedAt !== null || a.inFlight > 0 || a.rollbacksOutstanding > 0) return;
    const t = this.begin(a);
    t.rec.endedAt = this.now();
    t.rec.detail.outcome = deploymentOutcome(a.execs.values());
    t.after.push((x) => this.retire(x));
    await this.commit(a, t);
  }

  private planAbort(a: Active, t: Transition, now: number): void {
    const cancelReason = `deployment ${a.rec.id} was aborted by an operator`;
    for (const e of a.execs.values()) {
      if (e.state === 'queued' || e.state === 'skipped') {
        const c = this.edit(t, e);
        c.state = 'cancelled';
        c.reason = 'the deployment was aborted by an operator before this device was updated';
        c.endedAt = now;
      } else if (e.state === 'in_progress') {
        this.planStop(t, e, cancelReason);
        const c = this.edit(t, e);
        c.state = 'cancelled';
        c.reason = 'the deployment was aborted by an operator during the update';
        c.endedAt = now;
      }
    }
    delete t.rec.detail.pauseReason;
    t.rec.status = 'cancelled';
    t.rec.endedAt = now;
    t.rec.detail.outcome = deploymentOutcome(this.planned(a, t));
    t.after.push((x) => {
      x.pending = [];
      x.pendingAt = 0;
      x.parked.clear();
      this.retire(x);
    });
  }

  /** Once committed: the running update is cancelled, saying what cancelled it, and no longer counts as in flight. */
  private planStop(t: Transition, e: Execution, cancelReason: string): void {
    const deviceId = e.deviceId;
    t.before.push((x) => {
      const current = x.execs.get(deviceId);
      if (!current || current.state !== 'in_progress') return;
      if (current.taskId !== null) this.driver.cancel(current.taskId, cancelReason);
      this.settle(x, current);
    });
  }

  /**
   * Every device that got (or may have got) the update gets the rollback
   * payload. The rollback is committed first; the rollback tasks are started
   * from the committed state, and their starts committed, before the
   * transition is over.
   */
  private planRollback(a: Active, t: Transition, now: number, why: string): void {
    const cancelReason = `deployment ${a.rec.id} was ${why}`;
    const targets: string[] = [];
    for (const e of a.execs.values()) {
      if (e.state === 'queued' || e.state === 'skipped') {
        const c = this.edit(t, e);
        c.state = 'cancelled';
        c.reason = `${why} before this device was updated`;
        c.endedAt = now;
      } else if (e.state === 'in_progress') {
        this.planStop(t, e, cancelReason);
        const c = this.edit(t, e);
        c.state = 'cancelled';
        c.reason = `${why} during the update; rollback sent`;
        c.endedAt = now;
        targets.push(e.deviceId);
      } else if ((e.state === 'succeeded' || e.state === 'failed' || e.state === 'timed_out') && e.rollbackTaskId === null) {
        this.edit(t, e).reason = `${why}; rollback sent`;
        targets.push(e.deviceId);
      }
    }
    delete t.rec.detail.pauseReason;
    t.rec.status = 'rolled_back';
    // Over at once when there is nothing to roll back; otherwise when the last device has answered (see retire).
    const inFlightLeft = a.inFlight - [...a.execs.values()].filter((e) => e.state === 'in_progress').length;
    const over = targets.length === 0 && inFlightLeft === 0 && a.rollbacksOutstanding === 0;
    t.rec.endedAt = over ? now : null;
    t.rec.detail.outcome = deploymentOutcome(this.planned(a, t));
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
        const run = this.driver.start(x.rec.id, deviceId, x.rec.spec.rollbackPayload, true);
        e.rollbackTaskId = run.handle;
        x.rollbacksOutstanding++;
        started.push(e);
        committed.push(run.committed);
      }
      this.retire(x);
      await Promise.all([...committed, this.store.saveExecutions(x.rec.seq, started)]);
    });
  }

  /** The device no longer has an execution in flight. */
  private settle(a: Active, e: Execution): void {
    if (e.state === 'in_progress') {
      a.inFlight--;
      a.running.delete(e.deviceId);
      a.stageInFlight[e.stage] = (a.stageInFlight[e.stage] ?? 1) - 1;
      this.fleet.markInflight(e.deviceId, -1);
    }
  }

  // ---------------------------------------------------------------- outcomes

  /**
   * An execution's outcome, from the driver (a task ended). While a
   * transition of the deployment is being committed, the outcome waits for it
   * to be applied, and then applies to the state it left (an update that ends
   * after the abort that cancelled it changes nothing).
   */
  report(deploymentId: string, deviceId: string, outcome: ExecutionOutcome, rollback = false): void {
    if (this.busy.has(deploymentId)) {
      const reports = this.deferred.get(deploymentId) ?? [];
      reports.push([deviceId, outcome, rollback]);
      this.deferred.set(deploymentId, reports);
      return;
    }
    const a = this.active.get(deploymentId);
    const e = a?.execs.get(deviceId);
    if (!a || !e) return;
    const now = this.now();
    if (rollback) {
      if (e.rollbackTaskId === null) return;
      a.rollbacksOutstanding--;
      if (outcome.kind === 'succeeded') {
        e.state = 'rolled_back';
        e.reason = 'rolled back';
      } else {
        e.reason = `rollback failed: ${outcome.reason}`;
      }
      this.write(this.store.saveExecutions(a.rec.seq, [e]));
      this.retire(a);
      return;
    }
    if (e.state !== 'in_progress') return;
    this.settle(a, e);
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
      this.count(a, e, 1);
      a.gateDirty = true;
    }
    this.write(this.store.saveExecutions(a.rec.seq, [e]));
    if (outcome.kind === 'succeeded' && (a.rec.spec.stages[e.stage]?.gate.observeMs ?? 0) === 0) this.observeDue(a, now);
    this.retire(a);
  }

  private observeDue(a: Active, now: number): void {
    const changed: Execution[] = [];
    for (let top = a.observe.peek(); top && top.due <= now; top = a.observe.peek()) {
      a.observe.pop();
      const e = a.execs.get(top.deviceId);
      if (!e || e.observedAt !== null) continue;
      a.stageObserving[e.stage] = (a.stageObserving[e.stage] ?? 1) - 1;
      if (e.state !== 'succeeded') continue;
      e.observedAt = now;
      const r = this.driver.online(e.deviceId) ? this.driver.reading(e.deviceId) : null;
      if (r && e.baseline) {
        e.observed = r;
        e.cpuDelta = round2(r.cpu - e.baseline.cpu);
        e.memoryDelta = round2(r.memory - e.baseline.memory);
        // Drain only compares like with like: a device plugged in or unplugged meanwhile tells nothing about the release.
        e.drainDelta = r.charging || e.baseline.charging ? 0 : round2(r.drain - e.baseline.drain);
        if (e.endedAt !== null && e.endedAt >= a.rec.gateResetAt) this.countObservation(a, e, 1);
        const g = a.rec.spec.stages[e.stage]?.gate;
        const hurt = g !== undefined && regressed(g, e.cpuDelta, e.memoryDelta, e.drainDelta);
        void this.fleet.recordImpact(e.deviceId, hurt);
      } else {
        e.reason = 'not observed after the update: the device was offline';
      }
      a.gateDirty = true;
      changed.push(e);
    }
    this.write(this.store.saveExecutions(a.rec.seq, changed));
  }

  // ---------------------------------------------------------------- the loop

  /**
   * One pass over every deployment in memory, each in its deployment's
   * serialised order (an operator's action never interleaves with a tick's
   * transition of the same deployment). A deployment whose step fails (its
   * store refused a commit) is left as it was, and tried again next time.
   */
  async tick(): Promise<void> {
    for (const id of [...this.active.keys()]) {
      try {
        await this.serial(id, async () => {
          const a = this.active.get(id);
          if (!a) return;
          const now = this.now();
          if (a.rec.status === 'in_progress') await this.step(a, now);
          else if (a.rec.status === 'halted' || a.rec.status === 'paused') this.observeDue(a, now);
          else this.retire(a);
        });
      } catch (err) {
        this.log.error({ err, deploymentId: id }, 'deployment step failed');
      }
    }
  }

  private async step(a: Active, now: number): Promise<void> {
    const stage = a.rec.spec.stages[a.rec.stage] as Stage;
    if (now - a.lastMemberScan >= MEMBER_SCAN_MS) {
      a.lastMemberScan = now;
      for (let k = 0; k <= a.rec.stage; k++) this.addMembers(a, k, now);
    }
    this.observeDue(a, now);
    // Windows are times of day: the wall clock's, whatever the steady clock says.
    if (inMaintenanceWindow(a.rec.spec.maintenanceWindows, this.clock.now())) {
      this.dispatch(a, stage, now);
      if (a.rec.phase === 'dispatching' && this.stageDone(a)) {
        const t = this.begin(a);
        t.rec.phase = 'soaking';
        t.rec.soakUntil = now + stage.soakMs;
        t.after.push((x) => (x.gateDirty = true));
        await this.commit(a, t);
      }
    } else {
      a.lastRefill = now;
    }
    const rec = a.rec;
    // Stalled updates appear with time alone: with updates running, the gate looks every tick.
    if (a.gateDirty || a.running.size > 0 || (rec.phase === 'soaking' && rec.soakUntil !== null && now >= rec.soakUntil)) {
      a.gateDirty = false;
      await this.judge(a, now);
    }
  }

  private dispatch(a: Active, stage: Stage, now: number): void {
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
      if (!this.driver.online(deviceId)) {
        a.parked.add(deviceId);
        continue;
      }
      // A device that cannot run the payload at all (no agent, no such capability) is skipped, not failed.
      const reading = this.driver.reading(deviceId);
      const why = this.driver.refuses(deviceId, a.rec.spec.payload) ?? (reading === null ? 'pre-flight: the device has not reported its health yet' : preflightFailure(st.preflight, reading));
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
      e.baseline = reading;
      e.startedAt = now;
      e.endedAt = null;
      a.inFlight++;
      a.running.add(deviceId);
      a.stageInFlight[e.stage] = (a.stageInFlight[e.stage] ?? 0) + 1;
      this.fleet.markInflight(deviceId, 1);
      const { handle, committed } = this.driver.start(a.rec.id, deviceId, a.rec.spec.payload, false);
      e.taskId = handle;
      this.write(committed);
      started.push(e);
    }
    if (a.pendingAt > 4096 && a.pendingAt * 2 > a.pending.length) {
      a.pending = a.pending.slice(a.pendingAt);
      a.pendingAt = 0;
    }
    this.write(this.store.saveExecutions(a.rec.seq, started));
  }

  /**
   * Every device of the current stage has an outcome or cannot get one now
   * (offline, skipped), and every success has been observed. Constant time:
   * the queue is visited in order, so nothing is left once the cursor is at
   * its end.
   */
  private stageDone(a: Active): boolean {
    const k = a.rec.stage;
    return a.pendingAt >= a.pending.length && (a.stageInFlight[k] ?? 0) === 0 && (a.stageObserving[k] ?? 0) === 0;
  }

  private gateInput(a: Active, done: boolean, now: number) {
    const s = a.stats[a.rec.stage] ?? emptyStats();
    const stalledMs = a.rec.spec.stages[a.rec.stage]?.gate.stalledMs ?? 0;
    let stalled = 0;
    if (stalledMs > 0) {
      // Running too long, or its device dropped off mid-update (a crashed agent looks like that).
      for (const deviceId of a.running) {
        const e = a.execs.get(deviceId);
        if (e && e.stage === a.rec.stage && e.startedAt !== null && e.startedAt >= a.rec.gateResetAt && (now - e.startedAt >= stalledMs || !this.driver.online(deviceId))) stalled++;
      }
    }
    return {
      ring: this.ringOf(a, a.rec.stage),
      ringDevices: this.fleet.ringSize(this.ringOf(a, a.rec.stage)),
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
  private evidence(a: Active, stage: number, now: number): StageEvidence {
    const stalledMs = a.rec.spec.stages[stage]?.gate.stalledMs ?? 0;
    const x = { ring: this.ringOf(a, stage), devices: 0, judged: 0, running: 0, offline: 0, queued: 0, refused: new Map<string, number>(), preflight: new Map<string, number>() };
    for (const e of a.execs.values()) {
      if (e.stage !== stage) continue;
      x.devices++;
      switch (e.state) {
        case 'in_progress':
          // A stalled update counts for the gate as timed out: it is evidence.
          if (stalledMs > 0 && e.startedAt !== null && (now - e.startedAt >= stalledMs || !this.driver.online(e.deviceId))) x.judged++;
          else x.running++;
          break;
        case 'queued':
          if (this.driver.online(e.deviceId)) x.queued++;
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

  private async judge(a: Active, now: number): Promise<void> {
    const rec = a.rec;
    const stage = rec.spec.stages[rec.stage] as Stage;
    const soakOver = rec.phase === 'soaking' && rec.soakUntil !== null && now >= rec.soakUntil;
    const v = judgeGate(stage.gate, this.gateInput(a, rec.phase === 'soaking', now));
    const ring = stage.ring;
    if (v.verdict === 'fail') {
      const t = this.begin(a);
      t.rec.status = 'halted';
      t.rec.haltReason = v.reason;
      t.evaluations.push({ stage: rec.stage, ring, at: now, verdict: 'fail', reason: v.reason, figures: v.figures });
      t.after.push((x) => x.lastVerdict.set(rec.stage, 'fail'));
      t.events.push({ status: 'halted', action: 'halt' });
      if (rec.spec.autoRollback) {
        this.planRollback(a, t, now, `rolled back automatically: ${v.reason}`);
        t.events.push({ status: 'rolled_back', action: 'rollback' });
      }
      await this.commit(a, t);
      this.log.warn({ deploymentId: rec.id, reason: v.reason }, 'deployment halted');
      return;
    }
    if (!soakOver) {
      if (v.verdict === 'wait' && a.lastVerdict.get(rec.stage) === undefined) {
        await this.store.insertGateEvaluation(rec.seq, { stage: rec.stage, ring, at: now, verdict: 'wait', reason: v.reason, figures: v.figures });
        a.lastVerdict.set(rec.stage, 'wait');
      }
      return;
    }
    const evidence = this.evidence(a, rec.stage, now);
    const short = evidenceShortfall(stage.gate, evidence);
    const t = this.begin(a);
    if (short) {
      // Too few devices could be judged to call this a pass: an operator decides (promote, resume to wait, or abort).
      t.rec.status = 'paused';
      t.rec.haltReason = short.reason;
      t.rec.detail.pauseReason = 'insufficient_evidence';
      t.evaluations.push({ stage: rec.stage, ring, at: now, verdict: 'insufficient_evidence', reason: short.reason, figures: { ...v.figures, ...short.figures } });
      t.after.push((x) => x.lastVerdict.set(rec.stage, 'insufficient_evidence'));
      t.events.push({ status: 'paused', action: 'insufficient_evidence' });
      await this.commit(a, t);
      this.log.warn({ deploymentId: rec.id, reason: short.reason }, 'deployment paused: insufficient evidence');
      return;
    }
    const passed = v.verdict === 'pass' ? v.reason : `${v.reason}; the soak is over, moving on`;
    // A pass says which devices it stands on when some could not be judged.
    const note = unjudgedNote(evidence);
    const reason = note === '' ? passed : `${passed}; ${evidence.judged} of ${evidence.devices} devices judged, not judged: ${note}`;
    t.evaluations.push({ stage: rec.stage, ring, at: now, verdict: 'pass', reason, figures: v.figures });
    t.after.push((x) => x.lastVerdict.set(rec.stage, 'pass'));
    this.planNextStage(a, t, now);
    await this.commit(a, t);
  }

  // ---------------------------------------------------------------- impact

  /** The most affected devices of a deployment, by the size of their health change. */
  async impact(id: string, limit: number): Promise<{ deviceId: string; ring: string; cpuDelta: number; memoryDelta: number; drainDelta: number; score: number }[]> {
    const view = await this.get(id);
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

  /** Counts of executions by state, for views. */
  static countStates(executions: readonly Execution[]): Record<ExecutionState, number> {
    return countExecutionStates(executions);
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function newExecution(deviceId: string, stage: number, now: number): Execution {
  return {
    deviceId, stage, state: 'queued', taskId: null, reason: null, baseline: null, observed: null,
    cpuDelta: null, memoryDelta: null, drainDelta: null, rollbackTaskId: null, queuedAt: now, startedAt: null, endedAt: null, observedAt: null,
  };
}
