import { afterEach, describe, expect, it } from 'vitest';
import type { DeploymentRecord, Execution, GateEvaluation } from '../../src/domain/deployment.js';
import type { AdviceRecord, AdviceSubject, AdviceTrigger } from '../../src/domain/advice.js';
import type { DeviceMetrics } from '../../src/domain/metrics.js';
import type { ApiToken, EnrollmentToken } from '../../src/domain/security.js';
import type { Agent, DeviceInfo, Task } from '../../src/domain/types.js';
import type { DeviceRecord, Store, TaskAttempt } from '../../src/store/store.js';
import { READ_VERBS, WRITE_VERBS } from '../../src/store/store.js';

/**
 * How the contract suite reaches an adapter: a fresh, empty store for each test, and the same store
 * opened again from what it committed (after `close`).
 */
export interface StoreFactory {
  open(): Promise<Store>;
  reopen(store: Store): Promise<Store>;
}

type Verb = (typeof WRITE_VERBS)[number] | (typeof READ_VERBS)[number];

/**
 * The store contract: every verb of every aggregate, against one adapter. Round trips, ordering, paging,
 * idempotency, atomicity of multi-row verbs, commit order, and a reopen that sees everything committed.
 * Each adapter runs it from a test file of its own (test/store/*.contract.test.ts) with its factory; the
 * last test checks that the suite called every verb of the port.
 */
