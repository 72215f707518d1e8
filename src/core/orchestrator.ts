import { isHealthy, unhealthyReasons } from '../domain/health.js';
import {
  activityBurst,
  affectedCount,
  deploymentImpact,
  deploymentRecovery,
  recoveredCount,
} from '../domain/impact.js';
import type { MetricAdjustment } from '../domain/metrics.js';
import type { Rng } from '../domain/random.js';
import { sample } from '../domain/random.js';
import { afterFailedAttempt, maxAttemptsFor } from '../domain/retry.js';
import type { RingCounts } from '../domain/rings.js';
import { chooseRing, emptyRingCounts, planRebalance } from '../domain/rings.js';
import { OrchestratorError } from '../domain/errors.js';
import type { Agent, Asset, Deployment, DeviceInfo, Ring, Task, TaskStatus, TaskType } from '../domain/types.js';
import { isTaskType, TASK_TYPES } from '../domain/types.js';
import type { AnyEnvelope, Envelope } from '../protocol/envelope.js';
import type { EndpointStats, Wire } from '../protocol/reliable-endpoint.js';
import { ReliableEndpoint } from '../protocol/reliable-endpoint.js';
import type { AttemptEndOutcome, Store, TaskAttempt } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import { newAgentId, newMasterId, newTaskId } from '../util/ids.js';
import type { Logger } from '../util/logger.js';
import type { AgentLauncher } from './agent-launcher.js';
import { EventBus } from './events.js';
import { Loop } from './loop.js';

export interface OrchestratorSettings {
  heartbeatIntervalMs: number;
  agentTimeoutMs: number;
  taskTimeoutMs: number;
  taskRetryLimit: number;
  rebalanceIntervalMs: number;
}

export interface OrchestratorOptions {
  store: Store;
  clock: Clock;
  rng: Rng;
  launcher: AgentLauncher;
  settings: OrchestratorSettings;
  log: Logger;
  /** How often heartbeats and task deadlines are checked. @default 1000 */
  sweepIntervalMs?: number;
  /** How long to wait for agents to report the effect of `modify_metrics`. @default 2000 */
  replyTimeoutMs?: number;
  /** Tasks one agent runs at once. @default 1 */
  concurrencyPerAgent?: number;
  /** Retransmission interval of unacknowledged messages to agents. @default 1000 */
  retryIntervalMs?: number;
}

/** An agent as the orchestrator holds it in memory: its stored record plus its live connection. */
export interface LiveAgent {
  agent: Agent;
  endpoint: ReliableEndpoint | null;
  /** Tasks in flight on this agent: task id → attempt number and start time. */
  running: Map<string, { attempt: number; startedAt: number }>;
  lastAssignedAt: number;
  succeeded: number;
  failed: number;
}

export interface SubmitTaskInput {
  type: string;
  parameters?: Record<string, unknown>;
  priority?: number;
}

export interface AgentView {
  agent: Agent;
  status: 'idle' | 'busy' | 'offline';
  healthy: boolean | null;
  runningTasks: string[];
  succeeded: number;
  failed: number;
  asset: Asset | null;
}

export interface ClusterSnapshot {
  masterId: string;
  running: boolean;
  agents: AgentView[];
  taskCounts: Record<TaskStatus, number>;
  ringCounts: RingCounts;
  queueStats: Record<string, EndpointStats>;
}

const DISPATCH_PAGE = 200;

/**
 * The master. Holds the fleet, talks to every agent through a reliable
 * endpoint, assigns rings, dispatches the task queue, watches heartbeats and
 * task deadlines, and runs the seed's deployment facade. All durable state is
 * in the Store; what it keeps in memory is a cache of the fleet and the live
 * connections, rebuilt from the Store on start.
 */
export class Orchestrator {
  readonly events = new EventBus();
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly rng: Rng;
  private readonly launcher: AgentLauncher;
  private readonly settings: OrchestratorSettings;
  private readonly log: Logger;
  private readonly concurrency: number;
  private readonly replyTimeoutMs: number;
  private readonly retryIntervalMs: number;
  private readonly agents = new Map<string, LiveAgent>();
  private readonly replyWaiters = new Map<string, (device: DeviceInfo) => void>();
  private readonly sweeper: Loop;
  private readonly rebalancer: Loop;
  private masterIdValue = '';
  private started = false;
  private dispatching: Promise<void> | null = null;
  /** Agent messages being handled, so that stop() can wait for their writes. */
  private readonly handling = new Set<Promise<void>>();
  private dispatchAgain = false;

