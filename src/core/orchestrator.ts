import { isHealthy } from '../domain/health.js';
import type { HealthScoreConfig } from '../domain/health-score.js';
import { DEFAULT_HEALTH_SCORE_CONFIG } from '../domain/health-score.js';
import { detectorSettings, PhiAccrualDetector } from '../domain/failure-detector.js';
import { Fleet, WRITE_BEHIND_MS } from '../fleet/fleet.js';
import type { DeviceAttributes, MetricsSample } from '../fleet/registry.js';
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
import { OrchestratorError } from '../domain/errors.js';
import type { Agent, Asset, BackoffPolicy, DeviceInfo, DeviceMetrics, Task, TaskStatus, TaskType } from '../domain/types.js';
import type { DeploymentRecord, Execution } from '../domain/deployment.js';
import { randomBytes } from 'node:crypto';
import { hashSecret, safeEqual } from '../domain/secrets.js';
import type { Approval } from '../domain/security.js';
import { EnrollmentTokens } from '../security/enrollment.js';
import type { AnyEnvelope, Envelope } from '../protocol/envelope.js';
import type { EndpointStats, Wire } from '../protocol/reliable-endpoint.js';
import { ReliableEndpoint } from '../protocol/reliable-endpoint.js';
import type { Store, TaskAttempt, TaskFilter } from '../store/store.js';
import type { Clock, TimerHandle } from '../util/clock.js';
import { newAgentId, newMasterId } from '../util/ids.js';
import type { Logger } from '../util/logger.js';
import type { AgentLauncher } from './agent-launcher.js';
import { EventBus } from './events.js';
import { Loop } from './loop.js';
import type { HeldAttempt, ResultReport, RunningTask, SubmitInput, Worker } from './task-engine.js';
import { TaskEngine } from './task-engine.js';
import type { ExecutionDriver, ExecutionOutcome } from './rollouts.js';
import type { AgentChannel, Command } from './network-channel.js';
import { CommandIds, NetworkChannel, nextBoot } from './network-channel.js';
import { RolloutController } from './rollouts.js';
import { StorageGuard } from './storage-guard.js';

export interface OrchestratorSettings {
  heartbeatIntervalMs: number;
  agentTimeoutMs: number;
  taskTimeoutMs: number;
  taskRetryLimit: number;
  rebalanceIntervalMs: number;
  /** Tasks one agent runs at once. @default 1 */
  agentConcurrency?: number;
  /** Waiting this long counts as one priority level. @default 60000 */
  taskAgingMs?: number;
  /** Retry delays of tasks that do not set their own. */
  defaultBackoff?: BackoffPolicy;
  /** Weights and thresholds of the device health score. */
  healthScore?: HealthScoreConfig;
  /** The token network agents enroll with; generated on the first start and kept when not given; 'off' for none. */
  enrollToken?: string;
  /** Every newly enrolled agent waits as `pending` for an admin's approval (ENROLL_APPROVAL). */
  enrollApproval?: boolean;
}

/**
 * A sweep that comes this much later than its interval means the process stalled (it was paused, or too busy
 * to read its sockets): heartbeats that arrived meanwhile are read before anyone is suspected.
 */
export const STALL_THRESHOLD_MS = 250;

/** Retries wait 1 s, 2 s, 4 s … up to a minute, each spread over its upper half. */
export const DEFAULT_BACKOFF: BackoffPolicy = { strategy: 'exponential', initialMs: 1000, maxMs: 60_000, jitter: true };

export interface OrchestratorOptions {
  store: Store;
  clock: Clock;
  rng: Rng;
  launcher: AgentLauncher;
  settings: OrchestratorSettings;
  log: Logger;
  /** How often heartbeats, leases and task deadlines are checked. @default 1000 */
  sweepIntervalMs?: number;
  /** How long to wait for agents to report the effect of `modify_metrics`. @default 2000 */
  replyTimeoutMs?: number;
  /** Retransmission interval of unacknowledged messages to agents. @default 1000 */
  retryIntervalMs?: number;
  /** How often running deployments dispatch, observe and judge. @default 1000 */
  deploymentTickMs?: number;
}

/** An agent as the orchestrator holds it in memory: its stored record, its connection, and its worker in the task engine. */
export interface LiveAgent {
  agent: Agent;
  /** Learns the agent's heartbeat rhythm and says when its silence means it is gone. */
  detector: PhiAccrualDetector;
  /** A network agent's credential, hashed. */
  credentialHash: string | null;
  /**
   * The credential last found to match `credentialHash`, kept in memory only, so that each request is one
   * constant-time comparison rather than a hash. Cleared whenever the stored credential changes.
   */
  verifiedCredential?: string;
  endpoint: AgentChannel | null;
  worker: Worker;
  succeeded: number;
  failed: number;
}

/** A deployment as the seed's endpoints show it. */
export interface SeedDeployment {
  id: string;
  status: 'active' | 'completed' | 'cancelled' | 'rolled_back';
  startedAt: number;
  completedAt: number | null;
  affectedAgents: string[];
  recoveredAgents: string[];
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
  ringCounts: Record<string, number>;
  /** Devices (agents included) whose last sample passes the seed's health rule. */
  healthyDevices: number;
  totalDevices: number;
  queueStats: Record<string, EndpointStats>;
}

/**
 * The master. Holds the fleet, talks to every agent through a reliable
 * endpoint, assigns rings, feeds the task engine, watches heartbeats, and runs
 * the seed's deployment facade. Durable state is in the Store; what it keeps
 * in memory is rebuilt from the Store on start.
 */
export class Orchestrator {
  readonly events = new EventBus();
  /** Enrollment tokens beside the default one: limited, revocable, optionally holding agents for approval. */
  readonly enrollmentTokens: EnrollmentTokens;
  /** Fences writes when the store cannot commit, and has memory rebuilt from the store (see StorageGuard). */
  readonly storage: StorageGuard;
  /** The store as every component uses it: through the guard. */
  readonly store: Store;
  // The in-memory state; replaced as a whole when it is rebuilt from the store after a failed write.
  private tasksValue: TaskEngine;
  private fleetValue: Fleet;
  private deploymentsValue: RolloutController;
  private readonly clock: Clock;
  private readonly rng: Rng;
  private readonly launcher: AgentLauncher;
  private readonly settings: OrchestratorSettings;
  private readonly log: Logger;
  private readonly replyTimeoutMs: number;
  private readonly retryIntervalMs: number;
  private readonly sweepIntervalMs: number;
  /** Monotonic end of the last sweep, to tell a stall of this process from agents' silence. */
  private lastSweepAt: number | null = null;
  private readonly agents = new Map<string, LiveAgent>();
  private readonly replyWaiters = new Map<string, (device: DeviceInfo) => void>();
  private readonly sweeper: Loop;
  private readonly rebalancer: Loop;
  private readonly deployer: Loop;
  private masterIdValue = '';
  /** Set at start from the stored boot number. */
  private commandIds = new CommandIds(0);
  private enrollToken = '';
  private readonly heldHeartbeats = new Map<string, { device: DeviceInfo; at: number }>();
  private heartbeatFlush: TimerHandle | null = null;
  private started = false;
  /** Agent messages being handled, so that stop() can wait for their writes. */
  private readonly handling = new Set<Promise<void>>();

