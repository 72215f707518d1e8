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
});