  constructor(options: OrchestratorOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.rng = options.rng;
    this.launcher = options.launcher;
    this.settings = options.settings;
    this.log = options.log;
    this.concurrency = options.concurrencyPerAgent ?? 1;
    this.replyTimeoutMs = options.replyTimeoutMs ?? 2000;
    this.retryIntervalMs = options.retryIntervalMs ?? 1000;
    const onError = (name: string, err: unknown): void => this.log.error({ err, loop: name }, 'loop run failed');
    this.sweeper = new Loop('sweeper', this.clock, options.sweepIntervalMs ?? 1000, () => this.sweep(), onError);
    this.rebalancer = new Loop('rebalancer', this.clock, this.settings.rebalanceIntervalMs, async () => {
      await this.rebalance();
    }, onError);
  }

  get masterId(): string {
    return this.masterIdValue;
  }

  get isRunning(): boolean {
    return this.started;
  }

  /**
   * Loads the fleet, returns tasks that were running when the last process
   * ended to the queue (their agents ran in that process), relaunches the
   * spawned agents with their stored identities, and starts the loops.
   * Returns the ids of the agents it restored.
   */
  async start(): Promise<string[]> {
    if (this.started) return [];
    let masterId = await this.store.getMeta('master_id');
    if (masterId === null) {
      masterId = newMasterId(this.rng);
      await this.store.setMeta('master_id', masterId);
    }
    this.masterIdValue = masterId;
    const counts = await this.store.countAttemptsByAgent();
    for (const agent of await this.store.listAgents()) {
      const c = counts.get(agent.id);
      this.agents.set(agent.id, {
        agent,
        endpoint: null,
        running: new Map(),
        lastAssignedAt: 0,
        succeeded: c?.succeeded ?? 0,
        failed: c?.failed ?? 0,
      });
    }
    const now = this.clock.now();
    for (const task of await this.store.listInProgress()) {
      if (task.assignedTo === null) continue;
      await this.endAttempt(task, task.attempts, task.assignedTo, 'interrupted', 'orchestrator restarted while the task ran', true, now);
    }
    this.started = true;
    const restored: string[] = [];
    for (const live of this.agents.values()) {
      if (live.agent.kind !== 'simulated' || live.agent.device === null) continue;
      // Silent until it speaks again: offline, with the failure detector's clock starting now.
      live.agent.connectivity = 'offline';
      live.agent.lastHeartbeatAt = now;
      this.launch(live, { capabilities: live.agent.capabilities, device: live.agent.device });
      restored.push(live.agent.id);
    }
    this.sweeper.start();
    this.rebalancer.start();
    return restored;
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    await this.sweeper.stop();
    await this.rebalancer.stop();
    this.launcher.stopAll();
    for (const live of this.agents.values()) live.endpoint?.close();
    await Promise.all([...this.handling]);
    await this.dispatching;
  }

  // ---------------------------------------------------------------- agents

  /** Creates an agent, stores it, then launches it. The returned id is durable. */
  async spawnAgent(asset?: Asset): Promise<string> {
    this.assertRunning();
    const covered = new Set<TaskType>();
    for (const live of this.agents.values()) if (live.agent.connectivity !== 'decommissioned') live.agent.capabilities.forEach((c) => covered.add(c));
    const profile = this.launcher.createProfile(covered, asset);
    let id = newAgentId(this.rng);
    while (this.agents.has(id) || (await this.store.getAgent(id)) !== null) id = newAgentId(this.rng);
    const agent: Agent = {
      id,
      kind: 'simulated',
      capabilities: profile.capabilities,
      connectivity: 'offline',
      registeredAt: null,
      lastHeartbeatAt: this.clock.now(),
      device: profile.device,
      ring: 'unassigned',
      assetId: asset?.id ?? null,
      createdAt: this.clock.now(),
    };
    await this.store.insertAgent(agent);
    const live: LiveAgent = { agent, endpoint: null, running: new Map(), lastAssignedAt: 0, succeeded: 0, failed: 0 };
    this.agents.set(id, live);
    this.launch(live, profile);
    this.events.emit('agent.spawned', { agentId: id, assetId: agent.assetId });
    return id;
  }

