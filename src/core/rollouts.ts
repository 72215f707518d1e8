import type { DeploymentAction, DeploymentRecord, DeploymentSpec, Execution, ExecutionState, Stage } from '../domain/deployment.js';
import { countExecutionStates, deploymentOutcome, evidenceShortfall, inMaintenanceWindow, judgeGate, pauseReasonOf, TERMINAL_DEPLOYMENT_STATES, TRANSITIONS, unjudgedNote } from '../domain/deployment.js';
import { OrchestratorError } from '../domain/errors.js';
import type { Fleet } from '../fleet/fleet.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import { steadyWall } from '../util/clock.js';
import { newTaskId } from '../util/ids.js';
import type { Logger } from '../util/logger.js';
import type { EventBus } from '../domain/events.js';
import { dispatchStage, gateInput, stageDone, stageEvidence } from './rollout-gate.js';
import type { OutcomeContext } from './rollout-outcomes.js';
import { applyOutcome, observeDue } from './rollout-outcomes.js';
import { planAbort, planNextStage, planRollback, planStage, planUnpause } from './rollout-plans.js';
import type { Active, DeploymentView, ExecutionDriver, ExecutionOutcome, Report, Transition } from './rollout-state.js';
import {
  beginTransition,
  buildActive,
  emptyStats,
  impactRanking,
  MEMBER_SCAN_MS,
  newExecution,
  ringOf,
} from './rollout-state.js';

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

  /** What the plans and the dispatcher use of the controller. */
  private readonly ctx: OutcomeContext;
  private readonly modelOf = (deviceId: string): string | undefined => this.fleet.modelOf(deviceId);

  constructor(options: { store: Store; clock: Clock; fleet: Fleet; driver: ExecutionDriver; events: EventBus; log: Logger }) {
    this.store = options.store;
    this.clock = options.clock;
    this.now = steadyWall(options.clock);
    this.fleet = options.fleet;
    this.driver = options.driver;
    this.events = options.events;
    this.log = options.log;
    this.ctx = {
      fleet: this.fleet,
      driver: this.driver,
      store: this.store,
      retire: (a) => this.retire(a),
      settle: (a, e) => this.settle(a, e),
      write: (p) => this.write(p),
      modelOf: this.modelOf,
    };
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
    const a = buildActive(rec, executions, this.now(), this.modelOf);
    this.active.set(rec.id, a);
    return a;
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
    // The gate's verdicts first: a client that stops at a final status has then read why (a halt's failing gate).
    for (const evaluation of t.evaluations) this.events.emit('deployment.gate_evaluated', { deploymentId: t.rec.id, evaluation });
    for (const ev of t.events) this.events.emit('deployment.changed', { deploymentId: t.rec.id, ...ev });
  }

  // ---------------------------------------------------------------- API

  async create(spec: DeploymentSpec, options: { id?: string; start?: boolean } = {}): Promise<DeploymentRecord> {
    const id = options.id ?? `dep-${newTaskId().slice(0, 8)}`;
    // Serialised like any action, so that an action right after a create with start waits for the start.
    return this.serial(id, async () => {
      if (this.active.has(id) || (await this.store.getDeployment(id))) throw OrchestratorError.of('ORCH_DEPLOYMENT_EXISTS', id);
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
      if (options.start) return this.actNow(id, 'start', undefined);
      return { ...full };
    });
  }

  /**
   * An operator's action; refused with 409 from a state it does not apply to.
   * Actions on one deployment run one at a time, in arrival order, and each
   * is committed before it is answered.
   */
  act(id: string, action: DeploymentAction, options: { reason?: string } = {}): Promise<DeploymentRecord> {
    return this.serial(id, () => this.actNow(id, action, options.reason));
  }

  private async actNow(id: string, action: DeploymentAction, reason: string | undefined): Promise<DeploymentRecord> {
    let a = this.active.get(id);
    let loaded = false;
    if (!a) {
      const stored = await this.store.getDeployment(id);
      if (!stored) throw OrchestratorError.of('ORCH_DEPLOYMENT_NOT_FOUND', id);
      if (stored.kind === 'seed') throw new OrchestratorError('ORCH_DEPLOYMENT_STATE', `deployment ${id} was started through /start_deployment; use /complete_deployment`);
      // An ended deployment can still be rolled back: it comes back into memory for that, once the rollback is committed.
      if (!TRANSITIONS[action].from.includes(stored.status)) {
        throw new OrchestratorError('ORCH_DEPLOYMENT_STATE', `deployment ${id} is ${stored.status}; ${action} applies to ${TRANSITIONS[action].from.join(', ')}`);
      }
      a = buildActive(stored, await this.store.getExecutions(stored.seq), this.now(), this.modelOf);
      loaded = true;
    }
    const rec = a.rec;
    const tr = TRANSITIONS[action];
    if (!tr.from.includes(rec.status)) {
      throw new OrchestratorError('ORCH_DEPLOYMENT_STATE', `deployment ${id} is ${rec.status}; ${action} applies to ${tr.from.join(', ')}`);
    }
    const now = this.now();
    const t = beginTransition(a);
    const ring = ringOf(a, rec.stage);
    switch (action) {
      case 'start':
        t.rec.status = 'in_progress';
        t.rec.startedAt = now;
        planStage(this.ctx, a, t, 0, now);
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
        planUnpause(t);
        t.after.push((x) => (x.lastRefill = now));
        break;
      case 'promote': {
        const why = pauseReasonOf(rec) === 'insufficient_evidence' ? 'without the evidence its gate asked for' : 'soak skipped';
        planUnpause(t);
        t.evaluations.push({ stage: rec.stage, ring, at: now, verdict: 'override', reason: `ring ${ring}: promoted by an operator; ${why}`, figures: {} });
        t.after.push((x) => {
          x.lastVerdict.set(rec.stage, 'override');
          x.lastRefill = now;
        });
        planNextStage(this.ctx, a, t, now);
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
        planAbort(this.ctx, a, t, now);
        break;
      case 'halt': {
        const why = `halted at ring ${ring} by ${reason ?? 'an operator'}`;
        t.rec.status = 'halted';
        t.rec.haltReason = why;
        delete t.rec.detail.pauseReason;
        t.evaluations.push({ stage: rec.stage, ring, at: now, verdict: 'override', reason: `ring ${ring}: ${why}`, figures: {} });
        t.after.push((x) => x.lastVerdict.set(rec.stage, 'override'));
        break;
      }
      case 'rollback':
        planRollback(this.ctx, a, t, now, 'rolled back by an operator');
        break;
    }
    t.events.push({ status: t.rec.status, action });
    await this.commit(a, t, loaded);
    return { ...a.rec };
  }

  async get(id: string): Promise<DeploymentView> {
    // An action or transition of this deployment in flight: show its outcome (what a restart would show).
    // (So never called from the deployment's own chain: it would wait for itself.)
    await this.chains.get(id);
    const a = this.active.get(id);
    const rec = a ? { ...a.rec } : await this.store.getDeployment(id);
    if (!rec) throw OrchestratorError.of('ORCH_DEPLOYMENT_NOT_FOUND', id);
    await Promise.all([...this.writes]);
    const executions = a ? [...a.execs.values()].map((e) => ({ ...e })) : await this.store.getExecutions(rec.seq);
    return { deployment: rec, executions, evaluations: await this.store.getGateEvaluations(rec.seq) };
  }

  list(limit: number, before?: number): Promise<DeploymentRecord[]> {
    return this.store.listDeployments(limit, before);
  }

  /** The deployments in progress now (not scheduled, paused, halted or ended), by id. */
  inProgress(): string[] {
    return [...this.active.values()].filter((a) => a.rec.status === 'in_progress').map((a) => a.rec.id);
  }

  /** One device's executions in every deployment, newest deployment first. */
  deviceExecutions(deviceId: string, limit: number): Promise<{ deploymentId: string; execution: Execution }[]> {
    return this.store.deviceExecutions(deviceId, limit);
  }

  /** Every deployment not ended (scheduled, running, paused, halted): its record and its executions by state. */
  activeProgress(): { deployment: DeploymentRecord; counts: Record<ExecutionState, number>; devices: number }[] {
    return [...this.active.values()].map((a) => ({ deployment: { ...a.rec }, counts: countExecutionStates(a.execs.values()), devices: a.execs.size }));
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




  /** Queues every device of the stage's ring that has no execution yet, now (not a transition: the record does not change); returns how many. */
  private addMembers(a: Active, stage: number, now: number): number {
    const fresh: Execution[] = [];
    for (const deviceId of this.fleet.members(ringOf(a, stage))) {
      if (a.execs.has(deviceId)) continue;
      const e = newExecution(deviceId, stage, now);
      a.execs.set(deviceId, e);
      a.pending.push(deviceId);
      fresh.push(e);
    }
    this.write(this.store.saveExecutions(a.rec.seq, fresh));
    return fresh.length;
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
    const t = beginTransition(a);
    t.rec.endedAt = this.now();
    t.rec.detail.outcome = deploymentOutcome(a.execs.values());
    t.after.push((x) => this.retire(x));
    await this.commit(a, t);
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
    applyOutcome(this.ctx, a, e, outcome, rollback, now);
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
          else if (a.rec.status === 'halted' || a.rec.status === 'paused') observeDue(this.ctx, a, now);
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
    observeDue(this.ctx, a, now);
    // Windows are times of day: the wall clock's, whatever the steady clock says.
    if (inMaintenanceWindow(a.rec.spec.maintenanceWindows, this.clock.now())) {
      dispatchStage(this.ctx, a, stage, now);
      if (a.rec.phase === 'dispatching' && stageDone(a)) {
        const t = beginTransition(a);
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





  private async judge(a: Active, now: number): Promise<void> {
    const rec = a.rec;
    const stage = rec.spec.stages[rec.stage] as Stage;
    const soakOver = rec.phase === 'soaking' && rec.soakUntil !== null && now >= rec.soakUntil;
    const v = judgeGate(stage.gate, gateInput(a, rec.phase === 'soaking', now, this.driver, this.fleet));
    const ring = stage.ring;
    if (v.verdict === 'fail') {
      const t = beginTransition(a);
      t.rec.status = 'halted';
      t.rec.haltReason = v.reason;
      t.evaluations.push({ stage: rec.stage, ring, at: now, verdict: 'fail', reason: v.reason, figures: v.figures });
      t.after.push((x) => x.lastVerdict.set(rec.stage, 'fail'));
      t.events.push({ status: 'halted', action: 'halt' });
      if (rec.spec.autoRollback) {
        planRollback(this.ctx, a, t, now, `rolled back automatically: ${v.reason}`);
        t.events.push({ status: 'rolled_back', action: 'rollback' });
      }
      await this.commit(a, t);
      this.log.warn({ deploymentId: rec.id, reason: v.reason }, 'deployment halted');
      return;
    }
    if (!soakOver) {
      if (v.verdict === 'wait' && a.lastVerdict.get(rec.stage) === undefined) {
        const evaluation = { stage: rec.stage, ring, at: now, verdict: 'wait' as const, reason: v.reason, figures: v.figures };
        await this.store.insertGateEvaluation(rec.seq, evaluation);
        this.events.emit('deployment.gate_evaluated', { deploymentId: rec.id, evaluation });
        a.lastVerdict.set(rec.stage, 'wait');
      }
      return;
    }
    const evidence = stageEvidence(a, rec.stage, now, this.driver);
    const short = evidenceShortfall(stage.gate, evidence);
    const t = beginTransition(a);
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
    planNextStage(this.ctx, a, t, now);
    await this.commit(a, t);
  }

  // ---------------------------------------------------------------- impact


  /** The most affected devices of a deployment, by the size of their health change. */
  async impact(id: string, limit: number): Promise<ReturnType<typeof impactRanking>> {
    return impactRanking(await this.get(id), limit);
  }

  /** Counts of executions by state, for views. */
  static countStates(executions: readonly Execution[]): Record<ExecutionState, number> {
    return countExecutionStates(executions);
  }
}