  constructor(options: OrchestratorOptions) {
    this.clock = options.clock;
    this.rng = options.rng;
    this.launcher = options.launcher;
    this.settings = options.settings;
    this.log = options.log;
    this.replyTimeoutMs = options.replyTimeoutMs ?? 2000;
    this.retryIntervalMs = options.retryIntervalMs ?? 1000;
    this.sweepIntervalMs = options.sweepIntervalMs ?? 1000;
    this.storage = new StorageGuard(options.store, {
      clock: this.clock,
      log: this.log,
      reload: () => this.reloadState(),
      onChange: (status) => {
        this.events.emit('storage.changed', status);
        // Writes accepted again: what waited for them goes on.
        if (status.writable) this.tasks.scheduleDispatch();
      },
    });
    this.store = this.storage.store;
    this.enrollmentTokens = new EnrollmentTokens(this.store, this.clock);
    this.tasksValue = this.makeTaskEngine();
    this.fleetValue = this.makeFleet();
    // A device that is an agent: its worker serves tasks for its new ring, and the agent is told.
    this.events.on('ring.moved', ({ move }) => {
      const live = this.agents.get(move.agentId);
      if (!live) return;
      live.agent.ring = move.to;
      live.worker.ring = move.to;
      this.tasks.workerChanged();
      if (move.to !== 'unassigned') live.endpoint?.send('ring_assignment', { ring: move.to, reason: move.reason });
    });
    this.deploymentsValue = this.makeRollouts(this.fleetValue);
    // Deployment tasks carry their deployment in their parameters; their outcomes go back to the controller.
    this.events.on('task.completed', ({ task }) => {
      const d = deploymentOf(task);
      if (d) this.deployments.report(d.id, d.deviceId, { kind: 'succeeded' }, d.rollback);
    });
    this.events.on('task.failed', ({ task, outcome }) => {
      const d = deploymentOf(task);
      if (!d) return;
      const reason = task.error ?? outcome;
      // A failure the agent marked non-retryable is the device refusing the update: `rejected`.
      const mapped: ExecutionOutcome =
        outcome === 'timed_out'
          ? { kind: 'timed_out', reason }
          : outcome === 'agent_lost' || outcome === 'lease_expired' || outcome === 'interrupted' || outcome === 'not_running'
            ? { kind: 'lost', reason: `the device went away during the update (${reason}); it is updated when it returns` }
            : task.status === 'failed'
              ? { kind: 'rejected', reason }
              : { kind: 'failed', reason };
      this.deployments.report(d.id, d.deviceId, mapped, d.rollback);
    });
    this.events.on('task.attempt_ended', ({ agentId, outcome }) => {
      const live = this.agents.get(agentId);
      if (!live) return;
      if (outcome === 'succeeded') live.succeeded++;
      else live.failed++;
    });
    const onError = (name: string, err: unknown): void => this.log.error({ err, loop: name }, 'loop run failed');
    // While the store cannot commit, the loops rest: everything they would change needs a write.
    const whenWritable = (body: () => Promise<unknown>) => async (): Promise<void> => {
      if (this.storage.writable) await body();
    };
    this.sweeper = new Loop('sweeper', this.clock, this.sweepIntervalMs, whenWritable(() => this.sweep()), onError);
    this.rebalancer = new Loop('rebalancer', this.clock, this.settings.rebalanceIntervalMs, whenWritable(() => this.rebalance()), onError);
    this.deployer = new Loop('deployer', this.clock, options.deploymentTickMs ?? 1000, whenWritable(() => this.deployments.tick()), onError);
  }

  /** The task queue. */
  get tasks(): TaskEngine {
    return this.tasksValue;
  }

  /** Every device, its health and its ring. */
  get fleet(): Fleet {
    return this.fleetValue;
  }

  /** Staged deployments. */
  get deployments(): RolloutController {
    return this.deploymentsValue;
  }

  private makeTaskEngine(): TaskEngine {
    return new TaskEngine({
      store: this.store,
      clock: this.clock,
      rng: this.rng,
      events: this.events,
      log: this.log,
      canWrite: () => this.storage.writable,
      settings: {
        taskTimeoutMs: this.settings.taskTimeoutMs,
        taskRetryLimit: this.settings.taskRetryLimit,
        leaseMs: this.settings.agentTimeoutMs,
        agingMs: this.settings.taskAgingMs ?? 60_000,
        defaultBackoff: this.settings.defaultBackoff ?? DEFAULT_BACKOFF,
        ringExists: (name) => this.fleet.ringNames().includes(name),
      },
    });
  }

  private makeFleet(): Fleet {
    return new Fleet({ store: this.store, clock: this.clock, events: this.events, log: this.log, health: this.settings.healthScore ?? DEFAULT_HEALTH_SCORE_CONFIG, canWrite: () => this.storage.writable });
  }

  private makeRollouts(fleet: Fleet): RolloutController {
    return new RolloutController({ store: this.store, clock: this.clock, fleet, driver: this.deploymentDriver(), events: this.events, log: this.log });
  }