  /** Stores an asset. A known asset id updates the asset and keeps its agent; a new one gets a new agent. */
  async addAsset(asset: Asset): Promise<{ agentId: string; created: boolean }> {
    this.assertRunning();
    const { created } = await this.store.upsertAsset(asset, this.clock.now());
    const existing = await this.store.findAgentByAsset(asset.id);
    if (existing) return { agentId: existing.id, created };
    return { agentId: await this.spawnAgent(asset), created };
  }

  /** Decommissions an agent: it is told to shut down, and its tasks go back to the queue. */
  async removeAgent(agentId: string): Promise<void> {
    this.assertRunning();
    const live = this.agents.get(agentId);
    if (!live) throw new OrchestratorError('ORCH_AGENT_NOT_FOUND', `agent ${agentId} not found`);
    await this.store.setConnectivity(agentId, 'decommissioned');
    live.agent.connectivity = 'decommissioned';
    live.endpoint?.send('shutdown', { reason: 'removed by operator' }, { reliable: false });
    await this.requeueAgentTasks(live, 'agent_lost', `agent ${agentId} was removed`);
    live.endpoint?.close();
    this.launcher.stop(agentId);
    this.agents.delete(agentId);
    this.events.emit('agent.removed', { agentId });
    this.kickDispatch();
  }

  listAgentIds(): string[] {
    return [...this.agents.keys()];
  }

  async agentView(agentId: string): Promise<AgentView> {
    const live = this.agents.get(agentId);
    if (!live) throw new OrchestratorError('ORCH_AGENT_NOT_FOUND', `agent ${agentId} not found`);
    const asset = live.agent.assetId === null ? null : await this.store.getAsset(live.agent.assetId);
    return this.view(live, asset);
  }

  async agentViews(): Promise<AgentView[]> {
    const assets = new Map((await this.store.listAssets()).map((a) => [a.id, a]));
    return [...this.agents.values()].map((live) => this.view(live, live.agent.assetId === null ? null : assets.get(live.agent.assetId) ?? null));
  }

  private view(live: LiveAgent, asset: Asset | null): AgentView {
    const a = live.agent;
    return {
      agent: a,
      status: a.connectivity !== 'online' ? 'offline' : live.running.size > 0 ? 'busy' : 'idle',
      healthy: a.device && a.registeredAt !== null ? isHealthy(a.device) : null,
      runningTasks: [...live.running.keys()],
      succeeded: live.succeeded,
      failed: live.failed,
      asset,
    };
  }

  async assets(): Promise<{ asset: Asset; agentId: string | null; agentStatus: string | null }[]> {
    const byAsset = new Map<string, LiveAgent>();
    for (const live of this.agents.values()) if (live.agent.assetId !== null) byAsset.set(live.agent.assetId, live);
    return (await this.store.listAssets()).map((asset) => {
      const live = byAsset.get(asset.id);
      return { asset, agentId: live?.agent.id ?? null, agentStatus: live ? this.view(live, asset).status : null };
    });
  }

  async cluster(): Promise<ClusterSnapshot> {
    const queueStats: Record<string, EndpointStats> = {};
    for (const live of this.agents.values()) {
      queueStats[live.agent.id] = live.endpoint
        ? { ...live.endpoint.stats }
        : { sent: 0, received: 0, dropped: 0, retransmitted: 0, duplicates: 0 };
    }
    return {
      masterId: this.masterIdValue,
      running: this.started,
      agents: await this.agentViews(),
      taskCounts: await this.store.countTasksByStatus(),
      ringCounts: this.ringCounts(),
      queueStats,
    };
  }

  ringCounts(except?: string): RingCounts {
    const counts = emptyRingCounts();
    for (const live of this.agents.values()) if (live.agent.id !== except) counts[live.agent.ring] += 1;
    return counts;
  }

  /** Ring moves, all or one agent's, oldest first. */
  ringMoves(agentId?: string) {
    return this.store.listRingMoves(agentId);
  }

  private launch(live: LiveAgent, profile: { capabilities: TaskType[]; device: DeviceInfo }): void {
    this.launcher.launch(live.agent.id, this.masterIdValue, profile, (toAgent) => this.connect(live.agent.id, toAgent));
  }

