import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Agent, Task } from '../../src/domain/types.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';

afterEach(cleanupTempDirs);

const open: SqliteStore[] = [];
function store(path = join(tempDir(), 'o.db')): SqliteStore {
  const s = new SqliteStore(path);
  open.push(s);
  return s;
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

function task(id: string, priority = 0): Omit<Task, 'seq'> {
  return {
    id,
    type: 'process_data',
    parameters: { n: id },
    priority,
    status: 'pending',
    assignedTo: null,
    attempts: 0,
    maxAttempts: 2,
    createdAt: 1000,
    startedAt: null,
    completedAt: null,
    result: null,
    error: null,
  };
}

const agent: Agent = {
  id: 'slave-00000001',
  kind: 'simulated',
  capabilities: ['process_data'],
  connectivity: 'offline',
  registeredAt: null,
  lastHeartbeatAt: null,
  device: null,
  ring: 'unassigned',
  assetId: 'asset-1',
  createdAt: 1,
};

describe('SqliteStore', () => {
  it('uses WAL with synchronous=FULL', () => {
    const s = store();
    const db = (s as unknown as { db: { pragma(q: string, o: object): unknown } }).db;
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
  });

  it('lists pending tasks by priority, then submission order, and pages with a cursor', async () => {
    const s = store();
    for (const [id, p] of [['a', 0], ['b', 5], ['c', 0], ['d', 5], ['e', -1]] as const) await s.insertTask(task(id, p));
    const all = await s.listPending(10);
    expect(all.map((t) => t.id)).toEqual(['b', 'd', 'a', 'c', 'e']);
    const first = await s.listPending(2);
    const last = first[1] as Task;
    expect((await s.listPending(10, { priority: last.priority, seq: last.seq })).map((t) => t.id)).toEqual(['a', 'c', 'e']);
  });

  it('fences results by attempt and agent', async () => {
    const s = store();
    await s.insertTask(task('t1'));
    const started = await s.startAttempt('t1', 'agent-a', 2000);
    expect(started).toMatchObject({ status: 'in_progress', attempts: 1, assignedTo: 'agent-a', startedAt: 2000 });
    expect(await s.startAttempt('t1', 'agent-b', 2001)).toBeNull();
    // Requeued after a failure: attempt 1 is now stale.
    expect(await s.failAttempt('t1', 1, 'agent-a', 'failed', 'boom', true, 2100)).toMatchObject({ status: 'pending', error: 'boom', attempts: 1 });
    expect(await s.completeAttempt('t1', 1, 'agent-a', { late: true }, 2200)).toBeNull();
    await s.startAttempt('t1', 'agent-b', 2300);
    expect(await s.completeAttempt('t1', 2, 'agent-a', 'wrong agent', 2400)).toBeNull();
    expect(await s.completeAttempt('t1', 1, 'agent-b', 'stale attempt', 2400)).toBeNull();
    const done = await s.completeAttempt('t1', 2, 'agent-b', { ok: 1 }, 2500);
    expect(done).toMatchObject({ status: 'completed', result: { ok: 1 }, error: null, completedAt: 2500, attempts: 2 });
    expect(await s.getAttempts('t1')).toEqual([
      { taskId: 't1', attempt: 1, agentId: 'agent-a', startedAt: 2000, endedAt: 2100, outcome: 'failed', error: 'boom' },
      { taskId: 't1', attempt: 2, agentId: 'agent-b', startedAt: 2300, endedAt: 2500, outcome: 'succeeded', error: null },
    ]);
    expect(await s.countAttemptsByAgent()).toEqual(new Map([['agent-a', { succeeded: 0, failed: 1 }], ['agent-b', { succeeded: 1, failed: 0 }]]));
    expect(await s.countTasksByStatus()).toEqual({ pending: 0, in_progress: 0, completed: 1, failed: 0, cancelled: 0 });
  });

  it('fails a task with its last error when no retry is left', async () => {
    const s = store();
    await s.insertTask(task('t2'));
    await s.startAttempt('t2', 'a', 1);
    expect(await s.failAttempt('t2', 1, 'a', 'timed_out', 'too slow', false, 5)).toMatchObject({ status: 'failed', error: 'too slow', completedAt: 5 });
  });

  it('keeps everything across a reopen of the file', async () => {
    const path = join(tempDir(), 'reopen.db');
    const s1 = new SqliteStore(path);
    await s1.setMeta('master_id', 'master-1');
    await s1.upsertAsset({ id: 'asset-1', name: 'one' }, 1);
    expect(await s1.upsertAsset({ id: 'asset-1', name: 'uno', site: 'HQ' }, 2)).toEqual({ created: false });
    await s1.insertAgent(agent);
    const device = { name: 'd', os_version: 'x', battery_level: 50, battery_charging: false, cpu_usage: 10, memory_usage: 30, disk_usage: 40 };
    await s1.recordHeartbeat(agent.id, device, 77);
    await s1.moveRing({ agentId: agent.id, from: 'unassigned', to: 'dev', reason: 'first heartbeat', at: 78 });
    await s1.insertTask(task('t3', 3));
    await s1.insertDeployment({ id: 'd1', status: 'active', startedAt: 5, completedAt: null, affectedAgents: [agent.id], recoveredAgents: [] });
    await s1.completeDeployment('d1', [agent.id], 9);
    expect(await s1.completeDeployment('d1', [], 10)).toBeNull();
    await s1.close();

    const s2 = store(path);
    expect(await s2.getMeta('master_id')).toBe('master-1');
    expect(await s2.getAsset('asset-1')).toEqual({ id: 'asset-1', name: 'uno', site: 'HQ' });
    expect(await s2.listAgents()).toEqual([{ ...agent, connectivity: 'online', lastHeartbeatAt: 77, device, ring: 'dev' }]);
    expect(await s2.findAgentByAsset('asset-1')).toMatchObject({ id: agent.id });
    expect(await s2.listRingMoves(agent.id)).toEqual([{ id: 1, agentId: agent.id, from: 'unassigned', to: 'dev', reason: 'first heartbeat', at: 78 }]);
    expect(await s2.getTask('t3')).toMatchObject({ id: 't3', priority: 3, status: 'pending', parameters: { n: 't3' } });
    expect(await s2.getDeployment('d1')).toEqual({ id: 'd1', status: 'completed', startedAt: 5, completedAt: 9, affectedAgents: [agent.id], recoveredAgents: [agent.id] });
  });

  it('hides decommissioned agents and frees their asset', async () => {
    const s = store();
    await s.insertAgent(agent);
    await s.setConnectivity(agent.id, 'decommissioned');
    expect(await s.listAgents()).toEqual([]);
    expect(await s.findAgentByAsset('asset-1')).toBeNull();
    await s.insertAgent({ ...agent, id: 'slave-00000002' });
    expect(await s.findAgentByAsset('asset-1')).toMatchObject({ id: 'slave-00000002' });
    // A heartbeat from a decommissioned agent does not bring it back.
    await s.recordHeartbeat(agent.id, { name: 'd', os_version: 'x', battery_level: 1, battery_charging: false, cpu_usage: 1, memory_usage: 1, disk_usage: 1 }, 5);
    expect((await s.getAgent(agent.id))?.connectivity).toBe('decommissioned');
  });
});
