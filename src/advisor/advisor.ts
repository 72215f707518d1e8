import { randomUUID } from 'node:crypto';
import type { AdviceRecord, AdviceSubject, AdviceTrigger, AppliedAction } from '../domain/advice.js';
import { subjectKey } from '../domain/advice.js';
import { DEFAULT_GATE } from '../domain/deployment.js';
import { OrchestratorError } from '../domain/errors.js';
import type { ParsedGate } from '../domain/gating.js';
import { checkGate, parseGatingText } from '../domain/gating.js';
import type { EventBus } from '../domain/events.js';
import type { DeploymentService, FleetService } from '../core/services.js';
import type { AdviceFilter, AdviceStore } from '../store/store.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { AnalyserAdvice } from './analyser-advice.js';
import { analyserAdvice } from './analyser-advice.js';
import type { ModelAdvisor } from './model-advisor.js';

/** What the advisor reads and acts through: the API's own services, each read when used (the state may be rebuilt). */
export interface AdvisorServices {
  readonly deployments: DeploymentService;
  readonly fleet: FleetService;
}

export interface AdvisorOptions {
  services: AdvisorServices;
  store: AdviceStore;
  clock: Clock;
  events: EventBus;
  log: Logger;
  /** `halt`: the advisor halts an in-progress deployment its analyser fails (and never does more); `off`: it only advises. */
  auto: 'off' | 'halt';
  /** How often the advisor looks at deployments in progress when `auto` is `halt`. */
  watchMs: number;
  /** The model that writes advice on request; null: the analyser alone. */
  model: ModelAdvisor | null;
}

/** Who acted, as the audit log and applied advice name it. */
export const ADVISOR_ACTOR = 'advisor';

/**
 * The advisor: advice on a deployment, a ring or the fleet, stored with its evidence; applied only by an
 * operator (apply), except that with `auto: 'halt'` it halts an in-progress deployment its analyser fails.
 * When a deployment halts, it writes at once the analyser's explanation of the halt.
 */
export class Advisor {
  /** Advice being written, by subject: a second request for the same subject waits for the first. */
  private readonly writing = new Map<string, Promise<AdviceRecord>>();
  private readonly applying = new Set<string>();
  /** Deployments the advisor is halting itself: their halt needs no explanation of its own. */
  private readonly halting = new Set<string>();
  private watchTimer: TimerHandle | null = null;
  private stopListening: (() => void) | null = null;
  private running = false;
  /** Writes started in the background (halt explanations, the watch), awaited by stop(). */
  private readonly background = new Set<Promise<unknown>>();

  constructor(private readonly o: AdvisorOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopListening = this.o.events.on('deployment.changed', ({ deploymentId, status }) => {
      if (status !== 'halted' || this.halting.has(deploymentId)) return;
      this.track(this.advise({ deployment: deploymentId }, 'halt'), `explaining the halt of ${deploymentId} failed`);
    });
    if (this.o.auto === 'halt') this.scheduleWatch();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopListening?.();
    this.stopListening = null;
    this.watchTimer?.cancel();
    this.watchTimer = null;
    await Promise.allSettled([...this.background]);
  }

  /**
   * Advice on the subject, stored before it is returned. A request goes to the model when one is configured
   * (falling back to the analyser's advice, with the reason, when the model fails); a halt's explanation and
   * the watch use the analyser alone, at once.
   */
  advise(subject: AdviceSubject, trigger: AdviceTrigger = 'request'): Promise<AdviceRecord> {
    const key = `${trigger === 'request' ? 'request' : 'analyser'}:${subjectKey(subject)}`;
    const pending = this.writing.get(key);
    if (pending) return pending;
    const work = this.write(subject, trigger).finally(() => this.writing.delete(key));
    this.writing.set(key, work);
    return work;
  }

