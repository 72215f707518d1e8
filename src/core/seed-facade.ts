import type { DeploymentRecord, Execution } from '../domain/deployment.js';
import { OrchestratorError } from '../domain/errors.js';
import { activityBurst, affectedCount, deploymentImpact, deploymentRecovery, recoveredCount } from '../domain/impact.js';
import type { Rng } from '../domain/random.js';
import { sample } from '../domain/random.js';
import type { DeviceInfo, TaskStatus } from '../domain/types.js';
import type { EndpointStats } from '../protocol/reliable-endpoint.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import type { AgentDirectory, AgentView, LiveAgent } from './agents.js';
import type { AgentOperations } from './agent-operations.js';
import type { CoreState } from './core-state.js';
import type { EventBus } from '../domain/events.js';
import type { InProcessAgents } from './in-process-agents.js';

/** A deployment as the seed's endpoints show it. */
export interface SeedDeployment {
  id: string;
  status: 'active' | 'completed' | 'cancelled' | 'rolled_back';
  startedAt: number;
  completedAt: number | null;
  affectedAgents: string[];
  recoveredAgents: string[];
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

export interface SeedFacadeOptions {
  state: CoreState;
  agents: AgentDirectory;
  operations: AgentOperations;
  inProcess: InProcessAgents;
  store: Store;
  clock: Clock;
  rng: Rng;
  events: EventBus;
}

/**
 * The seed prototype's own operations, kept so that its clients still work: the cluster status, its
 * deployments (`/start_deployment`, `/complete_deployment`: a deployment of kind `seed` in the same model
 * as every other) and simulated activity. Its deployments and activity act on simulated agents only (a real
 * machine's metrics are its own).
 */
export class SeedFacade {
  constructor(private readonly o: SeedFacadeOptions) {}

  async cluster(): Promise<ClusterSnapshot> {
    const { state, agents } = this.o;
    const queueStats: Record<string, EndpointStats> = {};
    for (const live of agents.values()) {
      queueStats[live.agent.id] = live.endpoint ? { ...live.endpoint.stats } : { sent: 0, received: 0, dropped: 0, retransmitted: 0, duplicates: 0 };
    }
    return {
      masterId: state.masterId,
      running: state.isRunning,
      agents: await this.o.operations.views(),
      taskCounts: state.tasks.countsByStatus(),
      ringCounts: state.fleet.ringCounts(),
      healthyDevices: state.fleet.healthyCount(),
      totalDevices: state.fleet.size,
      queueStats,
    };
  }

  /**
   * `/start_deployment`. 30–50% of online agents are affected: each gets an execution with its health before,
   * the seed's impact as a `modify_metrics` instruction, and its health after once the agent reports it
   * (stored as the execution's impact).
   */
  async startDeployment(id: string): Promise<SeedDeployment> {
    const { state, store, clock, rng } = this.o;
    state.assertWritable();
    if (state.deployments.isActive(id) || (await store.getDeployment(id))) throw OrchestratorError.of('ORCH_DEPLOYMENT_EXISTS', id);
    const online = this.onlineSimulated();
    const affected = sample(rng, online, affectedCount(rng, online.length));
    const now = clock.now();
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
    const seq = await store.insertDeployment(rec);
    const executions: Execution[] = affected.map((l) => ({
      deviceId: l.agent.id, stage: 0, state: 'in_progress', taskId: null, reason: null, baseline: state.fleet.metrics(l.agent.id), observed: null,
      cpuDelta: null, memoryDelta: null, drainDelta: null, rollbackTaskId: null, queuedAt: now, startedAt: now, endedAt: null, observedAt: null,
    }));
    await store.saveExecutions(seq, executions);
    await this.o.inProcess.instruct(affected, 'deployment_impact', () => deploymentImpact(rng), id);
    // What each device reported after the impact is the execution's outcome and its impact.
    const after = clock.now();
    for (const e of executions) {
      const r = state.fleet.metrics(e.deviceId);
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
    await store.saveExecutions(seq, executions);
    // The deployment-impact history of every device in it feeds its health score.
    const hurt = new Set(affected.map((l) => l.agent.id));
    await Promise.all(online.map((l) => state.fleet.recordImpact(l.agent.id, hurt.has(l.agent.id))));
    this.o.events.emit('deployment.started', { deploymentId: id, affected: [...hurt] });
    return { id, status: 'active', startedAt: now, completedAt: null, affectedAgents: [...hurt], recoveredAgents: [] };
  }

  /** `/complete_deployment`: 40–80% of online agents recover by the seed's rules. Only for deployments started there. */
  async completeDeployment(id: string): Promise<SeedDeployment> {
    const { state, store, clock, rng } = this.o;
    state.assertWritable();
    const rec = await store.getDeployment(id);
    if (!rec) throw OrchestratorError.of('ORCH_DEPLOYMENT_NOT_FOUND', id);
    if (rec.kind !== 'seed') throw new OrchestratorError('ORCH_DEPLOYMENT_STATE', `deployment ${id} is a staged deployment; it completes when its last ring passes its gate`);
    if (rec.status !== 'in_progress') throw new OrchestratorError('ORCH_DEPLOYMENT_NOT_ACTIVE', `deployment ${id} is completed, not active`);
    const online = this.onlineSimulated();
    const recovered = sample(rng, online, recoveredCount(rng, online.length));
    rec.status = 'completed';
    rec.endedAt = clock.now();
    rec.detail = { ...rec.detail, recovered: recovered.map((l) => l.agent.id) };
    await store.saveDeployment(rec);
    await this.o.inProcess.instruct(recovered, 'deployment_recovery', () => deploymentRecovery(rng), id);
    this.o.events.emit('deployment.completed', { deploymentId: id, recovered: recovered.map((l) => l.agent.id) });
    return this.getDeployment(id);
  }

  /** Any deployment, in the seed's terms (`active` while not ended). */
  async getDeployment(id: string): Promise<SeedDeployment> {
    const { deployment: d, executions } = await this.o.state.deployments.get(id);
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
    this.o.state.assertWritable();
    const targets = this.onlineSimulated();
    const before = new Map(targets.map((l) => [l.agent.id, { ...(l.agent.device as DeviceInfo) }]));
    await this.o.inProcess.instruct(targets, 'simulated_activity', () => activityBurst(this.o.rng));
    const after = new Map(targets.map((l) => [l.agent.id, { ...(l.agent.device as DeviceInfo) }]));
    return { affected: targets.map((l) => l.agent.id), before, after };
  }

  /** Simulated agents online with a device: what the seed's deployments and activity act on. */
  private onlineSimulated(): LiveAgent[] {
    return [...this.o.agents.values()].filter((l) => l.agent.kind === 'simulated' && l.agent.connectivity === 'online' && l.agent.device !== null);
  }
}
