import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getJson, postJson, runCli, serversPerTest, waitFor } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

const start = serversPerTest();
const FAST = { HEARTBEAT_INTERVAL: '250ms', AGENT_TIMEOUT: '3s' };

describe('orchestrator backup', () => {
  it('copies the database of a running orchestrator while it takes tasks; the copy restores the fleet and every task acknowledged before it', async () => {
    const dataDir = tempDir();
    const server = await start({ DATA_DIR: dataDir, ...FAST });
    const agents = (await getJson(`${server.url}/list_agents`)).body.agents as string[];
    const { body } = await postJson(`${server.url}/submit_task`, { task_type: 'process_data', parameters: { data: [3, 1, 4] } });
    const done = await waitFor(async () => {
      const t = (await getJson(`${server.url}/status/${String(body.task_id)}`)).body;
      return t.status === 'completed' ? t : undefined;
    });
    const acknowledged: string[] = [];
    for (let i = 0; i < 50; i++) acknowledged.push(String((await postJson(`${server.url}/submit_task`, { task_type: 'process_data', parameters: { data: [i] } })).body.task_id));

    // Writes go on during the backup.
    let writing = true;
    const during = (async () => {
      while (writing) await postJson(`${server.url}/submit_task`, { task_type: 'process_data', parameters: { data: [0] } });
    })();
    const backupFile = join(tempDir(), 'orchestrator-backup.db');
    const backup = runCli(['backup', '--data-dir', dataDir, '--to', backupFile], {});
    const code = await backup.exited;
    writing = false;
    await during;
    expect({ code, err: backup.err() }).toEqual({ code: 0, err: '' });
    expect(backup.out().startsWith(`Backed up ${join(dataDir, 'orchestrator.db')} to ${backupFile}: `)).toBe(true);
    expect(backup.out()).toMatch(/: \d+ bytes, schema version \d+, quick_check ok\n$/);

    // A backup never overwrites a file.
    const before = readFileSync(backupFile);
    const again = runCli(['backup', '--data-dir', dataDir, '--to', backupFile], {});
    expect(await again.exited).toBe(2);
    expect(again.err()).toBe(`--to: ${backupFile} exists: name a new file (a backup never overwrites one)\n`);
    expect(readFileSync(backupFile).equals(before)).toBe(true);

    server.child.kill('SIGTERM');
    expect(await server.exited).toBe(0);

    // Restoring: the copy as orchestrator.db of a DATA_DIR (without any old -wal or -shm beside it).
    const restoredDir = tempDir();
    copyFileSync(backupFile, join(restoredDir, 'orchestrator.db'));
    const restored = await start({ DATA_DIR: restoredDir, ...FAST });
    expect(restored.stdout()).toContain('Restored 3 agents');
    expect((await getJson(`${restored.url}/list_agents`)).body.agents).toEqual(agents);
    expect((await getJson(`${restored.url}/status/${String(body.task_id)}`)).body).toMatchObject({ status: 'completed', result: done.result });
    for (const id of acknowledged) expect((await getJson(`${restored.url}/status/${id}`)).status).toBe(200);
  }, 60_000);

  it('says so, exit 2, when there is no database to back up', async () => {
    const dataDir = tempDir();
    const run = runCli(['backup', '--data-dir', dataDir, '--to', join(tempDir(), 'b.db')], {});
    expect(await run.exited).toBe(2);
    expect(run.err()).toBe(
      `Database error: no orchestrator database at ${join(dataDir, 'orchestrator.db')} (--data-dir ${dataDir}). Point this command at the orchestrator's data: --data-dir DIR or DATA_DIR for its SQLite folder, DATABASE_URL for PostgreSQL\n`,
    );
  });

  it('refuses, exit 2, when the state is in PostgreSQL (DATABASE_URL), and says what to use', async () => {
    const run = runCli(['backup', '--to', join(tempDir(), 'b.db')], { DATABASE_URL: 'postgres://orch:secret@db.example:5432/orch' });
    expect(await run.exited).toBe(2);
    expect(run.err()).toBe('DATABASE_URL is set: the state is in PostgreSQL, which this SQLite copy cannot read; back it up with pg_dump or base backups (docs/operations.md)\n');
  });
});
