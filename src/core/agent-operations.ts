import { OrchestratorError } from '../domain/errors.js';
import type { Rng } from '../domain/random.js';
import type { Agent, Asset, RingMove, TaskType } from '../domain/types.js';
import type { DeviceAttributes } from '../fleet/registry.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import { newAgentId } from '../util/ids.js';
import type { AgentLauncher } from './agent-launcher.js';
import type { AgentDirectory, AgentView, LiveAgent } from './agents.js';
import type { CoreState } from './core-state.js';
import type { EventBus } from '../domain/events.js';
import type { InProcessAgents } from './in-process-agents.js';

export interface AgentOperationsOptions {
  state: CoreState;
  agents: AgentDirectory;
  inProcess: InProcessAgents;
  launcher: AgentLauncher;
  store: Store;
  clock: Clock;
  rng: Rng;
  events: EventBus;
}

/** What operators (and the seed's endpoints) do with agents and assets, and how they see them. */
export class AgentOperations {
  constructor(private readonly o: AgentOperationsOptions) {}

  /** Creates an agent, stores it, then launches it. The returned id is durable. */
  async spawn(asset?: Asset): Promise<string> {
    const { state, agents, store, clock, rng } = this.o;
    state.assertWritable();
    const covered = new Set<TaskType>();
    for (const live of agents.values()) live.agent.capabilities.forEach((c) => covered.add(c));
    const profile = this.o.launcher.createProfile(covered, asset);
    let id = newAgentId(rng);
    while (agents.has(id) || (await store.getAgent(id)) !== null) id = newAgentId(rng);
    const agent: Agent = {
      id,
      kind: 'simulated',
      capabilities: profile.capabilities,
      connectivity: 'offline',
      registeredAt: null,
      lastHeartbeatAt: clock.now(),
      device: profile.device,
      ring: 'unassigned',
      assetId: asset?.id ?? null,
      createdAt: clock.now(),
    };
    await store.insertAgent(agent);
    await state.fleet.ensureDevice(id, assetAttributes(asset ?? null));
    const live = agents.track(agent, asset ?? null);
    this.o.inProcess.launch(live, profile);
    this.o.events.emit('agent.spawned', { agentId: id, assetId: agent.assetId });
    return id;
  }

  /** Stores an asset. A known asset id updates the asset and keeps its agent; a new one gets a new agent. */
  async addAsset(asset: Asset): Promise<{ agentId: string; created: boolean }> {
    const { state, agents, store } = this.o;
    state.assertWritable();
    const { created } = await store.upsertAsset(asset, this.o.clock.now());
    const existing = await store.findAgentByAsset(asset.id);
    if (existing) {
      const live = agents.get(existing.id);
      if (live) {
        live.worker.asset = asset;
        state.tasks.workerChanged();
      }
      await state.fleet.ensureDevice(existing.id, assetAttributes(asset));
      return { agentId: existing.id, created };
    }
    return { agentId: await this.spawn(asset), created };
  }

  /** Decommissions an agent: it is told to shut down, and its tasks go back to the queue. */
  async remove(agentId: string): Promise<void> {
    const { state, agents, store } = this.o;
    state.assertWritable();
    const live = this.live(agentId);
    await Promise.all([store.setConnectivity(agentId, 'decommissioned'), state.fleet.setConnectivity(agentId, 'decommissioned')]);
    live.agent.connectivity = 'decommissioned';
    live.worker.online = false;
    live.endpoint?.send('shutdown', { reason: 'removed by operator' }, { reliable: false });
    await state.tasks.removeWorker(agentId, `agent ${agentId} was removed`);
    live.endpoint?.close();
    this.o.launcher.stop(agentId);
    agents.forget(agentId);
    this.o.events.emit('agent.removed', { agentId });
  }

  /** An admin accepts a pending agent: from now on it takes tasks. */
  async approve(id: string): Promise<Agent> {
    const { state, agents } = this.o;
    state.assertWritable();
    const live = agents.get(id);
    if (!live || live.agent.kind !== 'network') throw new OrchestratorError('ORCH_AGENT_NOT_FOUND', `no network agent ${id}`);
    if (live.agent.approval === 'pending') {
      await this.o.store.setAgentApproval(id, 'approved');
      delete live.agent.approval;
      live.worker.concurrency = agents.concurrency;
      state.tasks.workerChanged();
      this.o.events.emit('agent.approved', { agentId: id });
    }
    return live.agent;
  }

  ids(): string[] {
    return this.o.agents.ids();
  }

  async view(agentId: string): Promise<AgentView> {
    const live = this.live(agentId);
    const asset = live.agent.assetId === null ? null : await this.o.store.getAsset(live.agent.assetId);
    return this.o.agents.view(live, asset);
  }

  async views(): Promise<AgentView[]> {
    const assets = new Map((await this.o.store.listAssets()).map((a) => [a.id, a]));
    return [...this.o.agents.values()].map((live) => this.o.agents.view(live, live.agent.assetId === null ? null : (assets.get(live.agent.assetId) ?? null)));
  }

  /** Every asset with its agent, if it has one. */
  async assets(): Promise<{ asset: Asset; agentId: string | null; agentStatus: string | null }[]> {
    const byAsset = new Map<string, LiveAgent>();
    for (const live of this.o.agents.values()) if (live.agent.assetId !== null) byAsset.set(live.agent.assetId, live);
    return (await this.o.store.listAssets()).map((asset) => {
      const live = byAsset.get(asset.id);
      return { asset, agentId: live?.agent.id ?? null, agentStatus: live ? this.o.agents.view(live, asset).status : null };
    });
  }

  /** Ring moves, all or one agent's, oldest first. */
  ringMoves(agentId?: string): Promise<RingMove[]> {
    return this.o.store.listRingMoves(agentId);
  }

  private live(agentId: string): LiveAgent {
    const live = this.o.agents.get(agentId);
    if (!live) throw OrchestratorError.of('ORCH_AGENT_NOT_FOUND', agentId);
    return live;
  }
}

/** What an asset says about its device, for the fleet. */
export function assetAttributes(asset: Asset | null): DeviceAttributes {
  if (asset === null) return {};
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const tags = Array.isArray(asset.tags) ? asset.tags.filter((t): t is string => typeof t === 'string') : undefined;
  return { site: str(asset.site), department: str(asset.department), manufacturer: str(asset.manufacturer), model: str(asset.model), osName: str(asset.osName), tags };
}
