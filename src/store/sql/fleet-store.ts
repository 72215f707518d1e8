import type { Connectivity, RingMove } from '../../domain/types.js';
import type { DeviceHistoryPoint, DeviceRecord, DeviceSample, FleetStore, RingMoveWrite } from '../fleet-store.js';
import type { SqlContext } from './context.js';
import type { DeviceRow, HistoryRow, MoveRow } from './rows.js';
import { toDevice, toHistoryPoint, toMove } from './rows.js';
import type { Step } from './write-op.js';

/** The statements of the fleet writes a batch may hold many of (see postgres/bulk.ts). */
export const FLEET_SQL = {
  setDeviceRing: 'UPDATE devices SET ring = ?, moved_at = ? WHERE id = ?',
  insertMove: 'INSERT INTO ring_moves (agent_id, from_ring, to_ring, reason, at) VALUES (?, ?, ?, ?, ?)',
  upsertDevice: `INSERT INTO devices (id, site, department, manufacturer, model, os_name, tags, battery, charging, cpu, memory, disk,
     drain, cpu_trend, impact, sampled_at, ring, moved_at, pin_ring, connectivity, created_at)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
   ON CONFLICT(id) DO UPDATE SET site = excluded.site, department = excluded.department, manufacturer = excluded.manufacturer,
     model = excluded.model, os_name = excluded.os_name, tags = excluded.tags,
     battery = CASE WHEN excluded.cpu IS NULL THEN devices.battery ELSE excluded.battery END,
     charging = CASE WHEN excluded.cpu IS NULL THEN devices.charging ELSE excluded.charging END,
     cpu = COALESCE(excluded.cpu, devices.cpu), memory = COALESCE(excluded.memory, devices.memory), disk = COALESCE(excluded.disk, devices.disk),
     sampled_at = COALESCE(excluded.sampled_at, devices.sampled_at)`,
  saveSample: 'UPDATE devices SET battery = ?, charging = ?, cpu = ?, memory = ?, disk = ?, drain = ?, cpu_trend = ?, impact = ?, sampled_at = ? WHERE id = ?',
  addHistory: `INSERT INTO device_history (device_id, at, battery, charging, cpu, memory, disk, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
   ON CONFLICT (device_id, at) DO UPDATE SET battery = excluded.battery, charging = excluded.charging, cpu = excluded.cpu,
     memory = excluded.memory, disk = excluded.disk, score = excluded.score`,
} as const;

/** The FleetStore verbs, for any SQL adapter. */
export function sqlFleetStore(ctx: SqlContext): FleetStore {
  return {
    applyRingMoves(moves: readonly RingMoveWrite[]): Promise<void> {
      if (moves.length === 0) return Promise.resolve();
      return ctx.write(moves.map((m) => ({ sql: FLEET_SQL.insertMove, params: [m.agentId, m.from, m.to, m.reason, m.at] }))).then(() => undefined);
    },

    snapshotRings(rows: readonly { id: string; ring: string | null; movedAt: number }[]): Promise<void> {
      const steps: Step[] = rows.map((r) => ({ sql: FLEET_SQL.setDeviceRing, params: [r.ring, r.movedAt, r.id] }));
      steps.push({
        sql: `INSERT INTO meta (key, value) VALUES ('ring_snapshot_move_id', CAST((SELECT COALESCE(MAX(id), 0) FROM ring_moves) AS TEXT))
              ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
      });
      return ctx.write(steps).then(() => undefined);
    },

    async ringMovesAfterSnapshot(afterId: number, limit: number): Promise<RingMove[]> {
      return (await ctx.all<MoveRow>('SELECT * FROM ring_moves WHERE id > ? ORDER BY id LIMIT ?', [afterId, limit])).map(toMove);
    },

    async ringSnapshotWatermark(): Promise<number> {
      return Number((await ctx.getMeta('ring_snapshot_move_id')) ?? 0);
    },

    async listRingMovesSince(since: number, afterId: number, limit: number): Promise<RingMove[]> {
      const rows = await ctx.all<MoveRow>('SELECT * FROM ring_moves WHERE at >= ? AND (at > ? OR id > ?) ORDER BY at, id LIMIT ?', [since, since, afterId, limit]);
      return rows.map(toMove);
    },

    upsertDevices(devices: readonly DeviceRecord[]): Promise<void> {
      if (devices.length === 0) return Promise.resolve();
      return ctx.write(
        devices.map((d) => ({
          sql: FLEET_SQL.upsertDevice,
          params: [
            d.id, d.site, d.department, d.manufacturer, d.model, d.osName, d.tags === null ? null : JSON.stringify(d.tags),
            d.metrics?.battery ?? null, d.metrics === null || d.metrics.charging === null ? null : d.metrics.charging ? 1 : 0, d.metrics?.cpu ?? null,
            d.metrics?.memory ?? null, d.metrics?.disk ?? null, d.drain, d.cpuTrend, d.impact, d.sampledAt,
            d.ring, d.movedAt, d.pinRing, d.connectivity, d.createdAt,
          ],
        })),
      ).then(() => undefined);
    },

    saveDeviceSamples(samples: readonly DeviceSample[]): Promise<void> {
      if (samples.length === 0) return Promise.resolve();
      const steps: Step[] = [];
      for (const m of samples) {
        const charging = m.charging === null ? null : m.charging ? 1 : 0;
        steps.push({ sql: FLEET_SQL.saveSample, params: [m.battery, charging, m.cpu, m.memory, m.disk, m.drain, m.cpuTrend, m.impact, m.sampledAt, m.id] });
        if (m.history) steps.push({ sql: FLEET_SQL.addHistory, params: [m.id, m.sampledAt, m.battery, charging, m.cpu, m.memory, m.disk, m.history.score] });
      }
      return ctx.write(steps).then(() => undefined);
    },

    async deviceHistory(id: string, since: number, limit: number): Promise<DeviceHistoryPoint[]> {
      const rows = await ctx.all<HistoryRow>(
        'SELECT * FROM (SELECT * FROM device_history WHERE device_id = ? AND at >= ? ORDER BY at DESC LIMIT ?) AS newest ORDER BY at',
        [id, since, limit],
      );
      return rows.map(toHistoryPoint);
    },

    pruneDeviceHistory(before: number): Promise<number> {
      return ctx.write([{ sql: 'DELETE FROM device_history WHERE at < ?', params: [before], want: 'changes' }]).then(([n]) => Number(n));
    },

    setDevicePin(id: string, ring: string | null): Promise<void> {
      return ctx.write([{ sql: 'UPDATE devices SET pin_ring = ? WHERE id = ?', params: [ring, id] }]).then(() => undefined);
    },

    setDeviceConnectivity(id: string, connectivity: Connectivity): Promise<void> {
      return ctx.write([{ sql: 'UPDATE devices SET connectivity = ? WHERE id = ?', params: [connectivity, id] }]).then(() => undefined);
    },

    async loadDevices(afterId: string, limit: number): Promise<DeviceRecord[]> {
      return (await ctx.all<DeviceRow>('SELECT * FROM devices WHERE id > ? ORDER BY id LIMIT ?', [afterId, limit])).map(toDevice);
    },

    async listRingMoves(agentId?: string): Promise<RingMove[]> {
      const rows = agentId === undefined
        ? await ctx.all<MoveRow>('SELECT * FROM ring_moves ORDER BY id')
        : await ctx.all<MoveRow>('SELECT * FROM ring_moves WHERE agent_id = ? ORDER BY id', [agentId]);
      return rows.map(toMove);
    },
  };
}
