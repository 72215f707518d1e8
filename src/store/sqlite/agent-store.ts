import type { Approval } from '../../domain/security.js';
import type { Agent, Asset, DeviceInfo } from '../../domain/types.js';
import type { AgentStore } from '../agent-store.js';
import type { SqliteContext } from './context.js';
import { run } from './context.js';
import type { AgentRow } from './rows.js';
import { toAgent } from './rows.js';

/** The AgentStore verbs on SQLite: its statements, prepared once on the reading connection (writes send their SQL to the writer). */
export function sqliteAgentStore(ctx: SqliteContext): AgentStore {
  const db = ctx.db;
  const st = {
    getAsset: db.prepare<[string], { data: string }>('SELECT data FROM assets WHERE id = ?'),
    updateAsset: db.prepare('UPDATE assets SET data = ?, updated_at = ? WHERE id = ?'),
    listAssets: db.prepare<[], { data: string }>('SELECT data FROM assets ORDER BY created_at, id'),
    insertAgent: db.prepare(
      `INSERT INTO agents (id, kind, capabilities, connectivity, registered_at, last_heartbeat_at, device, ring, asset_id, created_at, credential_hash, approval)
       VALUES (@id, @kind, @capabilities, @connectivity, @registered_at, @last_heartbeat_at, @device, @ring, @asset_id, @created_at, @credential_hash, @approval)`,
    ),
    getAgent: db.prepare<[string], AgentRow>('SELECT * FROM agents WHERE id = ?'),
    listAgents: db.prepare<[], AgentRow>(
      "SELECT * FROM agents WHERE connectivity <> 'decommissioned' ORDER BY created_at, id",
    ),
    agentByAsset: db.prepare<[string], AgentRow>(
      "SELECT * FROM agents WHERE asset_id = ? AND connectivity <> 'decommissioned'",
    ),
    registration: db.prepare(
      "UPDATE agents SET device = ?, registered_at = COALESCE(registered_at, ?), last_heartbeat_at = ?, connectivity = 'online' WHERE id = ? AND connectivity <> 'decommissioned'",
    ),
    heartbeat: db.prepare(
      "UPDATE agents SET device = ?, last_heartbeat_at = ?, connectivity = 'online' WHERE id = ? AND connectivity <> 'decommissioned'",
    ),
    setConnectivity: db.prepare('UPDATE agents SET connectivity = ? WHERE id = ?'),
    setDevice: db.prepare('UPDATE agents SET device = ? WHERE id = ?'),
  };

  const self: AgentStore = {
    upsertAsset(asset: Asset, now: number): Promise<{ created: boolean }> {
      const data = JSON.stringify(asset);
      return ctx.write([
        { sql: st.updateAsset.source, params: [data, now, asset.id], want: 'changes' },
        { sql: 'INSERT OR IGNORE INTO assets (id, data, created_at, updated_at) VALUES (?, ?, ?, ?)', params: [asset.id, data, now, now] },
      ]).then(([updated]) => ({ created: updated === 0 }));
    },

    getAsset(id: string): Promise<Asset | null> {
      return run(() => {
        const row = st.getAsset.get(id);
        return row ? (JSON.parse(row.data) as Asset) : null;
      });
    },

    listAssets(): Promise<Asset[]> {
      return run(() => st.listAssets.all().map((r) => JSON.parse(r.data) as Asset));
    },

    insertAgent(agent: Agent): Promise<void> {
      return ctx.write([{ sql: st.insertAgent.source, params: {
          id: agent.id,
          kind: agent.kind,
          capabilities: JSON.stringify(agent.capabilities),
          connectivity: agent.connectivity,
          registered_at: agent.registeredAt,
          last_heartbeat_at: agent.lastHeartbeatAt,
          device: agent.device === null ? null : JSON.stringify(agent.device),
          ring: agent.ring,
          asset_id: agent.assetId,
          created_at: agent.createdAt,
          credential_hash: agent.credentialHash ?? null,
          approval: agent.approval ?? 'approved',
        } }]).then(() => undefined);
    },

    getAgent(id: string): Promise<Agent | null> {
      return run(() => {
        const row = st.getAgent.get(id);
        return row ? toAgent(row) : null;
      });
    },

    listAgents(): Promise<Agent[]> {
      return run(() => st.listAgents.all().map(toAgent));
    },

    findAgentByAsset(assetId: string): Promise<Agent | null> {
      return run(() => {
        const row = st.agentByAsset.get(assetId);
        return row ? toAgent(row) : null;
      });
    },

    recordRegistration(id: string, device: DeviceInfo, at: number): Promise<void> {
      return ctx.write([{ sql: st.registration.source, params: [JSON.stringify(device), at, at, id] }]).then(() => undefined);
    },

    recordHeartbeat(id: string, device: DeviceInfo, at: number): Promise<void> {
      return self.recordHeartbeats([{ id, device, at }]);
    },

    recordHeartbeats(rows: readonly { id: string; device: DeviceInfo; at: number }[]): Promise<void> {
      if (rows.length === 0) return Promise.resolve();
      const sql = st.heartbeat.source;
      return ctx.write(rows.map((r) => ({ sql, params: [JSON.stringify(r.device), r.at, r.id] }))).then(() => undefined);
    },

    setConnectivity(id: string, connectivity: Agent['connectivity']): Promise<void> {
      return ctx.write([{ sql: st.setConnectivity.source, params: [connectivity, id] }]).then(() => undefined);
    },

    updateAgentDevice(id: string, device: DeviceInfo): Promise<void> {
      return ctx.write([{ sql: st.setDevice.source, params: [JSON.stringify(device), id] }]).then(() => undefined);
    },

    setAgentApproval(id: string, approval: Approval): Promise<void> {
      return ctx.write([{ sql: 'UPDATE agents SET approval = ? WHERE id = ?', params: [approval, id] }]).then(() => undefined);
    },
  };
  return self;
}