  /** Opens (or re-opens) the master's side of an agent's connection; returns the wire into the master. */
  connect(agentId: string, toAgent: Wire): Wire {
    const live = this.agents.get(agentId);
    if (!live) throw new OrchestratorError('ORCH_AGENT_NOT_FOUND', `agent ${agentId} not found`);
    if (live.endpoint && !live.endpoint.isClosed) {
      live.endpoint.rewire(toAgent);
    } else {
      live.endpoint = new ReliableEndpoint({
        id: this.masterIdValue,
        peerId: agentId,
        clock: this.clock,
        wire: toAgent,
        onMessage: (env) => this.onAgentMessage(agentId, env),
        retryIntervalMs: this.retryIntervalMs,
      });
    }
    const endpoint = live.endpoint;
    return (env) => endpoint.receive(env);
  }

  // ---------------------------------------------------------------- messages

  private onAgentMessage(agentId: string, env: AnyEnvelope): void {
    const live = this.agents.get(agentId);
    if (!live || env.sender_id !== agentId) return;
    const work = this.handle(live, env)
      .catch((err: unknown) => this.log.error({ err, agentId, messageType: env.message_type }, 'failed to handle agent message'))
      .finally(() => this.handling.delete(work));
    this.handling.add(work);
  }

  private async handle(live: LiveAgent, env: AnyEnvelope): Promise<void> {
    if (!this.started) return;
    const now = this.clock.now();
    switch (env.message_type) {
      case 'registration':
        await this.onRegistration(live, env, now);
        break;
      case 'heartbeat':
        await this.onHeartbeat(live, env, now);
        break;
      case 'task_result':
        await this.onTaskResult(live, env, now);
        break;
      case 'device_status_update': {
        live.agent.device = env.payload.device_info;
        await this.store.updateAgentDevice(live.agent.id, env.payload.device_info);
        const waiter = env.payload.in_reply_to === undefined ? undefined : this.replyWaiters.get(env.payload.in_reply_to);
        waiter?.(env.payload.device_info);
        break;
      }
      case 'error':
        this.log.warn({ agentId: live.agent.id, code: env.payload.code, message: env.payload.message }, 'agent reported an error');
        break;
      default:
        break;
    }
  }

  private async onRegistration(live: LiveAgent, env: Envelope<'registration'>, now: number): Promise<void> {
    const wasOnline = live.agent.connectivity === 'online';
    await this.store.recordRegistration(live.agent.id, env.payload.device_info, now);
    live.agent.device = env.payload.device_info;
    live.agent.registeredAt ??= now;
    live.agent.lastHeartbeatAt = now;
    live.agent.connectivity = 'online';
    this.events.emit('agent.registered', { agentId: live.agent.id });
    if (!wasOnline) this.events.emit('agent.online', { agentId: live.agent.id });
    this.kickDispatch();
  }

  private async onHeartbeat(live: LiveAgent, env: Envelope<'heartbeat'>, now: number): Promise<void> {
    const base = live.agent.device;
    if (base === null) return;
    const device: DeviceInfo = { ...base, ...env.payload.metrics };
    const wasOnline = live.agent.connectivity === 'online';
    await this.store.recordHeartbeat(live.agent.id, device, now);
    live.agent.device = device;
    live.agent.lastHeartbeatAt = now;
    live.agent.connectivity = 'online';
    live.agent.registeredAt ??= now;
    if (!wasOnline) {
      this.events.emit('agent.online', { agentId: live.agent.id });
      this.kickDispatch();
    }
    // Work the agent still runs but no longer owns (reassigned while it was away) is cancelled.
    for (const taskId of env.payload.running_tasks) {
      if (!live.running.has(taskId)) live.endpoint?.send('task_status', { task_id: taskId, attempt: Number.MAX_SAFE_INTEGER, status: 'cancel' });
    }
    if (live.agent.ring === 'unassigned') {
      const healthy = isHealthy(device);
      const ring = chooseRing(healthy, this.ringCounts(live.agent.id));
      const reason = healthy
        ? 'first heartbeat: healthy, placed in the least-filled ring'
        : `first heartbeat: unhealthy (${unhealthyReasons(device).join(', ')}), placed in an early ring`;
      await this.moveRing(live, ring, reason, now);
    }
  }