  private async write(subject: AdviceSubject, trigger: AdviceTrigger, analysed?: AnalyserAdvice): Promise<AdviceRecord> {
    const t0 = performance.now();
    const { deployments, fleet } = this.o.services;
    const analysis = analysed ?? (await analyserAdvice(subject, deployments, fleet, this.o.clock.now()));
    let advice: AnalyserAdvice = analysis;
    let provider: AdviceRecord['provider'] = { name: 'analyser', model: null, fallback: null };
    let tokens = { inputTokens: 0, outputTokens: 0 };
    const model = this.o.model;
    if (model && trigger === 'request') {
      const answer = await model.advise(subject, analysis, this.o.services);
      tokens = answer.usage;
      if (answer.ok) {
        advice = answer.advice;
        provider = { name: model.name, model: model.model, fallback: null };
      } else {
        provider = { name: 'analyser', model: model.model, fallback: `${model.name}: ${answer.reason}` };
      }
    }
    const record: Omit<AdviceRecord, 'seq'> = {
      id: `adv-${randomUUID()}`,
      subject,
      trigger,
      createdAt: this.o.clock.now(),
      ...advice,
      provider,
      cost: { ...tokens, ms: Math.round(performance.now() - t0) },
      applied: null,
    };
    const seq = await this.o.store.insertAdvice(record);
    this.o.events.emit('advice.created', { adviceId: record.id, subject: subjectKey(subject), trigger, decision: record.decision, risk: record.risk });
    return { ...record, seq };
  }

  /**
   * Gating factors from text: with a model, the model proposes and the plan's bounds decide (checkGate); without
   * one, or when it fails, the grammar of domain/gating.ts reads it, and the reason is said.
   */
  async parseGate(text: string): Promise<ParsedGate & { provider: AdviceRecord['provider']; cost: AdviceRecord['cost'] }> {
    const t0 = performance.now();
    const model = this.o.model;
    const cost = (usage: { inputTokens: number; outputTokens: number }) => ({ ...usage, ms: Math.round(performance.now() - t0) });
    if (model) {
      const answer = await model.proposeGate(text);
      if (answer.ok) {
        const checked = checkGate(answer.proposal);
        return {
          gate: checked.gate,
          effective: { ...DEFAULT_GATE, ...checked.gate },
          understood: answer.understood,
          notUnderstood: [...answer.notUnderstood, ...checked.rejected.map((r) => ({ phrase: r, why: 'not accepted by the plan\'s schema' }))],
          clamped: checked.clamped,
          provider: { name: model.name, model: model.model, fallback: null },
          cost: cost(answer.usage),
        };
      }
      return { ...parseGatingText(text), provider: { name: 'analyser', model: model.model, fallback: `${model.name}: ${answer.reason}` }, cost: cost(answer.usage) };
    }
    return { ...parseGatingText(text), provider: { name: 'analyser', model: null, fallback: null }, cost: cost({ inputTokens: 0, outputTokens: 0 }) };
  }

  async get(id: string): Promise<AdviceRecord> {
    const a = await this.o.store.getAdvice(id);
    if (!a) throw OrchestratorError.of('ORCH_ADVICE_NOT_FOUND', id);
    return a;
  }

  list(filter: AdviceFilter, limit: number, before?: number): Promise<AdviceRecord[]> {
    return this.o.store.listAdvice(filter, limit, before);
  }

  /** The newest advice explaining a deployment's halt, or null. */
  async haltExplanation(deploymentId: string): Promise<AdviceRecord | null> {
    return (await this.o.store.listAdvice({ subject: subjectKey({ deployment: deploymentId }), trigger: 'halt' }, 1))[0] ?? null;
  }

