import type { Asset, DeviceInfo, TaskType } from '../domain/types.js';
import type { Wire } from '../protocol/reliable-endpoint.js';

/** What the orchestrator stores to bring a spawned agent back after a restart. */
export interface AgentProfile {
  capabilities: TaskType[];
  device: DeviceInfo;
}

/**
 * Starts agents the orchestrator spawns itself (the seed's `spawn_agent`). The
 * orchestrator hands each one a connection and talks to it only in envelopes.
 */
export interface AgentLauncher {
  /** A new device profile. `covered` holds the task types other agents already offer. */
  createProfile(covered: ReadonlySet<TaskType>, asset?: Asset): AgentProfile;
  /** Starts the agent; `connect` takes the wire towards the agent and returns the wire towards the master. */
  launch(agentId: string, masterId: string, profile: AgentProfile, connect: (toAgent: Wire) => Wire): void;
  stop(agentId: string): void;
  stopAll(): void;
}