export function storeContract(name: string, factory: StoreFactory): void {
  const called = new Set<Verb>();
  /** Every store opened in the current test, by the proxy the test holds. */
  const opened = new Map<Store, Store>();

  /** The store, with every verb the suite calls recorded. */
  const track = (store: Store): Store => {
    const proxy = new Proxy(store, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof prop === 'string' && typeof value === 'function' && ((WRITE_VERBS as readonly string[]).includes(prop) || (READ_VERBS as readonly string[]).includes(prop))) {
          called.add(prop as Verb);
        }
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    opened.set(proxy, store);
    return proxy;
  };
  const open = async (): Promise<Store> => track(await factory.open());
  /** Closes the store and opens what it committed. */
  const reopen = async (store: Store): Promise<Store> => {
    const raw = opened.get(store) ?? store;
    opened.delete(store);
    return track(await factory.reopen(raw));
  };

  afterEach(async () => {
    for (const s of opened.values()) await s.close().catch(() => undefined);
    opened.clear();
  });

  describe(`store contract: ${name}`, () => {
    describe('connection', () => {
      it('keeps meta values, replaces them, and answers null for a key never set', async () => {
        const s = await open();
        expect(await s.getMeta('missing')).toBeNull();
        await s.setMeta('k', 'one');
        await s.setMeta('k', 'two');
        expect(await s.getMeta('k')).toBe('two');
        expect(s.kind).toMatch(/^[a-z]+$/);
        expect(typeof s.capabilities.sharedByProcesses).toBe('boolean');
        await s.probe();
        await s.idle();
      });
    });

    describe('tasks', () => {
      it('round-trips a task with every field, its state changes and its attempts', async () => {
        const s = await open();
        const t = task('t-1', 1, { target: { ring: 'canary' }, idempotencyKey: 'key-1', runAfter: 5000, deadline: 9000, parameters: { nested: { a: [1, 2] } } });
        await s.insertTasks([t]);
        expect(await s.getTask('t-1')).toEqual(t);
        expect(await s.findTaskByIdempotencyKey('key-1')).toEqual(t);
        expect(await s.findTaskByIdempotencyKey('other')).toBeNull();

        const started = { ...t, status: 'in_progress' as const, assignedTo: 'agent-1', attempts: 1, startedAt: 2000, runAfter: null, leaseExpiresAt: 32_000 };
        await s.recordStart(started);
        expect(await s.getTask('t-1')).toMatchObject({ status: 'in_progress', assignedTo: 'agent-1', attempts: 1, startedAt: 2000, runAfter: null, leaseExpiresAt: 32_000 });
        await s.renewLeases('agent-1', 50_000);
        expect((await s.getTask('t-1'))?.leaseExpiresAt).toBe(50_000);

        const failed: TaskAttempt = { taskId: 't-1', taskSeq: 1, attempt: 1, agentId: 'agent-1', startedAt: 2000, endedAt: 3000, outcome: 'timed_out', error: 'too slow' };
        await s.saveTask({ ...started, status: 'pending', assignedTo: null, leaseExpiresAt: null, error: 'too slow' }, failed);
        await s.saveTask({ ...started, attempts: 2, startedAt: 4000, status: 'completed', completedAt: 5000, result: { ok: true }, error: null });
        expect(await s.getTask('t-1')).toMatchObject({ status: 'completed', attempts: 2, result: { ok: true }, completedAt: 5000 });
        // The failed attempt as recorded; the successful last one from the task itself.
        expect(await s.getAttempts('t-1')).toEqual([failed, { taskId: 't-1', taskSeq: 1, attempt: 2, agentId: 'agent-1', startedAt: 4000, endedAt: 5000, outcome: 'succeeded', error: null }]);
        expect(await s.getTask('missing')).toBeNull();
      });

      it('loads live tasks in submission order, counts by status and by agent, and knows the highest seq', async () => {
        const s = await open();
        expect(await s.maxTaskSeq()).toBe(0);
        await s.insertTasks([task('a', 1), task('b', 2), task('c', 3), task('d', 4)]);
        await s.saveTask({ ...task('b', 2), status: 'completed', assignedTo: 'agent-1', attempts: 1, startedAt: 10, completedAt: 20 });
        await s.saveTask({ ...task('d', 4), status: 'dead', assignedTo: null, attempts: 1 }, { taskId: 'd', taskSeq: 4, attempt: 1, agentId: 'agent-2', startedAt: 10, endedAt: 20, outcome: 'failed', error: 'no' });
        await s.saveTask({ ...task('c', 3), status: 'in_progress', assignedTo: 'agent-1', attempts: 1, startedAt: 30 });
        expect((await s.loadLiveTasks()).map((t) => t.id)).toEqual(['a', 'c']);
        expect(await s.maxTaskSeq()).toBe(4);
        expect(await s.countTasksByStatus()).toMatchObject({ pending: 1, in_progress: 1, completed: 1, dead: 1, failed: 0 });
        const byAgent = await s.countAttemptsByAgent();
        expect(byAgent.get('agent-1')).toEqual({ succeeded: 1, failed: 0 });
        expect(byAgent.get('agent-2')).toEqual({ succeeded: 0, failed: 1 });
      });

      it('pages tasks newest first by a cursor, filtered by status, type and agent', async () => {
        const s = await open();
        const all = Array.from({ length: 25 }, (_, k) => task(`p-${k + 1}`, k + 1, { type: k % 2 === 0 ? 'process_data' : 'monitor' }));
        await s.insertTasks(all);
        const seen: string[] = [];
        let before: number | undefined;
        for (;;) {
          const page = await s.listTasks({}, 10, before);
          seen.push(...page.map((t) => t.id));
          if (page.length < 10) break;
          before = (page.at(-1) as Task).seq;
        }
        expect(seen).toEqual(all.map((t) => t.id).reverse());
        expect((await s.listTasks({ type: 'monitor' }, 100)).every((t) => t.type === 'monitor')).toBe(true);
        expect(await s.listTasks({ type: 'monitor' }, 100)).toHaveLength(12);
        await s.saveTask({ ...(all[3] as Task), status: 'in_progress', assignedTo: 'agent-9', attempts: 1, startedAt: 1 });
        expect((await s.listTasks({ agentId: 'agent-9' }, 100)).map((t) => t.id)).toEqual(['p-4']);
        expect((await s.listTasks({ status: 'in_progress' }, 100)).map((t) => t.id)).toEqual(['p-4']);
      });

      it('refuses a batch holding an idempotency key already stored, and stores none of it', async () => {
        const s = await open();
        await s.insertTasks([task('k-1', 1, { idempotencyKey: 'same' })]);
        await expect(s.insertTasks([task('k-2', 2), task('k-3', 3, { idempotencyKey: 'same' })])).rejects.toThrow();
        expect(await s.getTask('k-2')).toBeNull();
        expect(await s.getTask('k-3')).toBeNull();
        // The store goes on: a later write commits.
        await s.insertTasks([task('k-4', 4)]);
        expect(await s.getTask('k-4')).not.toBeNull();
      });

      it('commits writes in the order they were made: the last write of a task is what stays', async () => {
        const s = await open();
        const t = task('o-1', 1);
        await s.insertTasks([t]);
        const writes = [
          s.recordStart({ ...t, status: 'in_progress', assignedTo: 'a', attempts: 1, startedAt: 1, leaseExpiresAt: 100 }),
          s.saveTask({ ...t, status: 'pending', attempts: 1, assignedTo: null }),
          s.recordStart({ ...t, status: 'in_progress', assignedTo: 'b', attempts: 2, startedAt: 2, leaseExpiresAt: 200 }),
        ];
        await Promise.all(writes);
        expect(await s.getTask('o-1')).toMatchObject({ status: 'in_progress', assignedTo: 'b', attempts: 2, leaseExpiresAt: 200 });
      });
    });

    describe('fleet', () => {
      it('round-trips devices, pages them in id order, and keeps samples, pins and connectivity', async () => {
        const s = await open();
        const devices = Array.from({ length: 7 }, (_, k) => device(`dev-${String(k).padStart(2, '0')}`));
        await s.upsertDevices(devices);
        const first = await s.loadDevices('', 3);
        expect(first.map((d) => d.id)).toEqual(['dev-00', 'dev-01', 'dev-02']);
        const rest = await s.loadDevices('dev-02', 100);
        expect(rest.map((d) => d.id)).toEqual(['dev-03', 'dev-04', 'dev-05', 'dev-06']);
        expect(first[0]).toEqual(devices[0]);

        // An update of attributes without metrics keeps the metrics it has.
        await s.saveDeviceSamples([{ id: 'dev-01', battery: null, charging: null, cpu: 55, memory: 44, disk: 33, drain: 1.5, cpuTrend: 0.5, impact: 0.25, sampledAt: 777 }]);
        await s.upsertDevices([{ ...(devices[1] as DeviceRecord), site: 'Pune', metrics: null, sampledAt: null }]);
        await s.setDevicePin('dev-01', 'canary');
        await s.setDeviceConnectivity('dev-01', 'offline');
        const [d1] = await s.loadDevices('dev-00', 1);
        expect(d1).toMatchObject({ id: 'dev-01', site: 'Pune', metrics: { battery: null, charging: null, cpu: 55, memory: 44, disk: 33 }, drain: 1.5, cpuTrend: 0.5, impact: 0.25, sampledAt: 777, pinRing: 'canary', connectivity: 'offline' });
        await s.setDevicePin('dev-01', null);
        expect((await s.loadDevices('dev-00', 1))[0]?.pinRing).toBeNull();
      });

      it("keeps a device's metrics history from the samples marked as points, pages the newest, and prunes the old", async () => {
        const s = await open();
        await s.upsertDevices([device('h-1'), device('h-2')]);
        const sample = (id: string, at: number, cpu: number, history: boolean) => ({
          id, battery: at === 300 ? null : 50, charging: at === 300 ? null : false, cpu, memory: 40, disk: 30, drain: 0, cpuTrend: 0, impact: 0, sampledAt: at,
          ...(history ? { history: { score: at === 100 ? null : 80 + cpu / 10 } } : {}),
        });
        await s.saveDeviceSamples([sample('h-1', 100, 10, true), sample('h-2', 100, 99, true)]);
        await s.saveDeviceSamples([sample('h-1', 150, 15, false)]);
        await s.saveDeviceSamples([sample('h-1', 200, 20, true)]);
        await s.saveDeviceSamples([sample('h-1', 300, 30, true)]);
        // The latest sample is the device's, whether or not it is also a point of its history.
        expect((await s.loadDevices('', 1))[0]).toMatchObject({ id: 'h-1', sampledAt: 300 });
        expect(await s.deviceHistory('h-1', 0, 10)).toEqual([
          { at: 100, battery: 50, charging: false, cpu: 10, memory: 40, disk: 30, score: null },
          { at: 200, battery: 50, charging: false, cpu: 20, memory: 40, disk: 30, score: 82 },
          { at: 300, battery: null, charging: null, cpu: 30, memory: 40, disk: 30, score: 83 },
        ]);
        // The newest `limit` points, oldest first; `since` bounds them from below.
        expect((await s.deviceHistory('h-1', 0, 2)).map((p) => p.at)).toEqual([200, 300]);
        expect((await s.deviceHistory('h-1', 150, 10)).map((p) => p.at)).toEqual([200, 300]);
        expect(await s.deviceHistory('nobody', 0, 10)).toEqual([]);
        expect(await s.pruneDeviceHistory(200)).toBe(2);
        expect((await s.deviceHistory('h-1', 0, 10)).map((p) => p.at)).toEqual([200, 300]);
        expect(await s.deviceHistory('h-2', 0, 10)).toEqual([]);
      });

      it('logs ring moves in order, pages them by time, and folds them into a snapshot with a watermark', async () => {
        const s = await open();
        await s.upsertDevices([device('d-1'), device('d-2')]);
        expect(await s.ringSnapshotWatermark()).toBe(0);
        await s.applyRingMoves([
          { agentId: 'd-1', from: 'unassigned', to: 'canary', reason: 'first', at: 100 },
          { agentId: 'd-2', from: 'unassigned', to: 'prod', reason: 'first', at: 100 },
        ]);
        await s.applyRingMoves([{ agentId: 'd-1', from: 'canary', to: 'dev', reason: 'health', at: 200 }]);
        const all = await s.listRingMoves();
        expect(all.map((m) => [m.agentId, m.to, m.at])).toEqual([['d-1', 'canary', 100], ['d-2', 'prod', 100], ['d-1', 'dev', 200]]);
        expect(all[0]?.id).toBeLessThan(all[1]?.id as number);
        expect((await s.listRingMoves('d-1')).map((m) => m.to)).toEqual(['canary', 'dev']);
        // Paged by (at, id): the cursor is the last move's time and id.
        const page1 = await s.listRingMovesSince(0, 0, 2);
        expect(page1).toHaveLength(2);
        const last = page1.at(-1) as (typeof page1)[number];
        const page2 = await s.listRingMovesSince(last.at, last.id, 2);
        expect(page2.map((m) => m.to)).toEqual(['dev']);
        expect(await s.listRingMovesSince(150, 0, 10)).toHaveLength(1);

        await s.snapshotRings([{ id: 'd-1', ring: 'dev', movedAt: 200 }, { id: 'd-2', ring: 'prod', movedAt: 100 }]);
        const mark = await s.ringSnapshotWatermark();
        expect(mark).toBe(all.at(-1)?.id);
        expect(await s.ringMovesAfterSnapshot(mark, 10)).toEqual([]);
        await s.applyRingMoves([{ agentId: 'd-2', from: 'prod', to: 'stage', reason: 'operator', at: 300 }]);
        expect((await s.ringMovesAfterSnapshot(mark, 10)).map((m) => m.to)).toEqual(['stage']);
        expect((await s.loadDevices('', 10)).map((d) => [d.id, d.ring, d.movedAt])).toEqual([['d-1', 'dev', 200], ['d-2', 'prod', 100]]);
      });
    });

    describe('deployments', () => {
      it('round-trips a deployment, its executions and its gate evaluations; lists newest first; loads the active ones', async () => {
        const s = await open();
        const seq1 = await s.insertDeployment(deployment('dep-1'));
        const seq2 = await s.insertDeployment(deployment('dep-2'));
        expect(seq2).toBeGreaterThan(seq1);
        const d1 = { ...deployment('dep-1'), seq: seq1 };
        expect(await s.getDeployment('dep-1')).toEqual(d1);
        expect(await s.getDeployment('missing')).toBeNull();

        await s.saveExecutions(seq1, [execution('x-1'), execution('x-2')]);
        await s.saveExecutions(seq1, [{ ...execution('x-1'), state: 'succeeded', endedAt: 50, cpuDelta: 1.5, memoryDelta: -2, drainDelta: 0.25, observed: mainsMetrics() }]);
        const execs = await s.getExecutions(seq1);
        expect(execs).toHaveLength(2);
        expect(execs.find((e) => e.deviceId === 'x-1')).toMatchObject({ state: 'succeeded', cpuDelta: 1.5, baseline: metrics(), observed: mainsMetrics() });

        // A device's executions across deployments, newest deployment first, each with its deployment's id.
        await s.saveExecutions(seq2, [{ ...execution('x-1'), state: 'in_progress' }]);
        expect((await s.deviceExecutions('x-1', 10)).map((r) => [r.deploymentId, r.execution.state])).toEqual([['dep-2', 'in_progress'], ['dep-1', 'succeeded']]);
        expect((await s.deviceExecutions('x-1', 1)).map((r) => r.deploymentId)).toEqual(['dep-2']);
        expect(await s.deviceExecutions('x-none', 10)).toEqual([]);

        const wait: GateEvaluation = { stage: 0, ring: 'canary', at: 10, verdict: 'wait', reason: 'too few', figures: { judged: 1 } };
        await s.insertGateEvaluation(seq1, wait);
        await s.saveDeployment({ ...d1, status: 'completed', endedAt: 99, detail: { outcome: 'done' } }, { evaluations: [{ ...wait, at: 20, verdict: 'pass' }] });
        expect((await s.getGateEvaluations(seq1)).map((g) => g.verdict)).toEqual(['wait', 'pass']);
        expect(await s.getDeployment('dep-1')).toMatchObject({ status: 'completed', endedAt: 99, detail: { outcome: 'done' } });

        expect((await s.listDeployments(10)).map((d) => d.id)).toEqual(['dep-2', 'dep-1']);
        expect((await s.listDeployments(10, seq2)).map((d) => d.id)).toEqual(['dep-1']);
        expect((await s.loadActiveDeployments()).map((d) => d.id)).toEqual(['dep-2']);
      });

      it('saves a transition whole or not at all: a bad execution in it leaves the record as it was', async () => {
        const s = await open();
        const seq = await s.insertDeployment(deployment('dep-a'));
        const rec = { ...deployment('dep-a'), seq };
        // A NaN timestamp cannot be stored in an integer column of any adapter.
        const bad = { ...execution('x-bad'), queuedAt: Number.NaN };
        await expect(s.saveDeployment({ ...rec, status: 'cancelled', endedAt: 5 }, { executions: [execution('x-ok'), bad] })).rejects.toThrow();
        expect((await s.getDeployment('dep-a'))?.status).toBe('in_progress');
        expect(await s.getExecutions(seq)).toEqual([]);
      });
    });

    describe('security', () => {
      it('keeps API tokens (only their hash), revokes once, and counts every one ever made', async () => {
        const s = await open();
        expect(await s.countApiTokens()).toBe(0);
        const token: ApiToken = { id: 'tok-1', name: 'ops', role: 'operator', createdAt: 1, createdBy: 'cli', revokedAt: null };
        await s.insertApiToken(token, 'hash-1');
        await s.insertApiToken({ ...token, id: 'tok-2', name: 'viewer', role: 'viewer', createdAt: 2 }, 'hash-2');
        expect(await s.getApiToken('tok-1')).toEqual({ token, secretHash: 'hash-1' });
        expect(await s.getApiToken('missing')).toBeNull();
        expect((await s.listApiTokens()).map((t) => t.id)).toEqual(['tok-1', 'tok-2']);
        expect(await s.revokeApiToken('tok-1', 10)).toBe(true);
        expect(await s.revokeApiToken('tok-1', 20)).toBe(false);
        expect(await s.revokeApiToken('missing', 20)).toBe(false);
        expect((await s.getApiToken('tok-1'))?.token.revokedAt).toBe(10);
        expect(await s.countApiTokens()).toBe(2);
      });

      it('spends enrollment tokens within their uses, expiry and revocation, one use per commit', async () => {
        const s = await open();
        const token: EnrollmentToken = { id: 'enr-1', name: 'lab', maxUses: 2, uses: 0, expiresAt: 1000, requireApproval: true, createdAt: 1, createdBy: 'admin', revokedAt: null };
        await s.insertEnrollmentToken(token, 'h');
        expect(await s.getEnrollmentToken('enr-1')).toEqual({ token, secretHash: 'h' });
        const spent = await Promise.all([s.consumeEnrollmentToken('enr-1', 10), s.consumeEnrollmentToken('enr-1', 10), s.consumeEnrollmentToken('enr-1', 10)]);
        expect(spent.filter(Boolean)).toHaveLength(2);
        expect((await s.getEnrollmentToken('enr-1'))?.token.uses).toBe(2);
        await s.insertEnrollmentToken({ ...token, id: 'enr-2', maxUses: null }, 'h2');
        expect(await s.consumeEnrollmentToken('enr-2', 999)).toBe(true);
        expect(await s.consumeEnrollmentToken('enr-2', 1000)).toBe(false);
        expect(await s.revokeEnrollmentToken('enr-2', 5)).toBe(true);
        expect(await s.revokeEnrollmentToken('enr-2', 6)).toBe(false);
        expect(await s.consumeEnrollmentToken('enr-2', 10)).toBe(false);
        expect((await s.listEnrollmentTokens()).map((t) => t.id)).toEqual(['enr-1', 'enr-2']);
      });

      it('appends audit entries and pages them by id, filtered by actor, action and time', async () => {
        const s = await open();
        for (let k = 0; k < 5; k++) {
          await s.appendAudit({ at: 100 + k, actor: k % 2 === 0 ? 'ops' : 'admin', actorTokenId: null, role: 'operator', action: k < 3 ? 'POST /api/v1/tasks' : 'PUT /api/v1/rings', target: `t-${k}`, outcome: 'ok', status: 201, address: '127.0.0.1' });
        }
        const first = await s.listAudit({ limit: 2 });
        expect(first.map((e) => e.target)).toEqual(['t-0', 't-1']);
        const next = await s.listAudit({ limit: 10, afterId: (first.at(-1) as { id: number }).id });
        expect(next.map((e) => e.target)).toEqual(['t-2', 't-3', 't-4']);
        expect((await s.listAudit({ limit: 10, actor: 'admin' })).map((e) => e.target)).toEqual(['t-1', 't-3']);
        expect((await s.listAudit({ limit: 10, action: 'PUT /api/v1/rings' })).map((e) => e.target)).toEqual(['t-3', 't-4']);
        expect((await s.listAudit({ limit: 10, since: 103 })).map((e) => e.target)).toEqual(['t-3', 't-4']);
      });
    });

    describe('agents', () => {
      it('round-trips assets and agents, registration, heartbeats, connectivity, device and approval', async () => {
        const s = await open();
        expect(await s.upsertAsset({ id: 'asset-1', name: 'LAPTOP-1', site: 'Pune' }, 1)).toEqual({ created: true });
        expect(await s.upsertAsset({ id: 'asset-1', name: 'LAPTOP-1', site: 'Chennai' }, 2)).toEqual({ created: false });
        expect(await s.getAsset('asset-1')).toEqual({ id: 'asset-1', name: 'LAPTOP-1', site: 'Chennai' });
        expect(await s.getAsset('missing')).toBeNull();
        await s.upsertAsset({ id: 'asset-2' }, 3);
        expect((await s.listAssets()).map((a) => a.id)).toEqual(['asset-1', 'asset-2']);

        const a = agent('agent-1', { assetId: 'asset-1', credentialHash: 'ch', approval: 'pending', kind: 'network' });
        await s.insertAgent(a);
        await s.insertAgent(agent('agent-2', { createdAt: 20 }));
        expect(await s.getAgent('agent-1')).toEqual(a);
        expect(await s.getAgent('missing')).toBeNull();
        expect((await s.findAgentByAsset('asset-1'))?.id).toBe('agent-1');

        await s.recordRegistration('agent-1', info(10), 100);
        expect(await s.getAgent('agent-1')).toMatchObject({ connectivity: 'online', registeredAt: 100, lastHeartbeatAt: 100, device: info(10) });
        await s.recordHeartbeat('agent-1', info(20), 200);
        await s.recordHeartbeats([{ id: 'agent-1', device: info(30), at: 300 }, { id: 'agent-2', device: info(40), at: 300 }]);
        expect(await s.getAgent('agent-1')).toMatchObject({ registeredAt: 100, lastHeartbeatAt: 300, device: info(30) });
        expect((await s.getAgent('agent-2'))?.device).toEqual(info(40));
        await s.updateAgentDevice('agent-2', info(50));
        expect((await s.getAgent('agent-2'))?.device).toEqual(info(50));
        await s.setAgentApproval('agent-1', 'approved');
        // An approved agent carries no approval field (only a pending one does).
        expect((await s.getAgent('agent-1'))?.approval).toBeUndefined();
        await s.setAgentApproval('agent-2', 'pending');
        expect((await s.getAgent('agent-2'))?.approval).toBe('pending');

        await s.setConnectivity('agent-1', 'decommissioned');
        // A decommissioned agent is listed no more, frees its asset, and its heartbeats change nothing.
        expect((await s.listAgents()).map((x) => x.id)).toEqual(['agent-2']);
        expect(await s.findAgentByAsset('asset-1')).toBeNull();
        await s.recordHeartbeat('agent-1', info(60), 600);
        expect(await s.getAgent('agent-1')).toMatchObject({ connectivity: 'decommissioned', lastHeartbeatAt: 300 });
      });
    });

    describe('advice', () => {
      it('round-trips advice, lists it newest first by subject and trigger with a cursor, and records its application once', async () => {
        const s = await open();
        const seqs: number[] = [];
        for (let k = 0; k < 5; k++) {
          seqs.push(await s.insertAdvice(advice(`adv-${k}`, k < 3 ? { deployment: 'dep-1' } : { ring: 'canary' }, k === 1 ? 'halt' : 'request', 100 + k)));
        }
        expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
        const one = await s.getAdvice('adv-0');
        expect(one).toEqual({ ...advice('adv-0', { deployment: 'dep-1' }, 'request', 100), seq: seqs[0] });
        expect(await s.getAdvice('missing')).toBeNull();
        expect((await s.listAdvice({}, 10)).map((a) => a.id)).toEqual(['adv-4', 'adv-3', 'adv-2', 'adv-1', 'adv-0']);
        const page = await s.listAdvice({ subject: 'deployment:dep-1' }, 2);
        expect(page.map((a) => a.id)).toEqual(['adv-2', 'adv-1']);
        expect((await s.listAdvice({ subject: 'deployment:dep-1' }, 2, page.at(-1)?.seq)).map((a) => a.id)).toEqual(['adv-0']);
        expect((await s.listAdvice({ subject: 'deployment:dep-1', trigger: 'halt' }, 10)).map((a) => a.id)).toEqual(['adv-1']);
        expect((await s.listAdvice({ subject: 'ring:canary' }, 10)).map((a) => a.subject)).toEqual([{ ring: 'canary' }, { ring: 'canary' }]);
        const applied = { at: 200, by: 'ops', actions: [{ action: 'halt' as const, target: 'dep-1', ok: true, detail: 'halted' }] };
        expect(await s.recordAdviceApplied('adv-0', applied)).toBe(true);
        expect(await s.recordAdviceApplied('adv-0', { ...applied, by: 'someone else' })).toBe(false);
        expect(await s.recordAdviceApplied('missing', applied)).toBe(false);
        expect((await s.getAdvice('adv-0'))?.applied).toEqual(applied);
        // An id is stored once.
        await expect(s.insertAdvice(advice('adv-0', { fleet: true }, 'request', 300))).rejects.toThrow();
        expect((await s.listAdvice({ subject: 'fleet' }, 10)).length).toBe(0);
      });
    });

    describe('durability', () => {
      it('a reopened store has everything that was committed, in every aggregate', async () => {
        const s = await open();
        await s.setMeta('boot', '7');
        await s.insertTasks([task('r-1', 1), task('r-2', 2, { idempotencyKey: 'rk' })]);
        await s.upsertDevices([device('rd-1')]);
        await s.applyRingMoves([{ agentId: 'rd-1', from: 'unassigned', to: 'canary', reason: 'first', at: 5 }]);
        const seq = await s.insertDeployment(deployment('rdep'));
        await s.saveExecutions(seq, [execution('rd-1')]);
        await s.insertApiToken({ id: 'rt', name: 'n', role: 'admin', createdAt: 1, createdBy: 'cli', revokedAt: null }, 'h');
        await s.insertAgent(agent('ra'));
        await s.insertAdvice(advice('radv', { fleet: true }, 'request', 9));
        // Writes not awaited one by one: each has committed once it resolves, and all of them before close.
        const last = s.saveTask({ ...task('r-1', 1), status: 'completed', attempts: 1, assignedTo: 'ra', startedAt: 1, completedAt: 2 });
        await last;
        const again = await reopen(s);
        expect(await again.getMeta('boot')).toBe('7');
        expect((await again.getTask('r-1'))?.status).toBe('completed');
        expect((await again.findTaskByIdempotencyKey('rk'))?.id).toBe('r-2');
        expect((await again.loadDevices('', 10)).map((d) => d.id)).toEqual(['rd-1']);
        expect(await again.listRingMoves('rd-1')).toHaveLength(1);
        expect((await again.getExecutions(seq)).map((e) => e.deviceId)).toEqual(['rd-1']);
        expect(await again.countApiTokens()).toBe(1);
        expect((await again.getAgent('ra'))?.id).toBe('ra');
        expect((await again.getAdvice('radv'))?.subject).toEqual({ fleet: true });
      });
    });

    // Last, after every other test of the suite (a file's tests run in order): no verb was left unchecked.
    it('called every verb of the port', () => {
      expect([...WRITE_VERBS, ...READ_VERBS].filter((v) => !called.has(v))).toEqual([]);
    });
  });
}

