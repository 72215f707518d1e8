import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { OrchestratorEvents } from '../../src/domain/events.js';
import { TypedEventBus } from '../../src/util/event-bus.js';
import { DEFAULT_HEALTH_SCORE_CONFIG } from '../../src/domain/health-score.js';
import type { DeviceImport } from '../../src/fleet/fleet.js';
import { Fleet } from '../../src/fleet/fleet.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { FakeClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';

const stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  cleanupTempDirs();
});

function open(path: string, clock: FakeClock): { store: SqliteStore; fleet: Fleet } {
  const store = new SqliteStore(path, { writer: 'thread' });
  stores.push(store);
  const fleet = new Fleet({ store, clock, events: new TypedEventBus<OrchestratorEvents>(), log: silentLogger, health: DEFAULT_HEALTH_SCORE_CONFIG });
  return { store, fleet };
}

function devices(n: number, seed = 1): DeviceImport[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `d${String(i).padStart(4, '0')}`,
    site: ['a', 'b', 'c'][i % 3],
    model: ['m1', 'm2'][i % 2],
    metrics: { battery: 25 + ((i * 37 * seed) % 75), charging: i % 4 === 0, cpu: (i * 13 * seed) % 79, memory: 20 + ((i * 7) % 60), disk: (i * 11) % 90 },
  }));
}

function state(fleet: Fleet): string[] {
  const reg = fleet.registry;
  return reg.ids.map((id, i) => `${id}:${reg.ringName(reg.ring[i] as number)}:${reg.movedAt[i] as number}:${reg.score(i) ?? '-'}`);
}

describe('fleet persistence', () => {
  it('rebuilds every ring from the snapshot and the move log after a crash (no snapshot at the end)', async () => {
    const path = join(tempDir(), 'fleet.db');
    const clock = new FakeClock();
    const a = open(path, clock);
    await a.fleet.load();
    await a.fleet.importDevices(devices(3000));
    // Devices change, the clock passes the dwell time, and the rebalancer moves some (between rings: dwell starts).
    await clock.advance(11 * 60_000);
    for (const d of devices(600, 3)) await a.fleet.sample(d.id, d.metrics as NonNullable<DeviceImport['metrics']>);
    await a.fleet.rebalance('test');
    const between = (await a.store.listRingMovesSince(0, 0, 100_000)).filter((m) => m.from !== 'unassigned');
    expect(between.length).toBeGreaterThan(0);
    const before = state(a.fleet);
    // A crash: the store closes with the moves committed but no snapshot written.
    await a.store.close();
    stores.splice(stores.indexOf(a.store), 1);

    const b = open(path, clock);
    expect(await b.store.ringSnapshotWatermark()).toBeLessThan((await b.store.listRingMovesSince(0, 0, 100_000)).at(-1)?.id ?? 0);
    await b.fleet.load();
    expect(state(b.fleet)).toEqual(before);
    // Loading folded the log into the snapshot.
    expect(await b.store.ringSnapshotWatermark()).toBe((await b.store.listRingMovesSince(0, 0, 100_000)).at(-1)?.id);
    expect(b.fleet.rings()).toEqual(a.fleet.rings());
  });

  it('a device in a removed ring is unassigned with a recorded move, then placed again', async () => {
    const clock = new FakeClock();
    const { fleet } = open(join(tempDir(), 'fleet.db'), clock);
    await fleet.load();
    await fleet.importDevices(devices(200));
    const inProd = fleet.registry.ids.filter((id) => fleet.ringOf(id) === 'prod');
    const out = await fleet.configure({ rings: [{ name: 'canary', share: 0.2 }, { name: 'broad', share: 0.8 }] });
    expect(out.moves).toBeGreaterThanOrEqual(inProd.length * 2);
    const counts = fleet.ringCounts();
    expect(counts).toEqual({ canary: 40, broad: 160, unassigned: 0 });
    const history = await fleet.moves(0, 1000, undefined);
    const one = history.moves.filter((m) => m.agentId === inProd[0]);
    expect(one.map((m) => [m.from, m.to])).toEqual([
      ['unassigned', 'prod'],
      ['prod', 'unassigned'],
      ['unassigned', one[2]?.to],
    ]);
    expect(one[1]?.reason).toBe('ring prod was removed from the configuration');
  });

  it('refuses an invalid configuration without changing anything', async () => {
    const clock = new FakeClock();
    const { fleet, store } = open(join(tempDir(), 'fleet.db'), clock);
    await fleet.load();
    await fleet.importDevices(devices(50));
    const before = fleet.rings();
    await expect(fleet.configure({ rings: [{ name: 'x', share: 0.3 }] })).rejects.toMatchObject({ code: 'ORCH_VALIDATION', details: { errors: ['rings: the shares must sum to 1 (they sum to 0.3)'] } });
    expect(fleet.rings()).toEqual(before);
    expect(await store.getMeta('ring_config')).toBeNull();
  });
});
