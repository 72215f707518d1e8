import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Agent, Task } from '../../src/domain/types.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';

afterEach(cleanupTempDirs);

const open: SqliteStore[] = [];
let writer: 'inline' | 'thread' = 'inline';
function store(path = join(tempDir(), 'o.db')): SqliteStore {
  const s = new SqliteStore(path, { writer });
  open.push(s);
  return s;
}
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
});

let nextSeq = 0;
function task(id: string, change: Partial<Task> = {}): Task {
  return {
    id,
    seq: ++nextSeq,
    type: 'process_data',
    parameters: { n: id },
    priority: 0,
    status: 'pending',
    target: null,
    assignedTo: null,
    attempts: 0,
    attemptsBase: 0,
    maxAttempts: 2,
    backoff: { strategy: 'fixed', initialMs: 100, maxMs: 100, jitter: false },
    timeoutMs: 60_000,
    idempotencyKey: null,
    runAfter: null,
    deadline: null,
    leaseExpiresAt: null,
    createdAt: 1000,
    startedAt: null,
    completedAt: null,
    result: null,
    error: null,
    ...change,
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

// The same suite runs against both writers: inline (tests with a fake clock) and the writer thread (the server).
describe.each(['inline', 'thread'] as const)('SqliteStore with the %s writer', (kind) => {
  beforeEach(() => {
    writer = kind;
  });

  it('uses WAL with synchronous=FULL', () => {
    const s = store();
    const db = (s as unknown as { db: { pragma(q: string, o: object): unknown } }).db;
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(2);
  });

  it('stores tasks with every field, and their attempts', async () => {
    const s = store();
    const t = task('t1', { target: { selector: { site: 'HQ' } }, idempotencyKey: 'k1', runAfter: 5000, deadline: 9000, priority: 3 });
    await s.insertTasks([t, task('t2')]);
    expect(await s.getTask('t1')).toEqual(t);
    expect(await s.findTaskByIdempotencyKey('k1')).toEqual(t);
    expect(await s.findTaskByIdempotencyKey('k2')).toBeNull();
    const started = { ...t, status: 'in_progress' as const, attempts: 1, assignedTo: 'a', startedAt: 2000, leaseExpiresAt: 22_000, runAfter: null };
    await s.recordStart(started);
    expect(await s.getTask('t1')).toEqual(started);
    await s.renewLeases('a', 30_000);
    expect((await s.getTask('t1'))?.leaseExpiresAt).toBe(30_000);
    const done = { ...started, status: 'completed' as const, result: { ok: 1 }, completedAt: 2500, leaseExpiresAt: null };
    await s.saveTask(done, { taskId: 't1', taskSeq: t.seq, attempt: 1, agentId: 'a', startedAt: 2000, endedAt: 2500, outcome: 'succeeded', error: null });
    expect(await s.getTask('t1')).toEqual(done);
    expect(await s.getAttempts('t1')).toEqual([{ taskId: 't1', taskSeq: t.seq, attempt: 1, agentId: 'a', startedAt: 2000, endedAt: 2500, outcome: 'succeeded', error: null }]);
    expect(await s.countAttemptsByAgent()).toEqual(new Map([['a', { succeeded: 1, failed: 0 }]]));
    expect((await s.countTasksByStatus()).completed).toBe(1);
    expect((await s.loadLiveTasks()).map((x) => x.id)).toEqual(['t2']);
    expect(await s.maxTaskSeq()).toBe(t.seq + 1);
  });

  it('refuses a second task with the same idempotency key without losing the other writes of its commit', async () => {
    const s = store();
    await s.insertTasks([task('a1', { idempotencyKey: 'same' })]);
    const dup = s.insertTasks([task('a2', { idempotencyKey: 'same' })]);
    const other = s.insertTasks([task('a3')]);
    await expect(dup).rejects.toThrow(/UNIQUE/);
    await other;
    expect(await s.getTask('a3')).not.toBeNull();
    expect(await s.getTask('a2')).toBeNull();
  });

  it('skips a task start that a later full write of the same task in the same commit makes moot, and nothing else', async () => {
    const s = store();
    const t = task('c1');
    await s.insertTasks([t]);
    const started = { ...t, status: 'in_progress' as const, attempts: 1, assignedTo: 'a', startedAt: 10, leaseExpiresAt: 99 };
    const requeued = { ...started, status: 'pending' as const, assignedTo: null, error: 'lost', runAfter: 50, leaseExpiresAt: null };
    const restarted = { ...requeued, status: 'in_progress' as const, attempts: 2, assignedTo: 'b', startedAt: 60, runAfter: null, leaseExpiresAt: 160 };
    const done = { ...restarted, status: 'completed' as const, result: 'ok', completedAt: 70, leaseExpiresAt: null };
    // All in one turn: start, requeue (with its attempt record), start again, complete.
    await Promise.all([
      s.recordStart(started),
      s.saveTask(requeued, { taskId: 'c1', taskSeq: t.seq, attempt: 1, agentId: 'a', startedAt: 10, endedAt: 50, outcome: 'agent_lost', error: 'lost' }),
      s.recordStart(restarted),
      s.saveTask(done, { taskId: 'c1', taskSeq: t.seq, attempt: 2, agentId: 'b', startedAt: 60, endedAt: 70, outcome: 'succeeded', error: null }),
    ]);
    expect(await s.getTask('c1')).toEqual(done);
    expect((await s.getAttempts('c1')).map((a) => [a.attempt, a.agentId, a.outcome])).toEqual([
      [1, 'a', 'agent_lost'],
      [2, 'b', 'succeeded'],
    ]);
    // A start after a requeue is not full: the requeue's own columns must survive it.
    const t2 = task('c2');
    await s.insertTasks([t2]);
    await Promise.all([s.saveTask({ ...t2, error: 'kept', attemptsBase: 0 }), s.recordStart({ ...t2, status: 'in_progress', attempts: 1, assignedTo: 'a', startedAt: 5, leaseExpiresAt: 9 })]);
    expect(await s.getTask('c2')).toMatchObject({ status: 'in_progress', error: 'kept', assignedTo: 'a' });
  });

  it('groups the writes of one turn into one commit', async () => {
    const s = store();
    const before = s.writer.stats.commits;
    await Promise.all(Array.from({ length: 200 }, (_, i) => s.insertTasks([task(`g${i}`)])));
    expect(s.writer.stats.commits - before).toBe(1);
    expect(s.writer.stats.maxBatch).toBeGreaterThanOrEqual(200);
  });

  it('pages through tasks newest first, by status, type and agent', async () => {
    const s = store();
    const tasks = Array.from({ length: 25 }, (_, i) =>
      task(`p${i}`, { type: i % 2 === 0 ? 'monitor' : 'deploy', status: i % 3 === 0 ? 'completed' : 'pending', assignedTo: i % 5 === 0 ? 'agent-x' : null }),
    );
    await s.insertTasks(tasks);
    const seen: string[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await s.listTasks({}, 10, before);
      if (page.length === 0) break;
      seen.push(...page.map((t) => t.id));
      before = page[page.length - 1]?.seq;
    }
    expect(seen).toEqual(tasks.map((t) => t.id).reverse());
    expect((await s.listTasks({ status: 'completed' }, 100)).map((t) => t.id)).toEqual(tasks.filter((t) => t.status === 'completed').map((t) => t.id).reverse());
    expect((await s.listTasks({ type: 'monitor', status: 'pending' }, 100)).every((t) => t.type === 'monitor' && t.status === 'pending')).toBe(true);
    expect((await s.listTasks({ agentId: 'agent-x' }, 100)).map((t) => t.id)).toEqual(['p20', 'p15', 'p10', 'p5', 'p0']);
  });

  it('stores devices: attributes, samples, pins, connectivity and ring moves, paged back in id order', async () => {
    const path = join(tempDir(), 'devices.db');
    const s1 = new SqliteStore(path, { writer });
    const base = { site: 'berlin', department: 'IT', manufacturer: 'Lenovo', model: 'X1', osName: 'linux', tags: ['kiosk'], drain: 0, cpuTrend: 0, impact: 0, movedAt: 0, pinRing: null, connectivity: 'offline' as const, createdAt: 5 };
    const devices = Array.from({ length: 25 }, (_, n) => ({ ...base, id: `dev-${String(n).padStart(3, '0')}`, metrics: n % 2 === 0 ? { battery: 50 + n, charging: false, cpu: 10, memory: 30, disk: 40 } : null, sampledAt: n % 2 === 0 ? 7 : null, ring: null }));
    await s1.upsertDevices(devices);
    // A second import updates attributes and keeps metrics it does not carry.
    await s1.upsertDevices([{ ...base, id: 'dev-000', site: 'austin', metrics: null, sampledAt: null, ring: null }]);
    await s1.saveDeviceSamples([{ id: 'dev-002', battery: 12, charging: true, cpu: 90, memory: 80, disk: 70, drain: 3, cpuTrend: 4, impact: 0.3, sampledAt: 99 }]);
    // A machine without a battery: its sample keeps battery and charging null, and still counts as a sample.
    await s1.saveDeviceSamples([{ id: 'dev-006', battery: null, charging: null, cpu: 15, memory: 25, disk: 35, drain: 0, cpuTrend: 0, impact: 0, sampledAt: 98 }]);
    await s1.setDevicePin('dev-003', 'canary');
    await s1.setDeviceConnectivity('dev-004', 'online');
    await s1.applyRingMoves([
      { agentId: 'dev-001', from: 'unassigned', to: 'prod', reason: 'r1', at: 100 },
      { agentId: 'dev-001', from: 'prod', to: 'dev', reason: 'r2', at: 200 },
    ]);
    // The snapshot takes what the log holds so far; later moves are read from the log after its watermark.
    await s1.snapshotRings([{ id: 'dev-001', ring: 'dev', movedAt: 200 }]);
    await s1.applyRingMoves([{ agentId: 'dev-005', from: 'unassigned', to: 'stage', reason: 'r3', at: 200 }]);
    expect(await s1.ringSnapshotWatermark()).toBe(2);
    expect((await s1.ringMovesAfterSnapshot(2, 10)).map((m) => [m.agentId, m.to])).toEqual([['dev-005', 'stage']]);
    await s1.close();
    const s2 = store(path);
    const first = await s2.loadDevices('', 10);
    const second = await s2.loadDevices(first.at(-1)?.id ?? '', 10);
    const third = await s2.loadDevices(second.at(-1)?.id ?? '', 10);
    const all = [...first, ...second, ...third];
    expect(all.map((d) => d.id)).toEqual(devices.map((d) => d.id));
    expect(third).toHaveLength(5);
    const byId = new Map(all.map((d) => [d.id, d]));
    expect(byId.get('dev-000')).toMatchObject({ site: 'austin', metrics: { battery: 50, charging: false, cpu: 10, memory: 30, disk: 40 }, sampledAt: 7, tags: ['kiosk'] });
    expect(byId.get('dev-002')).toMatchObject({ metrics: { battery: 12, charging: true, cpu: 90, memory: 80, disk: 70 }, drain: 3, cpuTrend: 4, impact: 0.3, sampledAt: 99 });
    expect(byId.get('dev-003')).toMatchObject({ pinRing: 'canary', metrics: null });
    expect(byId.get('dev-006')).toMatchObject({ metrics: { battery: null, charging: null, cpu: 15, memory: 25, disk: 35 }, sampledAt: 98 });
    expect(byId.get('dev-004')?.connectivity).toBe('online');
    expect(byId.get('dev-001')).toMatchObject({ ring: 'dev', movedAt: 200 });
    expect(byId.get('dev-005')).toMatchObject({ ring: null, movedAt: 0 });
    // Moves since an instant, paged by (at, id).
    const p1 = await s2.listRingMovesSince(150, 0, 1);
    expect(p1.map((m) => m.reason)).toEqual(['r2']);
    const p2 = await s2.listRingMovesSince(p1[0]?.at ?? 0, p1[0]?.id ?? 0, 10);
    expect(p2.map((m) => m.reason)).toEqual(['r3']);
    expect((await s2.listRingMovesSince(0, 0, 10)).map((m) => m.reason)).toEqual(['r1', 'r2', 'r3']);
  });

  it('keeps everything across a reopen of the file', async () => {
    const path = join(tempDir(), 'reopen.db');
    const s1 = new SqliteStore(path, { writer });
    await s1.setMeta('master_id', 'master-1');
    await s1.upsertAsset({ id: 'asset-1', name: 'one' }, 1);
    expect(await s1.upsertAsset({ id: 'asset-1', name: 'uno', site: 'HQ' }, 2)).toEqual({ created: false });
    await s1.insertAgent(agent);
    const device = { name: 'd', osVersion: 'x', battery: 50, charging: false, cpu: 10, memory: 30, disk: 40 };
    await s1.recordHeartbeat(agent.id, device, 77);
    await s1.applyRingMoves([{ agentId: agent.id, from: 'unassigned', to: 'dev', reason: 'first heartbeat', at: 78 }]);
    await s1.insertTasks([task('t3', { priority: 3 })]);
    const spec = { name: 'd1', payload: { type: 'deploy', params: { version: '2' } }, stages: [], maintenanceWindows: [], autoRollback: false, rollbackPayload: { type: 'deploy', params: {} } };
    const dep = { id: 'd1', kind: 'rollout' as const, spec, status: 'in_progress' as const, stage: 0, phase: 'dispatching' as const, soakUntil: null, gateResetAt: 0, haltReason: null, detail: {}, createdAt: 5, startedAt: 5, endedAt: null };
    const seq = await s1.insertDeployment(dep);
    await s1.saveDeployment({ ...dep, seq, status: 'halted', haltReason: 'halted at ring canary', stage: 1 });
    const exec = { deviceId: agent.id, stage: 0, state: 'succeeded' as const, taskId: 't1', reason: null, baseline: { battery: 50, charging: false, cpu: 10, memory: 30, disk: 40, drain: 1, cpuTrend: 0 }, observed: null, cpuDelta: 4, memoryDelta: 1, drainDelta: 0.5, rollbackTaskId: null, queuedAt: 5, startedAt: 6, endedAt: 7, observedAt: 8 };
    await s1.saveExecutions(seq, [exec]);
    await s1.insertGateEvaluation(seq, { stage: 0, ring: 'canary', at: 9, verdict: 'fail', reason: 'halted at ring canary', figures: { judged: 1 } });
    await s1.close();

    const s2 = store(path);
    expect(await s2.getMeta('master_id')).toBe('master-1');
    expect(await s2.getAsset('asset-1')).toEqual({ id: 'asset-1', name: 'uno', site: 'HQ' });
    // An agent's ring lives in the move log (and the devices snapshot), not in its agent row.
    expect(await s2.listAgents()).toEqual([{ ...agent, connectivity: 'online', lastHeartbeatAt: 77, device }]);
    expect(await s2.findAgentByAsset('asset-1')).toMatchObject({ id: agent.id });
    expect(await s2.listRingMoves(agent.id)).toEqual([{ id: 1, agentId: agent.id, from: 'unassigned', to: 'dev', reason: 'first heartbeat', at: 78 }]);
    expect(await s2.getTask('t3')).toMatchObject({ id: 't3', priority: 3, status: 'pending', parameters: { n: 't3' } });
    expect(await s2.getDeployment('d1')).toEqual({ ...dep, seq: 1, status: 'halted', haltReason: 'halted at ring canary', stage: 1 });
    expect((await s2.loadActiveDeployments()).map((d) => d.id)).toEqual(['d1']);
    expect(await s2.getExecutions(1)).toEqual([exec]);
    expect(await s2.getGateEvaluations(1)).toEqual([{ stage: 0, ring: 'canary', at: 9, verdict: 'fail', reason: 'halted at ring canary', figures: { judged: 1 } }]);
    expect((await s2.listDeployments(10)).map((d) => d.id)).toEqual(['d1']);
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
    await s.recordHeartbeat(agent.id, { name: 'd', osVersion: 'x', battery: 1, charging: false, cpu: 1, memory: 1, disk: 1 }, 5);
    expect((await s.getAgent(agent.id))?.connectivity).toBe('decommissioned');
  });
});