// ------------------------------------------------------------------ fixtures

export function task(id: string, seq: number, change: Partial<Task> = {}): Task {
  return {
    id, seq, type: 'process_data', parameters: { id }, priority: 0, status: 'pending', target: null, assignedTo: null, attempts: 0, attemptsBase: 0,
    maxAttempts: 3, backoff: { strategy: 'exponential', initialMs: 100, maxMs: 1000, jitter: true }, timeoutMs: 60_000, idempotencyKey: null,
    runAfter: null, deadline: null, leaseExpiresAt: null, createdAt: 1000 + seq, startedAt: null, completedAt: null, result: null, error: null,
    ...change,
  };
}

export function device(id: string): DeviceRecord {
  return {
    id, site: 'Coimbatore', department: 'IT', manufacturer: 'Dell', model: 'Latitude 7420', osName: 'Windows 11', tags: ['a', 'b'],
    metrics: { battery: 80, charging: false, cpu: 20, memory: 40, disk: 60 }, drain: 2, cpuTrend: 0, impact: 0, sampledAt: 10,
    ring: null, movedAt: 0, pinRing: null, connectivity: 'online', createdAt: 1,
  };
}

export function info(cpu: number): DeviceInfo {
  return { name: 'host', osVersion: '11', battery: null, charging: null, cpu: cpu, memory: 50, disk: 60 };
}

