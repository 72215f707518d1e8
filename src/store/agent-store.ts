import type { Approval } from '../domain/security.js';
import type { Agent, Asset, DeviceInfo } from '../domain/types.js';

/**
 * Assets and the agents that run on them: identity, credential hash, approval, connectivity, the last
 * device report. Every verb is atomic, and a write's promise resolves once it is durably committed, after every write
 * made before it (see Store).
 */
export interface AgentStore {
  upsertAsset(asset: Asset, now: number): Promise<{ created: boolean }>;
  getAsset(id: string): Promise<Asset | null>;
  listAssets(): Promise<Asset[]>;

  insertAgent(agent: Agent): Promise<void>;
  getAgent(id: string): Promise<Agent | null>;
  /** Every agent that is not decommissioned. */
  listAgents(): Promise<Agent[]>;
  findAgentByAsset(assetId: string): Promise<Agent | null>;
  recordRegistration(id: string, device: DeviceInfo, at: number): Promise<void>;
  recordHeartbeat(id: string, device: DeviceInfo, at: number): Promise<void>;
  /** Many agents' heartbeats in one commit (the write-behind flush). */
  recordHeartbeats(rows: readonly { id: string; device: DeviceInfo; at: number }[]): Promise<void>;
  setConnectivity(id: string, connectivity: Agent['connectivity']): Promise<void>;
  updateAgentDevice(id: string, device: DeviceInfo): Promise<void>;
  setAgentApproval(id: string, approval: Approval): Promise<void>;
}
