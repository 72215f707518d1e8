import type { Approval } from '../../domain/security.js';
import type { Agent, Asset, DeviceInfo } from '../../domain/types.js';
import type { AgentStore } from '../agent-store.js';
import type { SqlContext } from './context.js';
import type { AgentRow } from './rows.js';
import { toAgent } from './rows.js';

/** The statements of the agent writes a batch may hold many of (see postgres/bulk.ts). */
export const AGENT_SQL = {
  heartbeat: "UPDATE agents SET device = ?, last_heartbeat_at = ?, connectivity = 'online' WHERE id = ? AND connectivity <> 'decommissioned'",
} as const;

/** The AgentStore verbs, for any SQL adapter. */
export function sqlAgentStore(ctx: SqlContext): AgentStore {
  const self: AgentStore = {
    upsertAsset(asset: Asset, now: number): Promise<{ created: boolean }> {
      const data = JSON.stringify(asset);
      return ctx.write([
        { sql: 'UPDATE assets SET data = ?, updated_at = ? WHERE id = ?', params: [data, now, asset.id], want: 'changes' },
        { sql: 'INSERT INTO assets (id, data, created_at, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING', params: [asset.id, data, now, now] },
      ]).then(([updated]) => ({ created: updated === 0 }));
    },

    async getAsset(id: string): Promise<Asset | null> {
      const row = await ctx.one<{ data: string }>('SELECT data FROM assets WHERE id = ?', [id]);
      return row ? (JSON.parse(row.data) as Asset) : null;
    },

    async listAssets(): Promise<Asset[]> {
      return (await ctx.all<{ data: string }>('SELECT data FROM assets ORDER BY created_at, id')).map((r) => JSON.parse(r.data) as Asset);
    },

    insertAgent(agent: Agent): Promise<void> {
      return ctx.write([{
        sql: `INSERT INTO agents (id, kind, capabilities, connectivity, registered_at, last_heartbeat_at, device, ring, asset_id, created_at, credential_hash, approval)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        params: [
          agent.id, agent.kind, JSON.stringify(agent.capabilities), agent.connectivity, agent.registeredAt, agent.lastHeartbeatAt,
          agent.device === null ? null : JSON.stringify(agent.device), agent.ring, agent.assetId, agent.createdAt,
          agent.credentialHash ?? null, agent.approval ?? 'approved',
        ],
      }]).then(() => undefined);
    },

    async getAgent(id: string): Promise<Agent | null> {
      const row = await ctx.one<AgentRow>('SELECT * FROM agents WHERE id = ?', [id]);
      return row ? toAgent(row) : null;
    },

    async listAgents(): Promise<Agent[]> {
      return (await ctx.all<AgentRow>("SELECT * FROM agents WHERE connectivity <> 'decommissioned' ORDER BY created_at, id")).map(toAgent);
    },

    async findAgentByAsset(assetId: string): Promise<Agent | null> {
      const row = await ctx.one<AgentRow>("SELECT * FROM agents WHERE asset_id = ? AND connectivity <> 'decommissioned'", [assetId]);
      return row ? toAgent(row) : null;
    },

    recordRegistration(id: string, device: DeviceInfo, at: number): Promise<void> {
      return ctx.write([{
        sql: "UPDATE agents SET device = ?, registered_at = COALESCE(registered_at, ?), last_heartbeat_at = ?, connectivity = 'online' WHERE id = ? AND connectivity <> 'decommissioned'",
        params: [JSON.stringify(device), at, at, id],
      }]).then(() => undefined);
    },

    recordHeartbeat(id: string, device: DeviceInfo, at: number): Promise<void> {
      return self.recordHeartbeats([{ id, device, at }]);
    },

    recordHeartbeats(rows: readonly { id: string; device: DeviceInfo; at: number }[]): Promise<void> {
      if (rows.length === 0) return Promise.resolve();
      return ctx.write(rows.map((r) => ({ sql: AGENT_SQL.heartbeat, params: [JSON.stringify(r.device), r.at, r.id] }))).then(() => undefined);
    },

    setConnectivity(id: string, connectivity: Agent['connectivity']): Promise<void> {
      return ctx.write([{ sql: 'UPDATE agents SET connectivity = ? WHERE id = ?', params: [connectivity, id] }]).then(() => undefined);
    },

    updateAgentDevice(id: string, device: DeviceInfo): Promise<void> {
      return ctx.write([{ sql: 'UPDATE agents SET device = ? WHERE id = ?', params: [JSON.stringify(device), id] }]).then(() => undefined);
    },

    setAgentApproval(id: string, approval: Approval): Promise<void> {
      return ctx.write([{ sql: 'UPDATE agents SET approval = ? WHERE id = ?', params: [approval, id] }]).then(() => undefined);
    },
  };
  return self;
}