export function agent(id: string, change: Partial<Agent> = {}): Agent {
  return {
    id, kind: 'simulated', capabilities: ['process_data', 'monitor'], connectivity: 'offline', registeredAt: null, lastHeartbeatAt: null,
    device: null, ring: 'unassigned', assetId: null, createdAt: 10, ...change,
  };
}

function advice(id: string, subject: AdviceSubject, trigger: AdviceTrigger, createdAt: number): Omit<AdviceRecord, 'seq'> {
  return {
    id, subject, trigger, createdAt, decision: 'deployment' in subject ? 'halt' : null, risk: 'high', confidence: 0.9,
    rings: [{ ring: 'canary', risk: 'high', reasons: ['CPU +30 points'] }], moves: [{ deviceId: 'd-1', from: 'prod', to: 'canary', reason: 'risk 80' }],
    summary: 'Halt', evidence: { analyses: [{ ring: 'canary', score: 80 }] }, provider: { name: 'analyser', model: null, fallback: null },
    cost: { inputTokens: 0, outputTokens: 0, ms: 3 }, applied: null,
  };
}

export function metrics(): DeviceMetrics {
  return { battery: 70, charging: false, cpu: 30, memory: 40, disk: 50, drain: 1, cpuTrend: 2.5 };
}

/** A machine without a battery. */
function mainsMetrics(): DeviceMetrics {
  return { ...metrics(), battery: null, charging: null, drain: 0 };
}

export function deployment(id: string): Omit<DeploymentRecord, 'seq'> {
  return {
    id, kind: 'rollout',
    spec: { name: id, payload: { type: 'deploy', params: { v: 2 } }, stages: [], maintenanceWindows: [], autoRollback: false, rollbackPayload: { type: 'deploy', params: { v: 1 } } },
    status: 'in_progress', stage: 0, phase: 'dispatching', soakUntil: null, gateResetAt: 0, haltReason: null, detail: {}, createdAt: 1, startedAt: 1, endedAt: null,
  };
}

export function execution(deviceId: string): Execution {
  return {
    deviceId, stage: 0, state: 'queued', taskId: null, reason: null, baseline: metrics(), observed: null, cpuDelta: null, memoryDelta: null,
    drainDelta: null, rollbackTaskId: null, queuedAt: 5, startedAt: null, endedAt: null, observedAt: null,
  };
}
