import type { HealthScoreConfig } from '../domain/health-score.js';
import type { MetricsHistorySettings } from './settings.js';
import { DEFAULT_HEALTH_SCORE_CONFIG } from '../domain/health-score.js';
import type { Rng } from '../domain/random.js';
import type { BackoffPolicy } from '../domain/types.js';
import { Fleet } from '../fleet/fleet.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import type { Logger } from '../util/logger.js';
import type { AgentLauncher } from './agent-launcher.js';
import type { AgentDirectory } from './agents.js';
import type { CoreState, StateParts } from './core-state.js';
import type { EventBus } from '../domain/events.js';
import { RolloutController } from './rollouts.js';
import type { ExecutionDriver } from './rollout-state.js';
import type { RunningTask } from './task-types.js';
import { TaskEngine } from './task-engine.js';

/** Retries wait 1 s, 2 s, 4 s … up to a minute, each spread over its upper half. */
export const DEFAULT_BACKOFF: BackoffPolicy = { strategy: 'exponential', initialMs: 1000, maxMs: 60_000, jitter: true };

export interface StateSettings {
  agentTimeoutMs: number;
  taskTimeoutMs: number;
  taskRetryLimit: number;
  /** Waiting this long counts as one priority level. @default 60000 */
  taskAgingMs?: number;
  /** Retry delays of tasks that do not set their own. */
  defaultBackoff?: BackoffPolicy;
  /** Weights and thresholds of the device health score. */
  healthScore?: HealthScoreConfig;
  metricsHistory?: MetricsHistorySettings;
}

export interface StateLoaderOptions {
  state: CoreState;
  agents: AgentDirectory;
  driver: ExecutionDriver;
  launcher: AgentLauncher;
  store: Store;
  clock: Clock;
  rng: Rng;
  events: EventBus;
  log: Logger;
  settings: StateSettings;
}

/**
 * Builds the in-memory state (the task queue, the fleet, the deployments) and loads it from the store: at
 * start, and again after a failed write, when it replaces the state whose changes may not have committed.
 */
export class StateLoader {
  constructor(private readonly o: StateLoaderOptions) {}

  /** New, empty parts. */
  build(): StateParts {
    const { state, store, clock, events, log, settings } = this.o;
    const canWrite = (): boolean => state.writable;
    const tasks = new TaskEngine({
      store, clock, rng: this.o.rng, events, log, canWrite,
      settings: {
        taskTimeoutMs: settings.taskTimeoutMs,
        taskRetryLimit: settings.taskRetryLimit,
        leaseMs: settings.agentTimeoutMs,
        agingMs: settings.taskAgingMs ?? 60_000,
        defaultBackoff: settings.defaultBackoff ?? DEFAULT_BACKOFF,
        ringExists: (name) => state.fleet.ringNames().includes(name),
      },
    });
    const fleet = new Fleet({ store, clock, events, log, health: settings.healthScore ?? DEFAULT_HEALTH_SCORE_CONFIG, canWrite, ...(settings.metricsHistory ? { history: settings.metricsHistory } : {}) });
    const deployments = new RolloutController({ store, clock, fleet, driver: this.o.driver, events, log });
    return { tasks, fleet, deployments };
  }

  /**
   * Loads the installed state at start: the fleet, the agents (those heard from within their timeout online,
   * the others offline until they speak; their failure detectors timing them from now), the queue (attempts of network agents go on: they are processes of their
   * own; others' are over) and the deployments.
   */
  async load(): Promise<void> {
    const { state, agents, store, clock } = this.o;
    await state.fleet.load();
    const counts = await store.countAttemptsByAgent();
    const assets = new Map((await store.listAssets()).map((a) => [a.id, a]));
    const now = clock.now();
    const mono = clock.monotonic();
    for (const agent of await store.listAgents()) {
      const c = counts.get(agent.id);
      // Heard from within its timeout (a replica taking over from a leader, a quick restart): online still, its
      // silence timed from now, so that a fleet that goes on is not marked offline by the change of process.
      // Otherwise silent until it speaks again: offline, with the failure detector's clock starting now.
      const heard = agent.connectivity === 'online' && agent.lastHeartbeatAt !== null && now - agent.lastHeartbeatAt < this.o.settings.agentTimeoutMs;
      if (!heard) {
        agent.connectivity = 'offline';
        agent.lastHeartbeatAt = now;
      }
      agent.ring = state.fleet.ringOf(agent.id);
      const live = agents.track(agent, agent.assetId === null ? null : (assets.get(agent.assetId) ?? null));
      if (heard) live.detector.heartbeat(mono);
      live.succeeded = c?.succeeded ?? 0;
      live.failed = c?.failed ?? 0;
    }
    await state.tasks.load((agentId) => agents.get(agentId)?.agent.kind === 'network');
    await state.deployments.load((taskId) => state.tasks.isLive(taskId));
  }

  /**
   * Rebuilds the state from the store after a failed write, as a start does but without stopping: agents stay
   * connected (their channels and failure detectors are kept), and the task queue, the fleet and the
   * deployments are loaded anew and replace the old ones, so that no change whose commit failed is left in
   * memory. Reads only; resolves with the writes a start would make, to run once the store commits again.
   */
  async rebuild(): Promise<() => Promise<void>> {
    const { state, agents, store, clock } = this.o;
    const repairs: (() => Promise<void>)[] = [];
    const parts = this.build();
    const { fleet, tasks, deployments } = parts;
    await fleet.load(repairs);
    const stored = await store.listAgents();
    const counts = await store.countAttemptsByAgent();
    const assets = new Map((await store.listAssets()).map((a) => [a.id, a]));
    const mono = clock.monotonic();
    const known = new Set(stored.map((a) => a.id));
    // What each agent was handed, and when: kept for the attempts the store still has running on it.
    const handed = new Map<string, RunningTask>();
    for (const live of agents.values()) for (const [taskId, run] of live.worker.running) handed.set(`${live.agent.id}|${taskId}|${run.attempt}`, run);
    for (const live of [...agents.values()]) {
      // Its enrollment or spawn never committed: it is not one of ours.
      if (known.has(live.agent.id)) continue;
      live.endpoint?.close();
      this.o.launcher.stop(live.agent.id);
      agents.forget(live.agent.id);
    }
    for (const agent of stored) {
      agent.ring = fleet.ringOf(agent.id);
      const asset = agent.assetId === null ? null : (assets.get(agent.assetId) ?? null);
      let live = agents.get(agent.id);
      if (live) {
        if (live.credentialHash !== (agent.credentialHash ?? null)) delete live.verifiedCredential;
        live.agent = agent;
        live.credentialHash = agent.credentialHash ?? null;
        live.worker = agents.workerOf(live, asset);
      } else {
        live = agents.create(agent, asset);
        agents.hold(live);
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
    for (const live of agents.values()) {
      for (const [taskId, run] of live.worker.running) {
        const before = handed.get(`${live.agent.id}|${taskId}|${run.attempt}`);
        if (before) Object.assign(run, { ref: before.ref, assignedAt: before.assignedAt, timeoutAt: before.timeoutAt });
      }
    }
    await deployments.load((taskId) => tasks.isLive(taskId), repairs);
    const old = state.replace(parts);
    old?.tasks.stop();
    old?.fleet.dispose();
    this.o.log.warn({ agents: stored.length, devices: fleet.size, repairs: repairs.length }, 'state rebuilt from the store after a failed write');
    return async () => {
      for (const repair of repairs) await repair();
    };
  }
}