  private async moveRing(live: LiveAgent, to: Ring, reason: string, now: number): Promise<void> {
    const move = await this.store.moveRing({ agentId: live.agent.id, from: live.agent.ring, to, reason, at: now });
    live.agent.ring = to;
    live.endpoint?.send('ring_assignment', { ring: to, reason });
    this.events.emit('ring.moved', { move });
  }

  private async onTaskResult(live: LiveAgent, env: Envelope<'task_result'>, now: number): Promise<void> {
    const { task_id: taskId, attempt } = env.payload;
    const agentId = live.agent.id;
    const inflight = live.running.get(taskId);
    if (!inflight || inflight.attempt !== attempt) {
      this.events.emit('task.stale_result', { taskId, attempt, agentId });
      this.log.debug({ taskId, attempt, agentId }, 'stale task result refused');
      return;
    }
    live.running.delete(taskId);
    if (env.payload.success) {
      const task = await this.store.completeAttempt(taskId, attempt, agentId, env.payload.result ?? null, now);
      if (task) {
        live.succeeded++;
        this.events.emit('task.completed', { task });
      } else {
        this.events.emit('task.stale_result', { taskId, attempt, agentId });
      }
    } else {
      const task = await this.store.getTask(taskId);
      if (task) {
        live.failed++;
        await this.endAttempt(task, attempt, agentId, 'failed', env.payload.error ?? 'task failed', env.payload.retryable !== false, now);
      }
    }
    this.kickDispatch();
  }

  // ---------------------------------------------------------------- tasks

  /** Validates and stores a task. Resolves once it is committed. */
  async submitTask(input: SubmitTaskInput): Promise<Task> {
    this.assertRunning();
    if (!isTaskType(input.type)) {
      throw new OrchestratorError('ORCH_UNKNOWN_TASK_TYPE', `unknown task_type "${input.type}"; expected one of ${TASK_TYPES.join(', ')}`);
    }
    const task = await this.store.insertTask({
      id: newTaskId(),
      type: input.type,
      parameters: input.parameters ?? {},
      priority: input.priority ?? 0,
      status: 'pending',
      assignedTo: null,
      attempts: 0,
      maxAttempts: maxAttemptsFor(this.settings.taskRetryLimit),
      createdAt: this.clock.now(),
      startedAt: null,
      completedAt: null,
      result: null,
      error: null,
    });
    this.events.emit('task.submitted', { task });
    this.kickDispatch();
    return task;
  }

  async getTask(taskId: string): Promise<{ task: Task; attempts: TaskAttempt[] }> {
    const task = await this.store.getTask(taskId);
    if (!task) throw new OrchestratorError('ORCH_TASK_NOT_FOUND', 'task not found');
    return { task, attempts: await this.store.getAttempts(taskId) };
  }

  /** Runs dispatch now, or once more after the run in progress. */
  kickDispatch(): void {
    if (!this.started) return;
    if (this.dispatching) {
      this.dispatchAgain = true;
      return;
    }
    this.dispatching = (async () => {
      try {
        do {
          this.dispatchAgain = false;
          await this.dispatchOnce();
        } while (this.dispatchAgain && this.started);
      } catch (err) {
        this.log.error({ err }, 'dispatch failed');
      } finally {
        this.dispatching = null;
      }
    })();
  }

  /** Resolves when no dispatch is running (tests). */
  async idle(): Promise<void> {
    while (this.dispatching) await this.dispatching;
  }