  /**
   * Applies advice through the API's own paths: its decision (pause, halt or rollback) as the deployment
   * action, its moves as pinned ring overrides. Each action's outcome is recorded (one refused by the
   * deployment's state, or a device gone, is recorded as failed; the others still go). Once only.
   */
  async apply(id: string, by: string): Promise<AdviceRecord> {
    if (this.applying.has(id)) throw OrchestratorError.of('ORCH_ADVICE_APPLIED', id);
    this.applying.add(id);
    try {
      const advice = await this.get(id);
      if (advice.applied) throw OrchestratorError.of('ORCH_ADVICE_APPLIED', id);
      const actions: AppliedAction[] = [];
      if ('deployment' in advice.subject && (advice.decision === 'pause' || advice.decision === 'halt' || advice.decision === 'rollback')) {
        actions.push(await this.act(advice.subject.deployment, advice.decision, `the advisor's advice ${advice.id}, applied by ${by}`));
      }
      for (const m of advice.moves) actions.push(await this.move(m.deviceId, m.to, `advice ${advice.id}, applied by ${by}: ${m.reason}`));
      const applied = { at: this.o.clock.now(), by, actions };
      if (!(await this.o.store.recordAdviceApplied(id, applied))) throw OrchestratorError.of('ORCH_ADVICE_APPLIED', id);
      this.o.events.emit('advice.applied', { adviceId: id, by, actions: actions.length, failed: actions.filter((a) => !a.ok).length });
      return { ...advice, applied };
    } finally {
      this.applying.delete(id);
    }
  }

  private async act(deploymentId: string, action: 'pause' | 'halt' | 'rollback', reason: string): Promise<AppliedAction> {
    try {
      const d = await this.o.services.deployments.act(deploymentId, action, action === 'halt' ? { reason } : {});
      return { action, target: deploymentId, ok: true, detail: `deployment ${deploymentId} is ${d.status}` };
    } catch (err) {
      if (err instanceof OrchestratorError && err.status < 500) return { action, target: deploymentId, ok: false, detail: err.message };
      throw err;
    }
  }

  private async move(deviceId: string, to: string, reason: string): Promise<AppliedAction> {
    try {
      const out = await this.o.services.fleet.override(deviceId, to, true, reason);
      return { action: 'move', target: deviceId, ok: true, detail: out.moved ? `moved to ${to} and pinned there` : `pinned to ${to} (it was there already)` };
    } catch (err) {
      if (err instanceof OrchestratorError && err.status < 500) return { action: 'move', target: deviceId, ok: false, detail: err.message };
      throw err;
    }
  }

  private scheduleWatch(): void {
    if (!this.running) return;
    this.watchTimer = this.o.clock.setTimeout(() => {
      this.track(this.watch().finally(() => this.scheduleWatch()), 'the advisor\'s watch of deployments failed');
    }, this.o.watchMs);
  }

  /**
   * ADVISOR_AUTO=halt: every deployment in progress whose analyser advice is to halt or roll back is halted
   * (never rolled back, paused or moved), with the advice stored and its halt recorded as applied by the advisor.
   */
  async watch(): Promise<void> {
    for (const id of this.o.services.deployments.inProgress()) {
      const analysis = await analyserAdvice({ deployment: id }, this.o.services.deployments, this.o.services.fleet, this.o.clock.now());
      if (analysis.decision !== 'halt' && analysis.decision !== 'rollback') continue;
      const advice = await this.write({ deployment: id }, 'watch', analysis);
      this.halting.add(id);
      let action: AppliedAction;
      try {
        action = await this.act(id, 'halt', `the advisor (advice ${advice.id}, ADVISOR_AUTO=halt): ${advice.summary}`);
      } finally {
        this.halting.delete(id);
      }
      const applied = { at: this.o.clock.now(), by: ADVISOR_ACTOR, actions: [action] };
      await this.o.store.recordAdviceApplied(advice.id, applied);
      this.o.events.emit('advice.applied', { adviceId: advice.id, by: ADVISOR_ACTOR, actions: 1, failed: action.ok ? 0 : 1 });
      this.o.log.warn({ deploymentId: id, adviceId: advice.id, halted: action.ok }, 'the advisor halted a deployment (ADVISOR_AUTO=halt)');
    }
  }

  private track(work: Promise<unknown>, failure: string): void {
    const p = work.catch((err: unknown) => this.o.log.error({ err }, failure));
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }
}