  /**
   * Rebuilds the in-memory state from the store after a failed write, as a start does but without stopping:
   * agents stay connected (their channels and failure detectors are kept), and the task queue, the fleet and
   * the deployments are loaded anew and replace the old ones, so that no change whose commit failed is left
   * in memory. Reads only; resolves with the writes a start would make, to run once the store commits again.
   */
  private async reloadState(): Promise<() => Promise<void>> {
    const repairs: (() => Promise<void>)[] = [];
    this.heartbeatFlush?.cancel();
    this.heartbeatFlush = null;
    this.heldHeartbeats.clear();
    const fleet = this.makeFleet();
    await fleet.load(repairs);
    const stored = await this.store.listAgents();
    const counts = await this.store.countAttemptsByAgent();
    const assets = new Map((await this.store.listAssets()).map((a) => [a.id, a]));
    const tasks = this.makeTaskEngine();
    const mono = this.clock.monotonic();
    const known = new Set(stored.map((a) => a.id));
    // What each agent was handed, and when: kept for the attempts the store still has running on it.
    const handed = new Map<string, RunningTask>();
    for (const live of this.agents.values()) for (const [taskId, run] of live.worker.running) handed.set(`${live.agent.id}|${taskId}|${run.attempt}`, run);
    for (const [id, live] of this.agents) {
      // Its enrollment or spawn never committed: it is not one of ours.
      if (known.has(id)) continue;
      live.endpoint?.close();
      this.launcher.stop(id);
      this.agents.delete(id);
    }
    for (const agent of stored) {
      agent.ring = fleet.ringOf(agent.id);
      const asset = agent.assetId === null ? null : (assets.get(agent.assetId) ?? null);
      let live = this.agents.get(agent.id);
      if (live) {
        if (live.credentialHash !== (agent.credentialHash ?? null)) delete live.verifiedCredential;
        live.agent = agent;
        live.credentialHash = agent.credentialHash ?? null;
        live.worker = this.newWorker(live, asset);
      } else {
        live = this.liveAgent(agent, asset);
        this.agents.set(agent.id, live);
      }
      // Online as committed; an agent whose silence is not being timed yet starts being timed now.
      if (agent.connectivity === 'online' && live.detector.lastArrival === null) live.detector.heartbeat(mono);
      const c = counts.get(agent.id);
      live.succeeded = c?.succeeded ?? 0;
      live.failed = c?.failed ?? 0;
      tasks.addWorker(live.worker);
    }
    // Every agent is alive (nothing stopped): what they were running goes on, until their heartbeats say otherwise.
    await tasks.load(() => true, repairs);
    for (const live of this.agents.values()) {
      for (const [taskId, run] of live.worker.running) {
        const before = handed.get(`${live.agent.id}|${taskId}|${run.attempt}`);
        if (before) Object.assign(run, { ref: before.ref, assignedAt: before.assignedAt, timeoutAt: before.timeoutAt });
      }
    }
    const deployments = this.makeRollouts(fleet);
    await deployments.load((taskId) => tasks.isLive(taskId), repairs);
    this.tasksValue.stop();
    this.fleetValue.dispose();
    this.tasksValue = tasks;
    this.fleetValue = fleet;
    this.deploymentsValue = deployments;
    this.log.warn({ agents: stored.length, devices: fleet.size, repairs: repairs.length }, 'state rebuilt from the store after a failed write');
    return async () => {
      for (const repair of repairs) await repair();
    };
  }

  get heartbeatIntervalMs(): number {
    return this.settings.heartbeatIntervalMs;
  }

  get masterId(): string {
    return this.masterIdValue;
  }

  get isRunning(): boolean {
    return this.started;
  }

  /**
   * Loads the fleet and the queue (attempts that were running when the last
   * process ended go back to the queue, counted), relaunches the spawned
   * agents with their stored identities, and starts the loops. Returns the ids
   * of the agents it restored.
   */
  async start(): Promise<string[]> {
    if (this.started) return [];
    let masterId = await this.store.getMeta('master_id');
    if (masterId === null) {
      masterId = newMasterId(this.rng);
      await this.store.setMeta('master_id', masterId);
    }
    this.masterIdValue = masterId;
    const stored = await this.store.getMeta('boot');
    const boot = nextBoot(stored === null ? null : Number(stored), this.clock.now());
    await this.store.setMeta('boot', String(boot));
    this.commandIds = new CommandIds(boot);
    let token = this.settings.enrollToken ?? (await this.store.getMeta('enroll_token'));
    if (token === null) {
      token = randomBytes(18).toString('base64url');
      await this.store.setMeta('enroll_token', token);
    }
    // ENROLL_TOKEN=off: no default token, only stored ones (POST /api/v1/enrollment-tokens).
    this.enrollToken = token === 'off' ? '' : token;
    await this.fleet.load();
    const counts = await this.store.countAttemptsByAgent();
    const assets = new Map((await this.store.listAssets()).map((a) => [a.id, a]));
    const now = this.clock.now();
    for (const agent of await this.store.listAgents()) {
      const c = counts.get(agent.id);
      // Silent until it speaks again: offline, with the failure detector's clock starting now.
      agent.connectivity = 'offline';
      agent.lastHeartbeatAt = now;
      agent.ring = this.fleet.ringOf(agent.id);
      const live = this.track(agent, agent.assetId === null ? null : assets.get(agent.assetId) ?? null);
      live.succeeded = c?.succeeded ?? 0;
      live.failed = c?.failed ?? 0;
    }
    // Network agents are processes of their own: what they were running when this process stopped goes on.
    await this.tasks.load((agentId) => this.agents.get(agentId)?.agent.kind === 'network');
    await this.deployments.load((taskId) => this.tasks.isLive(taskId));
    this.started = true;
    const restored: string[] = [];
    for (const live of this.agents.values()) {
      if (live.agent.kind !== 'simulated' || live.agent.device === null) continue;
      this.launch(live, { capabilities: live.agent.capabilities, device: live.agent.device });
      restored.push(live.agent.id);
    }
    this.lastSweepAt = this.clock.monotonic();
    this.sweeper.start();
    this.rebalancer.start();
    this.deployer.start();
    return restored;
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.storage.stop();
    await this.sweeper.stop();
    await this.rebalancer.stop();
    await this.deployer.stop();
    this.tasks.stop();
    this.launcher.stopAll();
    for (const live of this.agents.values()) live.endpoint?.close();
    await Promise.all([...this.handling]);
    await this.flushHeartbeats();
    await this.deployments.flush();
    await this.fleet.snapshot();
  }

  // ---------------------------------------------------------------- agents

  private track(agent: Agent, asset: Asset | null): LiveAgent {
    const live = this.liveAgent(agent, asset);
    this.agents.set(agent.id, live);
    this.tasks.addWorker(live.worker);
    return live;
  }

  /** An agent as held in memory, with its worker (for the caller to add to a task engine). */
  private liveAgent(agent: Agent, asset: Asset | null): LiveAgent {
    const live = {
      agent,
      detector: new PhiAccrualDetector(detectorSettings(this.settings.heartbeatIntervalMs, this.settings.agentTimeoutMs)),
      credentialHash: agent.credentialHash ?? null,
      // A network agent's commands queue from the start: an assignment made before its first poll waits for it.
      endpoint: agent.kind === 'network' ? new NetworkChannel(this.commandIds) : null,
      succeeded: 0,
      failed: 0,
    } as LiveAgent;
    live.worker = this.newWorker(live, asset);
    return live;
  }

