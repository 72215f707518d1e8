import { detectorSettings, PhiAccrualDetector } from '../domain/failure-detector.js';
import { isHealthy } from '../domain/health.js';
import type { Agent, Asset } from '../domain/types.js';
import type { HeldCredential } from '../security/agent-credentials.js';
import type { CoreState } from './core-state.js';
import type { EventBus } from '../domain/events.js';
import type { AgentChannel } from './network-channel.js';
import { NetworkChannel } from './network-channel.js';
import type { Worker } from './task-types.js';

/** An agent as the orchestrator holds it in memory: its stored record, its connection, and its worker in the task engine. */
export interface LiveAgent extends HeldCredential {
  agent: Agent;
  /** Learns the agent's heartbeat rhythm and says when its silence means it is gone. */
  detector: PhiAccrualDetector;
  endpoint: AgentChannel | null;
  worker: Worker;
  succeeded: number;
  failed: number;
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

export interface AgentDirectorySettings {
  heartbeatIntervalMs: number;
  agentTimeoutMs: number;
  /** Tasks one agent runs at once. @default 1 */
  agentConcurrency?: number;
}

/**
 * Every agent the orchestrator knows, in memory: its record, its failure detector, its channel, and its
 * worker in the task engine (how tasks reach it). Which agents exist is the store's; this is the live side.
 */
export class AgentDirectory {
  private readonly byId = new Map<string, LiveAgent>();

  constructor(
    private readonly settings: AgentDirectorySettings,
    private readonly state: CoreState,
  ) {}

  get(id: string): LiveAgent | undefined {
    return this.byId.get(id);
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  values(): IterableIterator<LiveAgent> {
    return this.byId.values();
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }

  /** Tasks an approved agent runs at once. */
  get concurrency(): number {
    return this.settings.agentConcurrency ?? 1;
  }

  /** Holds a new agent and makes it a worker of the task engine. */
  track(agent: Agent, asset: Asset | null): LiveAgent {
    const live = this.create(agent, asset);
    this.byId.set(agent.id, live);
    this.state.tasks.addWorker(live.worker);
    return live;
  }

  /** Holds an agent whose worker the caller adds to a task engine (a rebuild makes a new one). */
  hold(live: LiveAgent): void {
    this.byId.set(live.agent.id, live);
  }

  forget(id: string): void {
    this.byId.delete(id);
  }

  /** An agent as held in memory, with its worker (for the caller to add to a task engine). */
  create(agent: Agent, asset: Asset | null): LiveAgent {
    const live = {
      agent,
      detector: new PhiAccrualDetector(detectorSettings(this.settings.heartbeatIntervalMs, this.settings.agentTimeoutMs)),
      credentialHash: agent.credentialHash ?? null,
      // A network agent's commands queue from the start: an assignment made before its first poll waits for it.
      endpoint: agent.kind === 'network' ? new NetworkChannel(this.state.commandIds) : null,
      succeeded: 0,
      failed: 0,
    } as LiveAgent;
    live.worker = this.workerOf(live, asset);
    return live;
  }

  /** The agent as a worker of the task engine: what it may run, and how tasks reach it. */
  workerOf(live: LiveAgent, asset: Asset | null): Worker {
    const agent = live.agent;
    return {
      id: agent.id,
      capabilities: new Set(agent.capabilities),
      ring: agent.ring,
      asset,
      // A pending agent (waiting for an admin's approval) takes no task.
      concurrency: agent.approval === 'pending' ? 0 : this.concurrency,
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

  /** An agent as the API shows it. */
  view(live: LiveAgent, asset: Asset | null): AgentView {
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

  /**
   * Keeps agents in step with what the fleet and the task engine report: a device that is an agent moves ring
   * (its worker serves tasks for its new ring, and the agent is told), and attempts end (its counts).
   */
  follow(events: EventBus): void {
    events.on('ring.moved', ({ move }) => {
      const live = this.byId.get(move.agentId);
      if (!live) return;
      live.agent.ring = move.to;
      live.worker.ring = move.to;
      this.state.tasks.workerChanged();
      if (move.to !== 'unassigned') live.endpoint?.send('ring_assignment', { ring: move.to, reason: move.reason });
    });
    events.on('task.attempt_ended', ({ agentId, outcome }) => {
      const live = this.byId.get(agentId);
      if (!live) return;
      if (outcome === 'succeeded') live.succeeded++;
      else live.failed++;
    });
  }

  /** Answers every waiting long-poll now (the HTTP server is closing and must not wait for them). */
  releasePolls(): void {
    for (const live of this.byId.values()) if (live.endpoint instanceof NetworkChannel) live.endpoint.release();
  }

  /** Closes every agent's channel (the orchestrator stops). */
  closeChannels(): void {
    for (const live of this.byId.values()) live.endpoint?.close();
  }
}