  /**
   * Hands pending tasks to free agents: highest priority first, oldest first
   * within a priority, each to the free capable agent that has waited
   * longest. A task no free agent can run does not hold up those behind it.
   */
  private async dispatchOnce(): Promise<void> {
    const free = (): LiveAgent[] =>
      [...this.agents.values()]
        .filter((l) => l.agent.connectivity === 'online' && l.endpoint !== null && l.running.size < this.concurrency)
        .sort((a, b) => a.lastAssignedAt - b.lastAssignedAt);
    let candidates = free();
    let after: { priority: number; seq: number } | undefined;
    while (candidates.length > 0 && this.started) {
      const page = await this.store.listPending(DISPATCH_PAGE, after);
      if (page.length === 0) return;
      for (const task of page) {
        const agent = candidates.find((l) => l.agent.capabilities.includes(task.type));
        if (!agent) continue;
        const now = this.clock.now();
        const started = await this.store.startAttempt(task.id, agent.agent.id, now);
        if (!started) continue;
        agent.running.set(task.id, { attempt: started.attempts, startedAt: now });
        agent.lastAssignedAt = now;
        agent.endpoint?.send('task_assignment', {
          task_id: task.id,
          task_type: task.type,
          parameters: task.parameters,
          attempt: started.attempts,
          timeout_ms: this.settings.taskTimeoutMs,
        });
        this.events.emit('task.started', { task: started, agentId: agent.agent.id });
        candidates = free();
        if (candidates.length === 0) return;
      }
      const last = page[page.length - 1] as Task;
      after = { priority: last.priority, seq: last.seq };
      if (page.length < DISPATCH_PAGE) return;
    }
  }

  /** Ends an attempt that did not succeed: retry while attempts remain and it is retryable, otherwise fail. */
  private async endAttempt(
    task: Task,
    attempt: number,
    agentId: string,
    outcome: AttemptEndOutcome,
    error: string,
    retryable: boolean,
    now: number,
  ): Promise<void> {
    const decision = afterFailedAttempt(attempt, task.maxAttempts, retryable);
    const updated = await this.store.failAttempt(task.id, attempt, agentId, outcome, error, decision.kind === 'retry', now);
    if (!updated) return;
    if (updated.status === 'pending') this.events.emit('task.requeued', { task: updated, reason: error });
    else this.events.emit('task.failed', { task: updated });
  }

  private async requeueAgentTasks(live: LiveAgent, outcome: AttemptEndOutcome, reason: string): Promise<void> {
    const now = this.clock.now();
    for (const [taskId, { attempt }] of [...live.running]) {
      live.running.delete(taskId);
      const task = await this.store.getTask(taskId);
      if (task) await this.endAttempt(task, attempt, live.agent.id, outcome, reason, true, now);
    }
  }

  // ---------------------------------------------------------------- loops

  /** One pass of the failure detector and the task deadline check. */
  async sweep(): Promise<void> {
    const now = this.clock.now();
    for (const live of [...this.agents.values()]) {
      const a = live.agent;
      if (a.connectivity === 'online' && a.lastHeartbeatAt !== null && now - a.lastHeartbeatAt > this.settings.agentTimeoutMs) {
        a.connectivity = 'offline';
        await this.store.setConnectivity(a.id, 'offline');
        this.log.warn({ agentId: a.id, silentMs: now - a.lastHeartbeatAt }, 'agent offline');
        this.events.emit('agent.offline', { agentId: a.id, silentMs: now - a.lastHeartbeatAt });
        await this.requeueAgentTasks(live, 'agent_lost', `agent ${a.id} went offline (no heartbeat for ${Math.round((now - a.lastHeartbeatAt) / 1000)} s)`);
      }
      for (const [taskId, run] of [...live.running]) {
        if (now - run.startedAt <= this.settings.taskTimeoutMs) continue;
        live.running.delete(taskId);
        live.failed++;
        live.endpoint?.send('task_status', { task_id: taskId, attempt: run.attempt, status: 'cancel' });
        const task = await this.store.getTask(taskId);
        if (task) {
          const error = `attempt ${run.attempt} timed out after ${Math.round(this.settings.taskTimeoutMs / 1000)} s on ${a.id}`;
          await this.endAttempt(task, run.attempt, a.id, 'timed_out', error, true, now);
        }
      }
    }
    this.kickDispatch();
  }

  /** Moves unhealthy devices out of prod; every move is stored with its reason. */
  async rebalance(): Promise<number> {
    const members = [...this.agents.values()]
      .filter((l) => l.agent.device !== null && l.agent.connectivity === 'online')
      .map((l) => ({
        id: l.agent.id,
        ring: l.agent.ring,
        healthy: isHealthy(l.agent.device as DeviceInfo),
        unhealthyReasons: unhealthyReasons(l.agent.device as DeviceInfo),
      }));
    const moves = planRebalance(members, this.ringCounts());
    const now = this.clock.now();
    for (const m of moves) {
      const live = this.agents.get(m.agentId);
      if (live) await this.moveRing(live, m.to, m.reason, now);
    }
    return moves.length;
  }