  /** The agent as a worker of the task engine: what it may run, and how tasks reach it. */
  private newWorker(live: LiveAgent, asset: Asset | null): Worker {
    const agent = live.agent;
    return {
      id: agent.id,
      capabilities: new Set(agent.capabilities),
      ring: agent.ring,
      asset,
      // A pending agent (waiting for an admin's approval) takes no task.
      concurrency: agent.approval === 'pending' ? 0 : (this.settings.agentConcurrency ?? 1),
      online: agent.connectivity === 'online',
      running: new Map(),
      lastAssignedAt: 0,
      assign: (task) => {
        const endpoint = live.endpoint;
        if (endpoint === null || endpoint.isClosed) return null;
        const ref = endpoint.send('task_assignment', {
          task_id: task.id,
          task_type: task.type,
          parameters: task.parameters,
          attempt: task.attempts,
          timeout_ms: task.timeoutMs,
        });
        return endpoint instanceof NetworkChannel ? Number(ref) : 0;
      },
      cancel: (taskId, attempt) => live.endpoint?.send('task_status', { task_id: taskId, attempt, status: 'cancel' }),
    };
  }

  /** Creates an agent, stores it, then launches it. The returned id is durable. */
  async spawnAgent(asset?: Asset): Promise<string> {
    this.assertWritable();
    const covered = new Set<TaskType>();
    for (const live of this.agents.values()) live.agent.capabilities.forEach((c) => covered.add(c));
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
    await this.fleet.ensureDevice(id, assetAttributes(asset ?? null));
    const live = this.track(agent, asset ?? null);
    this.launch(live, profile);
    this.events.emit('agent.spawned', { agentId: id, assetId: agent.assetId });
    return id;
  }

  /** Stores an asset. A known asset id updates the asset and keeps its agent; a new one gets a new agent. */
  async addAsset(asset: Asset): Promise<{ agentId: string; created: boolean }> {
    this.assertWritable();
    const { created } = await this.store.upsertAsset(asset, this.clock.now());
    const existing = await this.store.findAgentByAsset(asset.id);
    if (existing) {
      const live = this.agents.get(existing.id);
      if (live) {
        live.worker.asset = asset;
        this.tasks.workerChanged();
      }
      await this.fleet.ensureDevice(existing.id, assetAttributes(asset));
      return { agentId: existing.id, created };
    }
    return { agentId: await this.spawnAgent(asset), created };
  }

