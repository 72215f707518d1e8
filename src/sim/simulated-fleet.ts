import type { Rng } from '../domain/random.js';
import type { Asset, TaskType } from '../domain/types.js';
import type { Wire } from '../protocol/reliable-endpoint.js';
import type { LinkFaults } from '../protocol/local-link.js';
import { localWire } from '../protocol/local-link.js';
import type { AgentLauncher, AgentProfile } from '../core/agent-launcher.js';
import type { Clock } from '../util/clock.js';
import { randomCapabilities, randomDevice } from './device-model.js';
import type { TaskHandler } from './task-handlers.js';
import { SimulatedAgent } from './simulated-agent.js';

export interface SimulatedFleetOptions {
  clock: Clock;
  rng: Rng;
  heartbeatIntervalMs: number;
  /** Heartbeat jitter of every agent, as a share of the interval either way. @default 0 */
  heartbeatJitter?: number;
  driftIntervalMs?: number;
  retryIntervalMs?: number;
  /** Replaces built-in handlers, for tests that need a handler to fail or hang. */
  handlers?: Partial<Record<TaskType, TaskHandler>>;
  /** Gives every agent these task types instead of the seed's random 1–3. */
  capabilities?: TaskType[];
  /** Loses envelopes on the in-process links, both ways (tests of retransmission). */
  faults?: LinkFaults;
}

/** Launches simulated agents in this process; the orchestrator sees only their envelopes. */
export class SimulatedFleet implements AgentLauncher {
  private readonly opts: SimulatedFleetOptions;
  private readonly agents = new Map<string, SimulatedAgent>();

  constructor(opts: SimulatedFleetOptions) {
    this.opts = opts;
  }

  createProfile(covered: ReadonlySet<TaskType>, asset?: Asset): AgentProfile {
    return {
      capabilities: this.opts.capabilities?.slice() ?? randomCapabilities(this.opts.rng, covered),
      device: randomDevice(this.opts.rng, asset),
    };
  }

  launch(agentId: string, masterId: string, profile: AgentProfile, connect: (toAgent: Wire) => Wire): void {
    this.agents.get(agentId)?.stop();
    const agent = new SimulatedAgent({
      id: agentId,
      masterId,
      capabilities: profile.capabilities,
      device: profile.device,
      clock: this.opts.clock,
      rng: this.opts.rng,
      heartbeatIntervalMs: this.opts.heartbeatIntervalMs,
      ...(this.opts.heartbeatJitter !== undefined ? { heartbeatJitter: this.opts.heartbeatJitter } : {}),
      ...(this.opts.driftIntervalMs !== undefined ? { driftIntervalMs: this.opts.driftIntervalMs } : {}),
      ...(this.opts.retryIntervalMs !== undefined ? { retryIntervalMs: this.opts.retryIntervalMs } : {}),
      ...(this.opts.handlers ? { handlers: this.opts.handlers } : {}),
    });
    this.agents.set(agentId, agent);
    // Both directions are asynchronous and copy each envelope, as a network would.
    agent.start((toAgent) => localWire(connect(localWire(toAgent, this.opts.faults)), this.opts.faults));
  }

  stop(agentId: string): void {
    this.agents.get(agentId)?.stop();
    this.agents.delete(agentId);
  }

  stopAll(): void {
    for (const a of this.agents.values()) a.stop();
    this.agents.clear();
  }

  /** The simulated device behind an agent id, for tests and the simulator. */
  get(agentId: string): SimulatedAgent | undefined {
    return this.agents.get(agentId);
  }
}