  // ---------------------------------------------------------------- deployments (the seed's facade)

  private onlineWithDevice(): LiveAgent[] {
    return [...this.agents.values()].filter((l) => l.agent.connectivity === 'online' && l.agent.device !== null);
  }

  /**
   * Sends `modify_metrics` to each agent and waits (bounded) for each to report
   * its new metrics, so that the caller's next read reflects the change.
   */
  private async instruct(targets: LiveAgent[], reason: string, adjustments: () => MetricAdjustment[], deploymentId?: string): Promise<void> {
    const waits = targets.map((live) => {
      if (!live.endpoint) return Promise.resolve();
      const messageId = live.endpoint.send('modify_metrics', {
        reason,
        adjustments: adjustments(),
        ...(deploymentId !== undefined ? { deployment_id: deploymentId } : {}),
      });
      return new Promise<void>((resolve) => {
        const timer = this.clock.setTimeout(() => {
          this.replyWaiters.delete(messageId);
          resolve();
        }, this.replyTimeoutMs);
        this.replyWaiters.set(messageId, () => {
          timer.cancel();
          this.replyWaiters.delete(messageId);
          resolve();
        });
      });
    });
    await Promise.all(waits);
  }

  async startDeployment(id: string): Promise<Deployment> {
    this.assertRunning();
    if (await this.store.getDeployment(id)) throw new OrchestratorError('ORCH_DEPLOYMENT_EXISTS', `deployment ${id} already exists`);
    const online = this.onlineWithDevice();
    const affected = sample(this.rng, online, affectedCount(this.rng, online.length));
    const deployment: Deployment = {
      id,
      status: 'active',
      startedAt: this.clock.now(),
      completedAt: null,
      affectedAgents: affected.map((l) => l.agent.id),
      recoveredAgents: [],
    };
    await this.store.insertDeployment(deployment);
    await this.instruct(affected, 'deployment_impact', () => deploymentImpact(this.rng), id);
    this.events.emit('deployment.started', { deploymentId: id, affected: deployment.affectedAgents });
    return deployment;
  }

  async completeDeployment(id: string): Promise<Deployment> {
    this.assertRunning();
    const existing = await this.store.getDeployment(id);
    if (!existing) throw new OrchestratorError('ORCH_DEPLOYMENT_NOT_FOUND', `deployment ${id} not found`);
    if (existing.status !== 'active') throw new OrchestratorError('ORCH_DEPLOYMENT_NOT_ACTIVE', `deployment ${id} is ${existing.status}, not active`);
    const online = this.onlineWithDevice();
    const recovered = sample(this.rng, online, recoveredCount(this.rng, online.length));
    const done = await this.store.completeDeployment(id, recovered.map((l) => l.agent.id), this.clock.now());
    if (!done) throw new OrchestratorError('ORCH_DEPLOYMENT_NOT_ACTIVE', `deployment ${id} is no longer active`);
    await this.instruct(recovered, 'deployment_recovery', () => deploymentRecovery(this.rng), id);
    this.events.emit('deployment.completed', { deploymentId: id, recovered: done.recoveredAgents });
    return done;
  }

  async getDeployment(id: string): Promise<Deployment> {
    const d = await this.store.getDeployment(id);
    if (!d) throw new OrchestratorError('ORCH_DEPLOYMENT_NOT_FOUND', `deployment ${id} not found`);
    return d;
  }

  /** `/simulate_activity`: a burst of use on every online agent, with metrics before and after. */
  async simulateActivity(): Promise<{ affected: string[]; before: Map<string, DeviceInfo>; after: Map<string, DeviceInfo> }> {
    this.assertRunning();
    const targets = this.onlineWithDevice();
    const before = new Map(targets.map((l) => [l.agent.id, { ...(l.agent.device as DeviceInfo) }]));
    await this.instruct(targets, 'simulated_activity', () => activityBurst(this.rng));
    const after = new Map(targets.map((l) => [l.agent.id, { ...(l.agent.device as DeviceInfo) }]));
    return { affected: targets.map((l) => l.agent.id), before, after };
  }

  private assertRunning(): void {
    if (!this.started) throw new OrchestratorError('ORCH_SHUTTING_DOWN', 'the orchestrator is not running');
  }
}

