import { applyAdjustments, readingOf, type Reading } from '../domain/metrics.js';
import type { Rng } from '../domain/random.js';
import type { DeviceInfo, RingOrUnassigned, TaskType } from '../domain/types.js';
import type { AnyEnvelope, Envelope, PayloadMap } from '../protocol/envelope.js';
import type { Wire } from '../protocol/reliable-endpoint.js';
import { ReliableEndpoint } from '../protocol/reliable-endpoint.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { DRIFT_INTERVAL_MS, driftStep } from './device-model.js';
import type { TaskHandler } from './task-handlers.js';
import { SIMULATED_HANDLERS, TaskFailure } from './task-handlers.js';

export interface SimulatedAgentOptions {
  id: string;
  masterId: string;
  capabilities: TaskType[];
  device: DeviceInfo;
  clock: Clock;
  rng: Rng;
  heartbeatIntervalMs: number;
  /** Each heartbeat interval varies by up to this share either way (an irregular laptop). @default 0 */
  heartbeatJitter?: number;
  driftIntervalMs?: number;
  handlers?: Partial<Record<TaskType, TaskHandler>>;
  retryIntervalMs?: number;
}

/** An AbortController made only when a handler asks for its signal: most tasks never do. */
class LazyAbort {
  private controller: AbortController | null = null;
  private reason: Error | null = null;

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.reason && !this.controller.signal.aborted) this.controller.abort(this.reason);
    return this.controller.signal;
  }

  get aborted(): boolean {
    return this.reason !== null;
  }

  abort(reason: Error): void {
    this.reason ??= reason;
    this.controller?.abort(reason);
  }
}

interface Running {
  attempt: number;
  abort: LazyAbort;
}

/**
 * A device that lives in the orchestrator's process but knows nothing of it:
 * it sees only envelopes arriving on its endpoint and sends envelopes back.
 * It registers, heartbeats its metrics, drifts as the seed's devices do, runs
 * tasks with the built-in simulated handlers, and applies `modify_metrics`.
 */
export class SimulatedAgent {
  readonly id: string;
  private readonly opts: SimulatedAgentOptions;
  private device: DeviceInfo;
  private ring: RingOrUnassigned = 'unassigned';
  private readonly installed: { version: string | null } = { version: null };
  private readonly running = new Map<string, Running>();
  private endpoint: ReliableEndpoint | null = null;
  private heartbeatTimer: TimerHandle | null = null;
  private driftTimer: TimerHandle | null = null;
  private seq = 0;
  /** Results finished while paused, sent on resume (as a stopped process would, late). */
  private readonly heldResults: PayloadMap['task_result'][] = [];
  /** Results sent and not acknowledged yet, by task: the task is still held, so heartbeats list it. */
  private readonly unacknowledged = new Map<string, string>();
  private started = false;
  private paused = false;

  constructor(opts: SimulatedAgentOptions) {
    this.opts = opts;
    this.id = opts.id;
    this.device = { ...opts.device };
  }

  /** Connects to the master: `connect` receives this agent's inbound wire and returns the wire to the master. */
  start(connect: (toAgent: Wire) => Wire): void {
    if (this.started) return;
    this.started = true;
    // A paused device hears nothing: no acknowledgement, so the master keeps retransmitting.
    const toMaster = connect((env) => {
      if (!this.paused) this.endpoint?.receive(env);
    });
    this.endpoint = new ReliableEndpoint({
      id: this.id,
      peerId: this.opts.masterId,
      clock: this.opts.clock,
      wire: (env) => {
        if (!this.paused) toMaster(env);
      },
      onMessage: (env) => this.onMessage(env),
      retryIntervalMs: this.opts.retryIntervalMs ?? 1000,
    });
    this.endpoint.send('registration', { capabilities: this.opts.capabilities, device_info: this.snapshot() });
    this.scheduleHeartbeat(0);
    this.scheduleDrift();
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    this.heartbeatTimer?.cancel();
    this.driftTimer?.cancel();
    for (const r of this.running.values()) r.abort.abort(new Error('agent stopped'));
    this.running.clear();
    this.endpoint?.close();
    this.endpoint = null;
  }

  /** Stops heartbeating and answering, as a hung or disconnected device would (tests). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const held = this.heldResults.splice(0);
    for (const r of held) this.sendResult(r);
  }

  /** Changes the simulated device's readings, as load or a charger would on a real one. */
  setMetrics(change: Partial<Reading>): void {
    this.device = { ...this.device, ...change };
  }

  get currentRing(): RingOrUnassigned {
    return this.ring;
  }

