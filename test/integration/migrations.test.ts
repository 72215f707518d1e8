import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';

afterEach(() => cleanupTempDirs());

/** A database as an earlier release left it: migrations up to `version` only. */
function databaseAt(version: number, path: string): Database.Database {
  const db = new Database(path);
  for (const m of MIGRATIONS.filter((x) => x.version <= version)) {
    db.exec(m.sql);
    db.pragma(`user_version = ${m.version}`);
  }
  return db;
}

describe('migrations', () => {
  it('versions 6 and 7: agents become devices, and the prototype deployments become deployments of kind seed with their executions', async () => {
    const path = join(tempDir(), 'old.db');
    const db = databaseAt(5, path);
    db.prepare("INSERT INTO agents (id, kind, capabilities, connectivity, ring, created_at) VALUES ('slave-1', 'simulated', '[]', 'online', 'dev', 1)").run();
    db.prepare('INSERT INTO deployments (id, status, started_at, completed_at, affected_agents, recovered_agents) VALUES (?, ?, ?, ?, ?, ?)').run('old-1', 'completed', 10, 20, '["slave-1","slave-2"]', '["slave-2"]');
    db.prepare('INSERT INTO deployments (id, status, started_at, completed_at, affected_agents, recovered_agents) VALUES (?, ?, ?, ?, ?, ?)').run('old-2', 'active', 30, null, '[]', '[]');
    db.close();
    const store = new SqliteStore(path);
    const one = await store.getDeployment('old-1');
    expect(one).toMatchObject({ id: 'old-1', kind: 'seed', status: 'completed', startedAt: 10, endedAt: 20, detail: { recovered: ['slave-2'] } });
    expect(one?.spec).toMatchObject({ name: 'old-1', stages: [], autoRollback: false });
    expect((await store.getExecutions(one?.seq ?? 0)).map((e) => [e.deviceId, e.state])).toEqual([['slave-1', 'succeeded'], ['slave-2', 'succeeded']]);
    expect(await store.getDeployment('old-2')).toMatchObject({ kind: 'seed', status: 'in_progress', endedAt: null });
    expect((await store.loadActiveDeployments()).map((d) => d.id)).toEqual(['old-2']);
    // Version 6 copied agents into devices, ring included.
    expect((await store.loadDevices('', 10)).map((d) => [d.id, d.ring])).toEqual([['slave-1', 'dev']]);
    await store.close();
  });

  it('version 10: a device report and an execution\'s readings stored in the seed\'s names are rewritten in the domain\'s', async () => {
    const path = join(tempDir(), 'old.db');
    const db = databaseAt(9, path);
    const laptop = { name: 'laptop', os_version: 'Linux 6.1', battery_level: 54.5, battery_charging: false, cpu_usage: 12, memory_usage: 40, disk_usage: 70 };
    const desktop = { name: 'desktop', os_version: 'Windows 11', battery_level: null, battery_charging: null, cpu_usage: 3, memory_usage: 20, disk_usage: 10 };
    const insertAgent = db.prepare("INSERT INTO agents (id, kind, capabilities, connectivity, ring, created_at, device) VALUES (?, 'network', '[]', 'online', 'dev', 1, ?)");
    insertAgent.run('agent-laptop', JSON.stringify(laptop));
    insertAgent.run('agent-desktop', JSON.stringify(desktop));
    insertAgent.run('agent-new', null);
    // Executions stored a reading without the CPU trend; a machine without a battery read as full and charging.
    const before = { battery: 100, charging: true, cpu: 3, memory: 20, disk: 10, drain: 0 };
    db.prepare("INSERT INTO deployment_executions (deployment_seq, device_id, stage, state, baseline, observed, queued_at) VALUES (1, 'agent-desktop', 0, 'succeeded', ?, ?, 5)").run(JSON.stringify(before), JSON.stringify({ ...before, cpu: 9 }));
    db.prepare("INSERT INTO deployment_executions (deployment_seq, device_id, stage, state, queued_at) VALUES (1, 'agent-laptop', 0, 'queued', 5)").run();
    db.close();

    const store = new SqliteStore(path);
    const devices = new Map((await store.listAgents()).map((a) => [a.id, a.device]));
    expect(devices.get('agent-laptop')).toEqual({ name: 'laptop', osVersion: 'Linux 6.1', battery: 54.5, charging: false, cpu: 12, memory: 40, disk: 70 });
    expect(devices.get('agent-desktop')).toEqual({ name: 'desktop', osVersion: 'Windows 11', battery: null, charging: null, cpu: 3, memory: 20, disk: 10 });
    expect(devices.get('agent-new')).toBeNull();
    const executions = new Map((await store.getExecutions(1)).map((e) => [e.deviceId, e]));
    expect(executions.get('agent-desktop')?.baseline).toEqual({ ...before, cpuTrend: 0 });
    expect(executions.get('agent-desktop')?.observed).toEqual({ ...before, cpu: 9, cpuTrend: 0 });
    expect(executions.get('agent-laptop')).toMatchObject({ baseline: null, observed: null });
    await store.close();
  });
});