  /** Decommissions an agent: it is told to shut down, and its tasks go back to the queue. */
  async removeAgent(agentId: string): Promise<void> {
    this.assertWritable();
    const live = this.agents.get(agentId);
    if (!live) throw new OrchestratorError('ORCH_AGENT_NOT_FOUND', `agent ${agentId} not found`);
    await Promise.all([this.store.setConnectivity(agentId, 'decommissioned'), this.fleet.setConnectivity(agentId, 'decommissioned')]);
    live.agent.connectivity = 'decommissioned';
    live.worker.online = false;
    live.endpoint?.send('shutdown', { reason: 'removed by operator' }, { reliable: false });
    await this.tasks.removeWorker(agentId, `agent ${agentId} was removed`);
    live.endpoint?.close();
    this.launcher.stop(agentId);
    this.agents.delete(agentId);
    this.events.emit('agent.removed', { agentId });
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
      status: a.connectivity !== 'online' ? 'offline' : live.worker.running.size > 0 ? 'busy' : 'idle',
      healthy: a.device && a.registeredAt !== null ? isHealthy(a.device) : null,
      runningTasks: [...live.worker.running.keys()],
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
      taskCounts: this.tasks.countsByStatus(),
      ringCounts: this.fleet.ringCounts(),
      healthyDevices: this.fleet.healthyCount(),
      totalDevices: this.fleet.size,
      queueStats,
    };
  }

  ringCounts(): Record<string, number> {
    return this.fleet.ringCounts();
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
    if (live.endpoint instanceof ReliableEndpoint && !live.endpoint.isClosed) {
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
    const endpoint = live.endpoint as ReliableEndpoint;
    return (env) => endpoint.receive(env);
  }

  // ---------------------------------------------------------------- messages

  /** Resolves once what the message changed is committed; the endpoint acknowledges it then. */
  private onAgentMessage(agentId: string, env: AnyEnvelope): Promise<void> | undefined {
    const live = this.agents.get(agentId);
    if (!live || env.sender_id !== agentId || !this.started) return undefined;
    if (!this.storage.writable) {
      // Nothing is recorded while the store cannot commit. A heartbeat still says the agent lives; anything
      // else is left unacknowledged, and the agent's endpoint sends it again.
      if (env.message_type === 'heartbeat') live.detector.heartbeat(this.clock.monotonic());
      return env.message_type === 'heartbeat' ? undefined : Promise.reject(new OrchestratorError('ORCH_STORAGE_UNAVAILABLE', 'the store cannot commit now'));
    }
    const work = this.handle(live, env);
    this.handling.add(work);
    void work.then(
      () => this.handling.delete(work),
      (err: unknown) => {
        this.handling.delete(work);
        this.log.error({ err, agentId, messageType: env.message_type }, 'failed to handle agent message');
      },
    );
    return work;
  }

  private async handle(live: LiveAgent, env: AnyEnvelope): Promise<void> {
    const now = this.clock.now();
    switch (env.message_type) {
      case 'registration':
        await this.onRegistration(live, env, now);
        break;
      case 'heartbeat':
        await this.onHeartbeat(live, env, now);
        break;
      case 'task_result':
        await this.onTaskResult(live, env);
        break;
      case 'task_status':
        if (env.payload.status === 'started') this.tasks.progress(live.agent.id, env.payload.task_id, env.payload.attempt);
        break;
      case 'device_status_update': {
        live.agent.device = env.payload.device_info;
        await Promise.all([
          this.store.updateAgentDevice(live.agent.id, env.payload.device_info),
          this.fleet.sample(live.agent.id, metricsOf(env.payload.device_info), now),
        ]);
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

  private markOnline(live: LiveAgent): Promise<void> {
    if (live.agent.connectivity === 'online') return Promise.resolve();
    live.agent.connectivity = 'online';
    live.worker.online = true;
    this.events.emit('agent.online', { agentId: live.agent.id });
    this.tasks.workerChanged();
    return this.fleet.setConnectivity(live.agent.id, 'online');
  }

  private async onRegistration(live: LiveAgent, env: Envelope<'registration'>, now: number): Promise<void> {
    const write = this.store.recordRegistration(live.agent.id, env.payload.device_info, now);
    live.agent.device = env.payload.device_info;
    live.agent.registeredAt ??= now;
    live.agent.lastHeartbeatAt = now;
    live.detector.heartbeat(this.clock.monotonic());
    this.events.emit('agent.registered', { agentId: live.agent.id });
    await Promise.all([write, this.markOnline(live), this.fleet.sample(live.agent.id, metricsOf(env.payload.device_info), now)]);
  }

  private onHeartbeat(live: LiveAgent, env: Envelope<'heartbeat'>, now: number): Promise<void> {
    const pending = this.applyHeartbeat(live, env.payload.metrics, env.payload.running_tasks, undefined, now, false);
    return pending === null ? Promise.resolve() : pending.then(() => undefined);
  }

  /**
   * A heartbeat from any agent: new metrics, the leases of the attempts it lists renewed and those it no
   * longer runs ended (see TaskEngine.heartbeat), online, work it should not hold cancelled, the device
   * rescored. With `writeBehind` (network agents' heartbeats, many and each superseding the last) the
   * heartbeat and the sample are written within a second, together with the others, instead of before the
   * answer. Returns the writes to wait for, or null when there are none (all written behind).
   */
  private applyHeartbeat(
    live: LiveAgent,
    metrics: Partial<DeviceMetrics>,
    held: readonly (string | HeldAttempt)[],
    ack: number | undefined,
    now: number,
    writeBehind: boolean,
  ): Promise<unknown> | null {
    const base = live.agent.device;
    if (base === null) return null;
    const device: DeviceInfo = { ...base, ...metrics };
    const attempts = held.map((h) => (typeof h === 'string' ? { taskId: h } : h));
    const { ended, renewedUntil } = this.tasks.heartbeat(live.agent.id, attempts, ack);
    const writes: Promise<unknown>[] = [];
    if (writeBehind) {
      this.heldHeartbeats.set(live.agent.id, { device, at: now });
      this.heartbeatFlush ??= this.clock.setTimeout(() => void this.flushHeartbeats(), WRITE_BEHIND_MS);
      // Nothing the agent is told waits for these endings: an attempt it does not run needs no answer.
      ended?.catch((err: unknown) => this.log.error({ err, agentId: live.agent.id }, 'ending attempts an agent does not run failed'));
    } else {
      writes.push(this.store.recordHeartbeat(live.agent.id, device, now));
      if (renewedUntil !== null) writes.push(this.store.renewLeases(live.agent.id, renewedUntil));
      if (ended !== null) writes.push(ended);
    }
    live.agent.device = device;
    live.agent.lastHeartbeatAt = now;
    live.agent.registeredAt ??= now;
    live.detector.heartbeat(this.clock.monotonic());
    if (live.agent.connectivity !== 'online') writes.push(this.markOnline(live));
    // Work the agent still runs but no longer holds (it ended, or went to another attempt, while the agent was
    // away) is cancelled: the agent is told to drop the stale attempt.
    for (const run of attempts) {
      if (!this.tasks.holds(live.agent.id, run.taskId, run.attempt)) {
        live.endpoint?.send('task_status', { task_id: run.taskId, attempt: run.attempt ?? Number.MAX_SAFE_INTEGER, status: 'cancel' });
      }
    }
    // New score, and the ring rules for a first placement or a health change.
    const sampled = this.fleet.sample(live.agent.id, metricsOf(device), now, { writeBehind });
    if (sampled !== null) writes.push(sampled);
    return writes.length === 0 ? null : writes.length === 1 ? (writes[0] as Promise<unknown>) : Promise.all(writes);
  }

  /** Writes the heartbeats held back by write-behind, and the device samples with them. */
  async flushHeartbeats(): Promise<void> {
    this.heartbeatFlush?.cancel();
    this.heartbeatFlush = null;
    const held = [...this.heldHeartbeats].map(([id, h]) => ({ id, device: h.device, at: h.at }));
    this.heldHeartbeats.clear();
    // While the store cannot commit, held heartbeats are dropped (memory is rebuilt from the store); the next ones come soon.
    if (!this.storage.writable) return;
    await Promise.all([
      this.store.recordHeartbeats(held).catch((err: unknown) => this.log.error({ err, heartbeats: held.length }, 'writing held-back heartbeats failed')),
      this.fleet.flushSamples(),
    ]);
  }

  // ---------------------------------------------------------------- network agents

  /** The token that enrolls network agents (ENROLL_TOKEN, or one generated on the first start and kept). */
  get enrollmentToken(): string {
    return this.enrollToken;
  }

  /**
   * Enrolls a network agent. A new one gets an id and a credential (only its
   * hash is stored). An agent that presents its id and credential again gets
   * its identity back; the same id with another credential is refused.
   */
  async enroll(input: { token: string; agentId?: string; credential?: string; capabilities: TaskType[]; device: DeviceInfo; attributes?: { model?: string; manufacturer?: string; osName?: string } }): Promise<{ agentId: string; credential: string; approval: Approval }> {
    this.assertWritable();
    const now = this.clock.now();
    if (input.agentId !== undefined) {
      // A returning agent: its credential says who it is; a stored token is not spent again, and need not have uses left.
      if (!(await this.enrollmentTokenKnown(input.token))) throw new OrchestratorError('ORCH_ENROLL_REFUSED', 'enrollment token not accepted');
      const live = this.agents.get(input.agentId);
      if (!live || live.agent.kind !== 'network') throw new OrchestratorError('ORCH_AGENT_IDENTITY', `agent ${input.agentId} is not an enrolled network agent; enroll without an id`);
      if (input.credential === undefined || !this.credentialMatches(live, input.credential)) {
        throw new OrchestratorError('ORCH_AGENT_IDENTITY', `agent ${input.agentId} is enrolled with another credential`);
      }
      live.agent.capabilities = [...input.capabilities];
      live.worker.capabilities = new Set(input.capabilities);
      // A new process of the agent: what the old one had received is judged by the new one's heartbeats.
      if (live.endpoint instanceof NetworkChannel) this.tasks.agentRestarted(live.agent.id, live.endpoint.acked);
      await this.registerNetworkAgent(live, input.device, now);
      return { agentId: live.agent.id, credential: input.credential, approval: live.agent.approval ?? 'approved' };
    }
    let approval: Approval = this.settings.enrollApproval === true ? 'pending' : 'approved';
    if (EnrollmentTokens.looksStored(input.token)) {
      if ((await this.enrollmentTokens.use(input.token)).requireApproval) approval = 'pending';
    } else if (this.enrollToken === '' || !safeEqual(input.token, this.enrollToken)) {
      throw new OrchestratorError('ORCH_ENROLL_REFUSED', 'enrollment token not accepted');
    }
    let id = newAgentId(this.rng);
    while (this.agents.has(id) || (await this.store.getAgent(id)) !== null) id = newAgentId(this.rng);
    const credential = randomBytes(32).toString('base64url');
    const agent: Agent = {
      id, kind: 'network', capabilities: [...input.capabilities], connectivity: 'offline', registeredAt: null, lastHeartbeatAt: now,
      device: input.device, ring: 'unassigned', assetId: null, createdAt: now, credentialHash: hashSecret(credential),
      ...(approval === 'pending' ? { approval } : {}),
    };
    await this.store.insertAgent(agent);
    // What the agent reports the machine is (not its host name, which says nothing of the model).
    await this.fleet.ensureDevice(id, { ...input.attributes });
    const live = this.track(agent, null);
    live.endpoint = new NetworkChannel(this.commandIds);
    await this.registerNetworkAgent(live, input.device, now);
    this.events.emit('agent.spawned', { agentId: id, assetId: null });
    return { agentId: id, credential, approval };
  }

  /** The default token, or a stored one that exists and is not revoked (uses and expiry aside). */
  private async enrollmentTokenKnown(text: string): Promise<boolean> {
    if (this.enrollToken !== '' && safeEqual(text, this.enrollToken)) return true;
    const id = EnrollmentTokens.idOf(text);
    const found = id === null ? null : await this.store.getEnrollmentToken(id);
    return found !== null && found.token.revokedAt === null && safeEqual(hashSecret(EnrollmentTokens.secretOf(text)), found.secretHash);
  }

  /** The orchestrator's clock (a fake one in tests). */
  now(): number {
    return this.clock.now();
  }

  /** An admin accepts a pending agent: from now on it takes tasks. */
  async approveAgent(id: string): Promise<Agent> {
    this.assertWritable();
    const live = this.agents.get(id);
    if (!live || live.agent.kind !== 'network') throw new OrchestratorError('ORCH_AGENT_NOT_FOUND', `no network agent ${id}`);
    if (live.agent.approval === 'pending') {
      await this.store.setAgentApproval(id, 'approved');
      delete live.agent.approval;
      live.worker.concurrency = this.settings.agentConcurrency ?? 1;
      this.tasks.workerChanged();
      this.events.emit('agent.approved', { agentId: id });
    }
    return live.agent;
  }

  private async registerNetworkAgent(live: LiveAgent, device: DeviceInfo, now: number): Promise<void> {
    if (!(live.endpoint instanceof NetworkChannel) || live.endpoint.isClosed) live.endpoint = new NetworkChannel(this.commandIds);
    const write = this.store.recordRegistration(live.agent.id, device, now);
    live.agent.device = device;
    live.agent.registeredAt ??= now;
    live.agent.lastHeartbeatAt = now;
    live.detector.heartbeat(this.clock.monotonic());
    this.events.emit('agent.registered', { agentId: live.agent.id });
    await Promise.all([write, this.markOnline(live), this.fleet.sample(live.agent.id, metricsOf(device), now)]);
  }

  /** The network agent a request's bearer credential (`agentId:secret`) belongs to. */
  authenticate(authorization: string | undefined): LiveAgent {
    const m = /^Bearer ([A-Za-z0-9._-]{1,100}):([A-Za-z0-9_-]{20,200})$/.exec(authorization ?? '');
    const live = m ? this.agents.get(m[1] as string) : undefined;
    if (!m || !live || live.agent.kind !== 'network' || !this.credentialMatches(live, m[2] as string)) {
      throw new OrchestratorError('ORCH_UNAUTHORIZED', 'agent credential missing or not accepted');
    }
    this.assertRunning();
    return live;
  }

  private credentialMatches(live: LiveAgent, secret: string): boolean {
    if (live.verifiedCredential !== undefined && safeEqual(secret, live.verifiedCredential)) return true;
    if (live.credentialHash === null || !safeEqual(hashSecret(secret), live.credentialHash)) return false;
    live.verifiedCredential = secret;
    return true;
  }

  /**
   * A network agent's heartbeat. Written behind (within WRITE_BEHIND_MS); returns the writes the answer must
   * wait for (the agent coming online, a ring move), or null when there are none, which is the usual case.
   * `held` are the attempts the agent holds (running, or with a result not yet delivered); `ack` the last
   * command it had handled when it wrote the heartbeat. While the store cannot commit, the heartbeat only
   * says the agent lives, and is answered ORCH_STORAGE_UNAVAILABLE.
   */
  agentHeartbeat(live: LiveAgent, metrics: Partial<DeviceMetrics>, held: readonly HeldAttempt[], ack?: number): Promise<unknown> | null {
    if (!this.storage.writable) {
      live.detector.heartbeat(this.clock.monotonic());
      this.storage.assertWritable();
    }
    return this.applyHeartbeat(live, metrics, held, ack, this.clock.now(), true);
  }

  /** Answers every waiting long-poll now (the HTTP server is closing and must not wait up to MAX_POLL_MS for them). */
  releasePolls(): void {
    for (const live of this.agents.values()) if (live.endpoint instanceof NetworkChannel) live.endpoint.release();
  }

  /**
   * The agent's long-poll: commands after `ack`, waiting up to `waitMs`. A long wait that ends empty ends up to
   * POLL_JITTER sooner, at random: agents that came together (all of them, after a restart) would otherwise
   * come back together every `waitMs`, for good.
   */
  pollCommands(live: LiveAgent, ack: number, waitMs: number): Promise<Command[]> {
    const current = live.endpoint;
    const channel = current instanceof NetworkChannel && !current.isClosed ? current : new NetworkChannel(this.commandIds);
    live.endpoint = channel;
    const wait = waitMs >= 1000 ? Math.round(waitMs * (1 - POLL_JITTER * this.rng())) : waitMs;
    return channel.poll(ack, wait);
  }

  /** Results of attempts, each committed before the answer; a stale attempt is refused and changes nothing. */
  async agentResults(live: LiveAgent, results: readonly { taskId: string; attempt: number; report: ResultReport }[]): Promise<{ taskId: string; attempt: number; status: 'accepted' | 'refused'; code?: string; error?: string }[]> {
    // The agent keeps its results until they are accepted: while the store cannot commit it is told to wait.
    this.storage.assertWritable();
    return Promise.all(
      results.map(async (r) => {
        try {
          await this.tasks.reportResult(live.agent.id, r.taskId, r.attempt, r.report);
          return { taskId: r.taskId, attempt: r.attempt, status: 'accepted' as const };
        } catch (err) {
          if (err instanceof OrchestratorError && (err.code === 'ORCH_STALE_ATTEMPT' || err.code === 'ORCH_TASK_NOT_FOUND')) {
            return { taskId: r.taskId, attempt: r.attempt, status: 'refused' as const, code: err.code, error: err.message };
          }
          throw err;
        }
      }),
    );
  }

  /** Progress renews the lease of an attempt the agent holds; any other task is not found (it may be another agent's). */
  agentProgress(live: LiveAgent, taskId: string, attempt: number): void {
    if (!this.tasks.progress(live.agent.id, taskId, attempt)) throw new OrchestratorError('ORCH_TASK_NOT_FOUND', 'no such task attempt on this agent');
  }

  private async onTaskResult(live: LiveAgent, env: Envelope<'task_result'>): Promise<void> {
    const p = env.payload;
    const report: ResultReport = p.success
      ? { success: true, result: p.result ?? null }
      : { success: false, error: p.error ?? 'task failed', ...(p.retryable !== undefined ? { retryable: p.retryable } : {}) };
    try {
      await this.tasks.reportResult(live.agent.id, p.task_id, p.attempt, report);
    } catch (err) {
      // A stale or unknown result is refused, and that refusal is the handling: acknowledge it.
      if (err instanceof OrchestratorError && (err.code === 'ORCH_STALE_ATTEMPT' || err.code === 'ORCH_TASK_NOT_FOUND')) {
        this.log.debug({ taskId: p.task_id, attempt: p.attempt, agentId: live.agent.id }, err.message);
        return;
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------- tasks

  /** Validates and stores one task. Resolves once it is committed. */
  async submitTask(input: SubmitInput): Promise<Task> {
    this.assertWritable();
    const [out] = await this.tasks.submit([input]);
    return (out as { task: Task }).task;
  }

  getTask(taskId: string): Promise<{ task: Task; attempts: TaskAttempt[] }> {
    return this.tasks.get(taskId);
  }

  listTasks(filter: TaskFilter, limit: number, before?: number): Promise<Task[]> {
    return this.tasks.list(filter, limit, before);
  }

  // ---------------------------------------------------------------- loops

  /**
   * One pass of the failure detector and the task engine's clock work. A pass that comes more than
   * STALL_THRESHOLD_MS late means this process stalled (paused, or too busy to read its sockets): heartbeats
   * and results that arrived meanwhile have not been read yet. The stall is discounted (no agent's silence
   * and no lease counts it) and the pass is skipped, so that what waited is read before anyone is suspected.
   */
  async sweep(): Promise<void> {
    const start = this.clock.monotonic();
    const stalledMs = this.lastSweepAt === null ? 0 : start - this.lastSweepAt - this.sweepIntervalMs;
    if (stalledMs > STALL_THRESHOLD_MS) {
      for (const live of this.agents.values()) live.detector.discount(stalledMs, start);
      this.tasks.discount(stalledMs);
      this.lastSweepAt = start;
      this.log.warn({ stalledMs: Math.round(stalledMs) }, 'the orchestrator stalled: reading what waited before suspecting any agent');
      this.events.emit('orchestrator.stalled', { ms: stalledMs });
      return;
    }
    const writes: Promise<void>[] = [];
    for (const live of this.agents.values()) {
      const a = live.agent;
      if (a.connectivity === 'online' && live.detector.suspect(start)) {
        const silentMs = start - (live.detector.lastArrival ?? start);
        live.detector.reset();
        a.connectivity = 'offline';
        live.worker.online = false;
        writes.push(this.store.setConnectivity(a.id, 'offline'), this.fleet.setConnectivity(a.id, 'offline'));
        this.log.warn({ agentId: a.id, silentMs }, 'agent offline');
        this.events.emit('agent.offline', { agentId: a.id, silentMs });
        writes.push(this.tasks.workerLost(a.id, `agent ${a.id} went offline (no heartbeat for ${Math.round(silentMs / 1000)} s)`));
      }
    }
    try {
      await Promise.all(writes);
      await this.tasks.sweep();
    } finally {
      this.lastSweepAt = this.clock.monotonic();
    }
  }

  /** A full rebalance of every ring; every move is stored with its reason. Returns how many devices moved. */
  async rebalance(): Promise<number> {
    return (await this.fleet.rebalance('schedule')).moves;
  }

  // ---------------------------------------------------------------- deployments

  /** Deployments run their payloads as tasks on the devices' agents, one attempt each. */
  private deploymentDriver(): ExecutionDriver {
    return {
      online: (id) => this.agents.get(id)?.agent.connectivity === 'online',
      reading: (id) => this.fleet.reading(id),
      refuses: (id, payload) => {
        const live = this.agents.get(id);
        if (!live) return 'no agent runs on this device';
        return live.agent.capabilities.includes(payload.type as TaskType) ? null : `the agent does not offer task type ${payload.type}`;
      },
      start: (deploymentId, deviceId, payload, rollback) => {
        const { tasks, committed } = this.tasks.enqueue([
          { type: payload.type, parameters: { ...payload.params, _deployment: { id: deploymentId, rollback } }, target: { agentId: deviceId }, maxAttempts: 1 },
        ]);
        return { handle: (tasks[0] as Task).id, committed };
      },
      cancel: (handle, reason) => {
        this.tasks.cancel(handle, reason).catch(() => undefined);
      },
    };
  }


  /** The prototype's simulated activity and deployments apply to simulated agents (a real machine's metrics are its own). */
  private onlineWithDevice(): LiveAgent[] {
    return [...this.agents.values()].filter((l) => l.agent.kind === 'simulated' && l.agent.connectivity === 'online' && l.agent.device !== null);
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

  /**
   * `/start_deployment`: a deployment of kind `seed` in the same model as every
   * other. 30–50% of online agents are affected: each gets an execution with
   * its health before, the seed's impact as a `modify_metrics` instruction, and
   * its health after once the agent reports it (stored as the execution's impact).
   */
  async startDeployment(id: string): Promise<SeedDeployment> {
    this.assertWritable();
    if (this.deployments.isActive(id) || (await this.store.getDeployment(id))) throw new OrchestratorError('ORCH_DEPLOYMENT_EXISTS', `deployment ${id} already exists`);
    const online = this.onlineWithDevice();
    const affected = sample(this.rng, online, affectedCount(this.rng, online.length));
    const now = this.clock.now();
    const rec: Omit<DeploymentRecord, 'seq'> = {
      id,
      kind: 'seed',
      spec: { name: id, payload: { type: 'deploy', params: {} }, stages: [], maintenanceWindows: [], autoRollback: false, rollbackPayload: { type: 'deploy', params: { rollback: true } } },
      status: 'in_progress',
      stage: 0,
      phase: 'dispatching',
      soakUntil: null,
      gateResetAt: 0,
      haltReason: null,
      detail: { recovered: [] },
      createdAt: now,
      startedAt: now,
      endedAt: null,
    };
    const seq = await this.store.insertDeployment(rec);
    const executions: Execution[] = affected.map((l) => ({
      deviceId: l.agent.id, stage: 0, state: 'in_progress', taskId: null, reason: null, baseline: this.fleet.reading(l.agent.id), observed: null,
      cpuDelta: null, memoryDelta: null, drainDelta: null, rollbackTaskId: null, queuedAt: now, startedAt: now, endedAt: null, observedAt: null,
    }));
    await this.store.saveExecutions(seq, executions);
    await this.instruct(affected, 'deployment_impact', () => deploymentImpact(this.rng), id);
    // What each device reported after the impact is the execution's outcome and its impact.
    const after = this.clock.now();
    for (const e of executions) {
      const r = this.fleet.reading(e.deviceId);
      e.state = 'succeeded';
      e.endedAt = after;
      e.observedAt = after;
      e.observed = r;
      if (r && e.baseline) {
        e.cpuDelta = Math.round((r.cpu - e.baseline.cpu) * 100) / 100;
        e.memoryDelta = Math.round((r.memory - e.baseline.memory) * 100) / 100;
        e.drainDelta = Math.round((r.drain - e.baseline.drain) * 100) / 100;
      }
    }
    await this.store.saveExecutions(seq, executions);
    // The deployment-impact history of every device in it feeds its health score.
    const hurt = new Set(affected.map((l) => l.agent.id));
    await Promise.all(online.map((l) => this.fleet.recordImpact(l.agent.id, hurt.has(l.agent.id))));
    this.events.emit('deployment.started', { deploymentId: id, affected: [...hurt] });
    return { id, status: 'active', startedAt: now, completedAt: null, affectedAgents: [...hurt], recoveredAgents: [] };
  }

  /** `/complete_deployment`: 40–80% of online agents recover by the seed's rules. Only for deployments started there. */
  async completeDeployment(id: string): Promise<SeedDeployment> {
    this.assertWritable();
    const rec = await this.store.getDeployment(id);
    if (!rec) throw new OrchestratorError('ORCH_DEPLOYMENT_NOT_FOUND', `deployment ${id} not found`);
    if (rec.kind !== 'seed') throw new OrchestratorError('ORCH_DEPLOYMENT_STATE', `deployment ${id} is a staged deployment; it completes when its last ring passes its gate`);
    if (rec.status !== 'in_progress') throw new OrchestratorError('ORCH_DEPLOYMENT_NOT_ACTIVE', `deployment ${id} is completed, not active`);
    const online = this.onlineWithDevice();
    const recovered = sample(this.rng, online, recoveredCount(this.rng, online.length));
    rec.status = 'completed';
    rec.endedAt = this.clock.now();
    rec.detail = { ...rec.detail, recovered: recovered.map((l) => l.agent.id) };
    await this.store.saveDeployment(rec);
    await this.instruct(recovered, 'deployment_recovery', () => deploymentRecovery(this.rng), id);
    this.events.emit('deployment.completed', { deploymentId: id, recovered: recovered.map((l) => l.agent.id) });
    return this.getDeployment(id);
  }

  /** Any deployment, in the seed's terms (`active` while not ended). */
  async getDeployment(id: string): Promise<SeedDeployment> {
    const { deployment: d, executions } = await this.deployments.get(id);
    const status = d.status === 'completed' || d.status === 'cancelled' || d.status === 'rolled_back' ? d.status : 'active';
    const recovered = Array.isArray(d.detail.recovered) ? (d.detail.recovered as string[]) : executions.filter((e) => e.state === 'rolled_back').map((e) => e.deviceId);
    return {
      id: d.id,
      status,
      startedAt: d.startedAt ?? d.createdAt,
      completedAt: d.endedAt,
      affectedAgents: executions.filter((e) => e.state !== 'queued' && e.state !== 'skipped' && e.state !== 'cancelled').map((e) => e.deviceId),
      recoveredAgents: recovered,
    };
  }

  /** `/simulate_activity`: a burst of use on every online agent, with metrics before and after. */
  async simulateActivity(): Promise<{ affected: string[]; before: Map<string, DeviceInfo>; after: Map<string, DeviceInfo> }> {
    this.assertWritable();
    const targets = this.onlineWithDevice();
    const before = new Map(targets.map((l) => [l.agent.id, { ...(l.agent.device as DeviceInfo) }]));
    await this.instruct(targets, 'simulated_activity', () => activityBurst(this.rng));
    const after = new Map(targets.map((l) => [l.agent.id, { ...(l.agent.device as DeviceInfo) }]));
    return { affected: targets.map((l) => l.agent.id), before, after };
  }

  private assertRunning(): void {
    if (!this.started) throw new OrchestratorError('ORCH_SHUTTING_DOWN', 'the orchestrator is not running');
  }

  /** Before a change that a write backs: running, and the store commits. */
  private assertWritable(): void {
    this.assertRunning();
    this.storage.assertWritable();
  }
}


/** The share of a long-poll's wait that may be cut off at random (see pollCommands). */
const POLL_JITTER = 0.2;

/** The deployment a task belongs to, from its parameters. */
function deploymentOf(task: Task): { id: string; deviceId: string; rollback: boolean } | null {
  const d = task.parameters._deployment as { id?: unknown; rollback?: unknown } | undefined;
  if (!d || typeof d.id !== 'string' || !task.target || !('agentId' in task.target)) return null;
  return { id: d.id, deviceId: task.target.agentId, rollback: d.rollback === true };
}

function metricsOf(d: DeviceInfo): MetricsSample {
  return { battery: d.battery_level, charging: d.battery_charging, cpu: d.cpu_usage, memory: d.memory_usage, disk: d.disk_usage };
}

function assetAttributes(asset: Asset | null): DeviceAttributes {
  if (asset === null) return {};
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const tags = Array.isArray(asset.tags) ? asset.tags.filter((t): t is string => typeof t === 'string') : undefined;
  return { site: str(asset.site), department: str(asset.department), manufacturer: str(asset.manufacturer), model: str(asset.model), osName: str(asset.osName), tags };
}