  snapshot(): DeviceInfo {
    return { ...this.device };
  }

  runningTasks(): string[] {
    return [...this.running.keys()];
  }

  /** What heartbeats list: tasks running, and tasks whose result has not reached the master yet. */
  private heldTasks(): string[] {
    const held = new Set(this.running.keys());
    for (const r of this.heldResults) held.add(r.task_id);
    for (const [taskId, messageId] of this.unacknowledged) {
      if (this.endpoint?.isPending(messageId)) held.add(taskId);
      else this.unacknowledged.delete(taskId);
    }
    return [...held];
  }

  private scheduleHeartbeat(delayMs: number): void {
    this.heartbeatTimer = this.opts.clock.setTimeout(() => {
      if (!this.started) return;
      if (!this.paused) {
        this.endpoint?.send(
          'heartbeat',
          { seq: ++this.seq, metrics: readingOf(this.device), running_tasks: this.heldTasks() },
          { reliable: false },
        );
      }
      const jitter = this.opts.heartbeatJitter ?? 0;
      this.scheduleHeartbeat(jitter === 0 ? this.opts.heartbeatIntervalMs : this.opts.heartbeatIntervalMs * (1 + jitter * (2 * this.opts.rng() - 1)));
    }, delayMs);
  }

  private scheduleDrift(): void {
    this.driftTimer = this.opts.clock.setTimeout(() => {
      if (!this.started) return;
      this.device = driftStep(this.device, this.opts.rng);
      this.scheduleDrift();
    }, this.opts.driftIntervalMs ?? DRIFT_INTERVAL_MS);
  }

  private onMessage(env: AnyEnvelope): void {
    switch (env.message_type) {
      case 'task_assignment':
        this.runTask(env);
        break;
      case 'task_status':
        if (env.payload.status === 'cancel') {
          const r = this.running.get(env.payload.task_id);
          if (r && r.attempt <= env.payload.attempt) {
            r.abort.abort(new Error('cancelled by master'));
            this.running.delete(env.payload.task_id);
          }
        }
        break;
      case 'modify_metrics':
        this.device = { ...this.device, ...applyAdjustments(this.device, env.payload.adjustments) };
        this.endpoint?.send('device_status_update', { in_reply_to: env.message_id, device_info: this.snapshot() });
        break;
      case 'ring_assignment':
        this.ring = env.payload.ring;
        break;
      case 'shutdown':
        this.stop();
        break;
      default:
        break;
    }
  }

  private runTask(env: Envelope<'task_assignment'>): void {
    const { task_id, task_type, parameters, attempt } = env.payload;
    const handler = this.opts.handlers?.[task_type] ?? SIMULATED_HANDLERS[task_type];
    if (!this.opts.capabilities.includes(task_type)) {
      this.endpoint?.send('task_result', {
        task_id,
        attempt,
        success: false,
        error: `agent ${this.id} cannot run ${task_type}`,
        retryable: true,
      });
      return;
    }
    const abort = new LazyAbort();
    this.running.set(task_id, { attempt, abort });
    const ctx = {
      clock: this.opts.clock,
      rng: this.opts.rng,
      get signal() {
        return abort.signal;
      },
      device: () => this.snapshot(),
      agentId: this.id,
      setMetrics: (change: Partial<Reading>) => this.setMetrics(change),
      installed: this.installed,
    };
    handler(parameters, ctx).then(
      (result) => this.finish(task_id, attempt, abort, { success: true, result }),
      (err: unknown) => {
        const retryable = !(err instanceof TaskFailure) || err.retryable;
        const message = err instanceof Error ? err.message : String(err);
        this.finish(task_id, attempt, abort, { success: false, error: message, retryable });
      },
    );
  }

  private finish(
    taskId: string,
    attempt: number,
    abort: LazyAbort,
    outcome: { success: true; result: unknown } | { success: false; error: string; retryable: boolean },
  ): void {
    // An aborted run was cancelled by the master or by stop(): nobody wants its result.
    if (abort.aborted || !this.started) return;
    const current = this.running.get(taskId);
    if (current?.abort === abort) this.running.delete(taskId);
    const payload: PayloadMap['task_result'] = { task_id: taskId, attempt, ...outcome };
    if (this.paused) this.heldResults.push(payload);
    else this.sendResult(payload);
  }

  private sendResult(payload: PayloadMap['task_result']): void {
    const id = this.endpoint?.send('task_result', payload);
    if (id !== undefined) this.unacknowledged.set(payload.task_id, id);
  }
}
