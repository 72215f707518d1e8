import type { Connectivity, RingMove } from '../../domain/types.js';
import type { DeviceHistoryPoint, DeviceRecord, DeviceSample, FleetStore, RingMoveWrite } from '../fleet-store.js';
import type { SqliteContext } from './context.js';
import { run } from './context.js';
import type { DeviceRow, HistoryRow, MoveRow } from './rows.js';
import { toDevice, toHistoryPoint, toMove } from './rows.js';
import type { Step } from './writer.js';

/** The FleetStore verbs on SQLite: its statements, prepared once on the reading connection (writes send their SQL to the writer). */
export function sqliteFleetStore(ctx: SqliteContext): FleetStore {
  const db = ctx.db;
  const st = {
    setDeviceRing: db.prepare('UPDATE devices SET ring = ?, moved_at = ? WHERE id = ?'),
    setWatermark: db.prepare("INSERT INTO meta (key, value) VALUES ('ring_snapshot_move_id', (SELECT COALESCE(MAX(id), 0) FROM ring_moves)) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
    movesAfter: db.prepare<[number, number], MoveRow>('SELECT * FROM ring_moves WHERE id > ? ORDER BY id LIMIT ?'),
    insertMove: db.prepare('INSERT INTO ring_moves (agent_id, from_ring, to_ring, reason, at) VALUES (?, ?, ?, ?, ?)'),
    movesSince: db.prepare<[number, number, number, number], MoveRow>('SELECT * FROM ring_moves WHERE at >= ? AND (at > ? OR id > ?) ORDER BY at, id LIMIT ?'),
    upsertDevice: db.prepare(
      `INSERT INTO devices (id, site, department, manufacturer, model, os_name, tags, battery, charging, cpu, memory, disk,
         drain, cpu_trend, impact, sampled_at, ring, moved_at, pin_ring, connectivity, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(id) DO UPDATE SET site = excluded.site, department = excluded.department, manufacturer = excluded.manufacturer,
         model = excluded.model, os_name = excluded.os_name, tags = excluded.tags,
         battery = CASE WHEN excluded.cpu IS NULL THEN battery ELSE excluded.battery END,
         charging = CASE WHEN excluded.cpu IS NULL THEN charging ELSE excluded.charging END,
         cpu = COALESCE(excluded.cpu, cpu), memory = COALESCE(excluded.memory, memory), disk = COALESCE(excluded.disk, disk),
         sampled_at = COALESCE(excluded.sampled_at, sampled_at)`,
    ),
    addHistory: db.prepare('INSERT OR REPLACE INTO device_history (device_id, at, battery, charging, cpu, memory, disk, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
    history: db.prepare<[string, number, number], HistoryRow>('SELECT * FROM (SELECT * FROM device_history WHERE device_id = ? AND at >= ? ORDER BY at DESC LIMIT ?) ORDER BY at'),
    pruneHistory: db.prepare('DELETE FROM device_history WHERE at < ?'),
    saveSample: db.prepare(
      'UPDATE devices SET battery = ?, charging = ?, cpu = ?, memory = ?, disk = ?, drain = ?, cpu_trend = ?, impact = ?, sampled_at = ? WHERE id = ?',
    ),
    setPin: db.prepare('UPDATE devices SET pin_ring = ? WHERE id = ?'),
    setDeviceConnectivity: db.prepare('UPDATE devices SET connectivity = ? WHERE id = ?'),
    loadDevices: db.prepare<[string, number], DeviceRow>('SELECT * FROM devices WHERE id > ? ORDER BY id LIMIT ?'),
    movesAll: db.prepare<[], MoveRow>('SELECT * FROM ring_moves ORDER BY id'),
    movesOf: db.prepare<[string], MoveRow>('SELECT * FROM ring_moves WHERE agent_id = ? ORDER BY id'),
  };

  const self: FleetStore = {
    applyRingMoves(moves: readonly RingMoveWrite[]): Promise<void> {
      if (moves.length === 0) return Promise.resolve();
      const insert = st.insertMove.source;
      return ctx.write(moves.map((m) => ({ sql: insert, params: [m.agentId, m.from, m.to, m.reason, m.at] }))).then(() => undefined);
    },

    snapshotRings(rows: readonly { id: string; ring: string | null; movedAt: number }[]): Promise<void> {
      const setRing = st.setDeviceRing.source;
      const steps: Step[] = rows.map((r) => ({ sql: setRing, params: [r.ring, r.movedAt, r.id] }));
      steps.push({ sql: st.setWatermark.source });
      return ctx.write(steps).then(() => undefined);
    },

    ringMovesAfterSnapshot(afterId: number, limit: number): Promise<RingMove[]> {
      return run(() => st.movesAfter.all(afterId, limit).map(toMove));
    },

    async ringSnapshotWatermark(): Promise<number> {
      return Number((await ctx.getMeta('ring_snapshot_move_id')) ?? 0);
    },

    listRingMovesSince(since: number, afterId: number, limit: number): Promise<RingMove[]> {
      return run(() => st.movesSince.all(since, since, afterId, limit).map(toMove));
    },

    upsertDevices(devices: readonly DeviceRecord[]): Promise<void> {
      if (devices.length === 0) return Promise.resolve();
      const sql = st.upsertDevice.source;
      return ctx.write(
        devices.map((d) => ({
          sql,
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
      const sql = st.saveSample.source;
      const add = st.addHistory.source;
      const steps: Step[] = [];
      for (const m of samples) {
        const charging = m.charging === null ? null : m.charging ? 1 : 0;
        steps.push({ sql, params: [m.battery, charging, m.cpu, m.memory, m.disk, m.drain, m.cpuTrend, m.impact, m.sampledAt, m.id] });
        if (m.history) steps.push({ sql: add, params: [m.id, m.sampledAt, m.battery, charging, m.cpu, m.memory, m.disk, m.history.score] });
      }
      return ctx.write(steps).then(() => undefined);
    },

    deviceHistory(id: string, since: number, limit: number): Promise<DeviceHistoryPoint[]> {
      return run(() => st.history.all(id, since, limit).map(toHistoryPoint));
    },

    pruneDeviceHistory(before: number): Promise<number> {
      return ctx.write([{ sql: st.pruneHistory.source, params: [before], want: 'changes' }]).then(([n]) => Number(n));
    },

    setDevicePin(id: string, ring: string | null): Promise<void> {
      return ctx.write([{ sql: st.setPin.source, params: [ring, id] }]).then(() => undefined);
    },

    setDeviceConnectivity(id: string, connectivity: Connectivity): Promise<void> {
      return ctx.write([{ sql: st.setDeviceConnectivity.source, params: [connectivity, id] }]).then(() => undefined);
    },

    loadDevices(afterId: string, limit: number): Promise<DeviceRecord[]> {
      return run(() => st.loadDevices.all(afterId, limit).map(toDevice));
    },

    listRingMoves(agentId?: string): Promise<RingMove[]> {
      return run(() => (agentId === undefined ? st.movesAll.all() : st.movesOf.all(agentId)).map(toMove));
    },
  };
  return self;
}
