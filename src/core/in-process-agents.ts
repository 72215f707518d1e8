import { OrchestratorError } from '../domain/errors.js';
import type { MetricAdjustment } from '../domain/metrics.js';
import type { DeviceInfo, TaskType } from '../domain/types.js';
import type { AnyEnvelope, Envelope } from '../protocol/envelope.js';
import type { Wire } from '../protocol/reliable-endpoint.js';
import { ReliableEndpoint } from '../protocol/reliable-endpoint.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { AgentLauncher } from './agent-launcher.js';
import type { AgentDirectory, LiveAgent } from './agents.js';
import type { CoreState } from './core-state.js';
import type { EventBus } from '../domain/events.js';
import type { Heartbeats } from './heartbeats.js';
import type { ResultReport } from './task-types.js';
import { offerResult } from './task-results.js';

export interface InProcessAgentsOptions {
  state: CoreState;
  agents: AgentDirectory;
  heartbeats: Heartbeats;
  launcher: AgentLauncher;
  store: Store;
  clock: Clock;
  events: EventBus;
  log: Logger;
  /** How long to wait for agents to report the effect of `modify_metrics`. */
  replyTimeoutMs: number;
  /** Retransmission interval of unacknowledged messages to agents. */
  retryIntervalMs: number;
}

/**
 * The agents the orchestrator spawns itself (the seed's simulated agents): launched through the launcher, and
 * spoken to in the seed's envelopes over a reliable endpoint each. A message is acknowledged once what it
 * changed is committed.
 */
export class InProcessAgents {
  private readonly replyWaiters = new Map<string, (device: DeviceInfo) => void>();
  /** Messages being handled, so that stop() can wait for their writes. */
  private readonly handling = new Set<Promise<void>>();

  constructor(private readonly o: InProcessAgentsOptions) {}

  /** Starts the agent's process (or its simulation), which connects back. */
  launch(live: LiveAgent, profile: { capabilities: TaskType[]; device: DeviceInfo }): void {
    this.o.launcher.launch(live.agent.id, this.o.state.masterId, profile, (toAgent) => this.connect(live.agent.id, toAgent));
  }

  /** Opens (or re-opens) the master's side of an agent's connection; returns the wire into the master. */
  connect(agentId: string, toAgent: Wire): Wire {
    const live = this.o.agents.get(agentId);
    if (!live) throw OrchestratorError.of('ORCH_AGENT_NOT_FOUND', agentId);
    if (live.endpoint instanceof ReliableEndpoint && !live.endpoint.isClosed) {
      live.endpoint.rewire(toAgent);
    } else {
      live.endpoint = new ReliableEndpoint({
        id: this.o.state.masterId,
        peerId: agentId,
        clock: this.o.clock,
        wire: toAgent,
        onMessage: (env) => this.onMessage(agentId, env),
        retryIntervalMs: this.o.retryIntervalMs,
      });
    }
    const endpoint = live.endpoint as ReliableEndpoint;
    return (env) => endpoint.receive(env);
  }

  /** Resolves once every message being handled has been (the orchestrator stops). */
  async settle(): Promise<void> {
    await Promise.all([...this.handling]);
  }

  /**
   * Sends `modify_metrics` to each agent and waits (bounded) for each to report
   * its new metrics, so that the caller's next read reflects the change.
   */
  async instruct(targets: LiveAgent[], reason: string, adjustments: () => MetricAdjustment[], deploymentId?: string): Promise<void> {
    const waits = targets.map((live) => {
      if (!live.endpoint) return Promise.resolve();
      const messageId = live.endpoint.send('modify_metrics', {
        reason,
        adjustments: adjustments(),
        ...(deploymentId !== undefined ? { deployment_id: deploymentId } : {}),
      });
      return new Promise<void>((resolve) => {
        const timer = this.o.clock.setTimeout(() => {
          this.replyWaiters.delete(messageId);
          resolve();
        }, this.o.replyTimeoutMs);
        this.replyWaiters.set(messageId, () => {
          timer.cancel();
          this.replyWaiters.delete(messageId);
          resolve();
        });
      });
    });
    await Promise.all(waits);
  }

  /** Resolves once what the message changed is committed; the endpoint acknowledges it then. */
  private onMessage(agentId: string, env: AnyEnvelope): Promise<void> | undefined {
    const live = this.o.agents.get(agentId);
    if (!live || env.sender_id !== agentId || !this.o.state.isRunning) return undefined;
    if (!this.o.state.writable) {
      // Nothing is recorded while the store cannot commit. A heartbeat still says the agent lives; anything
      // else is left unacknowledged, and the agent's endpoint sends it again.
      if (env.message_type === 'heartbeat') live.detector.heartbeat(this.o.clock.monotonic());
      return env.message_type === 'heartbeat' ? undefined : Promise.reject(new OrchestratorError('ORCH_STORAGE_UNAVAILABLE', 'the store cannot commit now'));
    }
    const work = this.handle(live, env);
    this.handling.add(work);
    void work.then(
      () => this.handling.delete(work),
      (err: unknown) => {
        this.handling.delete(work);
        this.o.log.error({ err, agentId, messageType: env.message_type }, 'failed to handle agent message');
      },
    );
    return work;
  }

  private async handle(live: LiveAgent, env: AnyEnvelope): Promise<void> {
    const now = this.o.clock.now();
    const { state, store } = this.o;
    switch (env.message_type) {
      case 'registration':
        await this.o.heartbeats.register(live, env.payload.device_info, now);
        break;
      case 'heartbeat':
        await this.o.heartbeats.apply(live, env.payload.metrics, env.payload.running_tasks, undefined, now, false);
        break;
      case 'task_result':
        await this.onTaskResult(live, env);
        break;
      case 'task_status':
        if (env.payload.status === 'started') state.tasks.progress(live.agent.id, env.payload.task_id, env.payload.attempt);
        break;
      case 'device_status_update': {
        live.agent.device = env.payload.device_info;
        await Promise.all([store.updateAgentDevice(live.agent.id, env.payload.device_info), state.fleet.sample(live.agent.id, env.payload.device_info, now)]);
        const waiter = env.payload.in_reply_to === undefined ? undefined : this.replyWaiters.get(env.payload.in_reply_to);
        waiter?.(env.payload.device_info);
        break;
      }
      case 'error':
        this.o.log.warn({ agentId: live.agent.id, code: env.payload.code, message: env.payload.message }, 'agent reported an error');
        break;
      default:
        break;
    }
  }

  private async onTaskResult(live: LiveAgent, env: Envelope<'task_result'>): Promise<void> {
    const p = env.payload;
    const report: ResultReport = p.success
      ? { success: true, result: p.result ?? null }
      : { success: false, error: p.error ?? 'task failed', ...(p.retryable !== undefined ? { retryable: p.retryable } : {}) };
    const verdict = await offerResult(this.o.state.tasks, live.agent.id, p.task_id, p.attempt, report);
    // A stale or unknown result is refused, and that refusal is the handling: it is acknowledged.
    if (verdict.status === 'refused') this.o.log.debug({ taskId: p.task_id, attempt: p.attempt, agentId: live.agent.id }, verdict.error);
  }
}
