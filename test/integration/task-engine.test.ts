import { describe, expect, it } from 'vitest';
import type { Task } from '../../src/domain/types.js';
import { TASK_TYPES } from '../../src/domain/types.js';
import type { TaskHandler } from '../../src/sim/task-handlers.js';
import type { Harness } from '../support/harness.js';
import { harnessPerTest, taskOf, waitForStatus } from '../support/harness.js';

// Every agent offers every task type, so each test decides who runs what by targets and load alone.
const harness = harnessPerTest({ capabilities: [...TASK_TYPES] });
async function spawn(h: Harness, n: number, assets: ({ site: string; model: string } | undefined)[] = []): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const asset = assets[i];
    ids.push(asset ? (await h.orchestrator.agents.addAsset({ id: `asset-${i}`, name: `A${i}`, ...asset })).agentId : await h.orchestrator.agents.spawn());
  }
  await h.advance(50);
  return ids;
}
const submit = async (h: Harness, input: Parameters<Harness['orchestrator']['tasks']['submit']>[0][number]) =>
  ((await h.orchestrator.tasks.submit([input]))[0] as { task: Task; created: boolean }).task;

/** A handler that runs until released, recording the order of starts. */
function gate() {
  const started: string[] = [];
  const waiting: (() => void)[] = [];
  const handler: TaskHandler = async (p, ctx) => {
    started.push(typeof p.name === 'string' ? p.name : '?');
    await new Promise<void>((resolve, reject) => {
      waiting.push(resolve);
      ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
    });
    return p.name ?? null;
  };
  return { started, handler, releaseAll: () => waiting.splice(0).forEach((r) => r()) };
}

describe('targets', () => {
  it('a task runs only on its target agent, ring or asset selector', async () => {
    const h = await harness();
    const ids = await spawn(h, 4, [{ site: 'HQ', model: 'X1' }, { site: 'Plant', model: 'X1' }, { site: 'Plant', model: 'T14' }, undefined]);
    const views = await h.orchestrator.agents.views();
    const byId = new Map(views.map((v) => [v.agent.id, v]));
    const agentTarget = ids[2] as string;
    const ring = byId.get(ids[3] as string)?.agent.ring;
    if (ring === undefined || ring === 'unassigned') throw new Error('agents have rings by now');
    for (let i = 0; i < 5; i++) {
      const a = await submit(h, { type: 'health_check', target: { agentId: agentTarget } });
      const r = await submit(h, { type: 'health_check', target: { ring } });
      const s = await submit(h, { type: 'health_check', target: { selector: { site: 'Plant', model: 'X1' } } });
      expect((await waitForStatus(h, a.id, 'completed')).assignedTo).toBe(agentTarget);
      expect(byId.get((await waitForStatus(h, r.id, 'completed')).assignedTo as string)?.agent.ring).toBe(ring);
      expect((await waitForStatus(h, s.id, 'completed')).assignedTo).toBe(ids[1]);
    }
  });

  it('a target no agent matches waits, without holding up other tasks', async () => {
    const h = await harness();
    await spawn(h, 2);
    const nobody = await submit(h, { type: 'monitor', priority: 100, target: { selector: { site: 'Mars' } } });
    const other = await submit(h, { type: 'monitor', parameters: { durationSec: 0 } });
    await waitForStatus(h, other.id, 'completed', 5000);
    expect((await taskOf(h, nobody.id)).status).toBe('pending');
  });
});

describe('concurrency, leases and timeouts', () => {
  it('an agent runs at most its concurrency limit at once', async () => {
    const g = gate();
    const h = await harness({ handlers: { process_data: g.handler }, settings: { agentConcurrency: 2 } });
    const [only] = await spawn(h, 1);
    const tasks = [];
    for (let i = 0; i < 5; i++) tasks.push(await submit(h, { type: 'process_data', parameters: { name: `t${i}` } }));
    await h.advance(100);
    expect(g.started).toEqual(['t0', 't1']);
    expect((await h.orchestrator.agents.view(only as string)).runningTasks).toHaveLength(2);
    g.releaseAll();
    await h.advance(100);
    expect(g.started).toEqual(['t0', 't1', 't2', 't3']);
  });

  it('heartbeats renew the lease, so a long task on a live agent keeps running past the lease length', async () => {
    const slow: TaskHandler = async (_p, ctx) => {
      await ctx.clock.sleep(50_000, ctx.signal);
      return 'done';
    };
    const h = await harness({ handlers: { deploy: slow } });
    await spawn(h, 1);
    const t = await submit(h, { type: 'deploy', timeoutMs: 120_000 });
    await h.advance(30_000);
    const running = await taskOf(h, t.id);
    expect(running.status).toBe('in_progress');
    expect(running.leaseExpiresAt).toBeGreaterThan(h.clock.now());
    const done = await waitForStatus(h, t.id, 'completed');
    expect(done.attempts).toBe(1);
  });

  it('a task whose attempt is running keeps an unexpired lease; after the agent stops answering, it is requeued with the attempt counted', async () => {
    const slow: TaskHandler = async (_p, ctx) => {
      await ctx.clock.sleep(200_000, ctx.signal);
      return 'never';
    };
    const h = await harness({ handlers: { deploy: slow } });
    const [a] = await spawn(h, 1);
    const t = await submit(h, { type: 'deploy', timeoutMs: 600_000, maxAttempts: 1 });
    await h.advance(100);
    h.fleet.get(a as string)?.pause();
    await h.advance(25_000);
    const dead = await taskOf(h, t.id);
    expect(dead.status).toBe('dead');
    expect(dead.attempts).toBe(1);
    expect((await h.orchestrator.tasks.get(t.id)).attempts[0]?.outcome).toMatch(/agent_lost|lease_expired/);
  });
});

describe('results are fenced by attempt', () => {
  it('a result for a stale attempt is refused with 409, one from an agent that never ran the task is not found (404), and neither changes anything', async () => {
    const g = gate();
    const h = await harness({ handlers: { process_data: g.handler } });
    const [a, b] = await spawn(h, 2);
    const t = await submit(h, { type: 'process_data', parameters: { name: 'x' } });
    await h.advance(50);
    const running = await taskOf(h, t.id);
    const holder = running.assignedTo as string;
    const other = holder === a ? (b as string) : (a as string);
    await expect(h.orchestrator.tasks.reportResult(holder, t.id, running.attempts + 1, { success: true, result: 'forged' })).rejects.toMatchObject({ code: 'ORCH_STALE_ATTEMPT', status: 409 });
    await expect(h.orchestrator.tasks.reportResult(other, t.id, running.attempts, { success: true, result: 'forged' })).rejects.toMatchObject({ code: 'ORCH_TASK_NOT_FOUND', status: 404, message: 'task not found' });
    await expect(h.orchestrator.tasks.reportResult(holder, 'no-such-task', 1, { success: true })).rejects.toMatchObject({ code: 'ORCH_TASK_NOT_FOUND', status: 404 });
    expect(await taskOf(h, t.id)).toEqual(running);
    g.releaseAll();
    const done = await waitForStatus(h, t.id, 'completed');
    expect(done.result).toBe('x');
    await expect(h.orchestrator.tasks.reportResult(holder, t.id, done.attempts, { success: false, error: 'late' })).rejects.toMatchObject({ code: 'ORCH_STALE_ATTEMPT' });
    // The other agent still learns nothing of it, finished or not.
    await expect(h.orchestrator.tasks.reportResult(other, t.id, done.attempts, { success: false, error: 'late' })).rejects.toMatchObject({ code: 'ORCH_TASK_NOT_FOUND', message: 'task not found' });
    expect(await taskOf(h, t.id)).toEqual(done);
  });
});

describe('idempotency, cancel, retry', () => {
  it('a repeated idempotency key returns the original task, also after a restart', async () => {
    const h = await harness();
    const first = await h.orchestrator.tasks.submit([{ type: 'monitor', idempotencyKey: 'nightly-42' }]);
    const again = await h.orchestrator.tasks.submit([{ type: 'deploy', idempotencyKey: 'nightly-42' }, { type: 'deploy', idempotencyKey: 'other' }, { type: 'deploy', idempotencyKey: 'other' }]);
    expect(again[0]).toMatchObject({ created: false, task: { id: first[0]?.task.id, type: 'monitor' } });
    expect(again[1]?.created).toBe(true);
    expect(again[2]).toMatchObject({ created: false, task: { id: again[1]?.task.id } });
    await h.stop();
    const h2 = await harness({ dbPath: h.dbPath, clock: h.clock });
    const later = await h2.orchestrator.tasks.submit([{ type: 'deploy', idempotencyKey: 'nightly-42' }]);
    expect(later[0]).toMatchObject({ created: false, task: { id: first[0]?.task.id } });
    expect(Object.values(h2.orchestrator.tasks.countsByStatus()).reduce((a, b) => a + b, 0)).toBe(2);
  });

  it('cancel: a pending task never runs; a running one is stopped on its agent and its late result ignored', async () => {
    const g = gate();
    const h = await harness({ handlers: { process_data: g.handler } });
    const [a] = await spawn(h, 1);
    const running = await submit(h, { type: 'process_data', parameters: { name: 'running' } });
    const waiting = await submit(h, { type: 'process_data', parameters: { name: 'waiting' } });
    await h.advance(50);
    expect(h.fleet.get(a as string)?.runningTasks()).toEqual([running.id]);
    const c1 = await h.orchestrator.tasks.cancel(waiting.id);
    expect(c1.status).toBe('cancelled');
    const c2 = await h.orchestrator.tasks.cancel(running.id);
    expect(c2.status).toBe('cancelled');
    await h.advance(50);
    expect(h.fleet.get(a as string)?.runningTasks()).toEqual([]);
    g.releaseAll();
    await h.advance(1000);
    expect(g.started).toEqual(['running']);
    expect((await taskOf(h, running.id)).status).toBe('cancelled');
    expect((await h.orchestrator.tasks.get(running.id)).attempts[0]?.outcome).toBe('cancelled');
    await expect(h.orchestrator.tasks.cancel(running.id)).rejects.toMatchObject({ code: 'ORCH_TASK_STATE', status: 409 });
    await expect(h.orchestrator.tasks.cancel('nope')).rejects.toMatchObject({ status: 404 });
  });

  it('retry gives a dead task a new run with attempt numbers that keep counting; a completed task cannot be retried', async () => {
    let fail = true;
    const flaky: TaskHandler = async (_p, ctx) => {
      await ctx.clock.sleep(10, ctx.signal);
      if (fail) throw new Error('down');
      return 'up';
    };
    const h = await harness({ handlers: { monitor: flaky } });
    await spawn(h, 1);
    const t = await submit(h, { type: 'monitor', maxAttempts: 2, backoff: { strategy: 'fixed', initialMs: 100, maxMs: 100, jitter: false } });
    await waitForStatus(h, t.id, 'dead');
    expect((await h.orchestrator.tasks.list({ status: 'dead' }, 10)).map((x) => x.id)).toEqual([t.id]);
    fail = false;
    const retried = await h.orchestrator.tasks.retry(t.id);
    expect(retried.status).toBe('pending');
    const done = await waitForStatus(h, t.id, 'completed');
    expect(done.attempts).toBe(3);
    expect((await h.orchestrator.tasks.get(t.id)).attempts.map((x) => x.outcome)).toEqual(['failed', 'failed', 'succeeded']);
    await expect(h.orchestrator.tasks.retry(t.id)).rejects.toMatchObject({ code: 'ORCH_TASK_STATE', status: 409 });
  });
});

describe('schedule', () => {
  it('runAfter holds a task back until then', async () => {
    const h = await harness();
    await spawn(h, 1);
    const t = await submit(h, { type: 'monitor', parameters: { durationSec: 0 }, runAfter: h.clock.now() + 60_000 });
    await h.advance(59_000);
    expect((await taskOf(h, t.id)).status).toBe('pending');
    const done = await waitForStatus(h, t.id, 'completed', 5000);
    expect(done.startedAt).toBeGreaterThanOrEqual(t.createdAt + 60_000);
  });

  it('a task still waiting at its deadline expires and never runs', async () => {
    const g = gate();
    const h = await harness({ handlers: { process_data: g.handler } });
    await spawn(h, 1);
    await submit(h, { type: 'process_data', parameters: { name: 'busy' } });
    const late = await submit(h, { type: 'process_data', parameters: { name: 'late' }, deadline: h.clock.now() + 10_000 });
    const expired = await waitForStatus(h, late.id, 'expired', 20_000);
    expect(expired.error).toMatch(/deadline .* passed before the task could start/);
    g.releaseAll();
    await h.advance(1000);
    expect(g.started).toEqual(['busy']);
    expect(expired.attempts).toBe(0);
  });

  it('aging: a low-priority task that has waited long enough goes before newer high-priority work', async () => {
    const g = gate();
    const h = await harness({ handlers: { process_data: g.handler }, settings: { taskAgingMs: 10_000 } });
    await spawn(h, 1);
    await submit(h, { type: 'process_data', parameters: { name: 'blocker' } });
    await h.advance(50);
    await submit(h, { type: 'process_data', parameters: { name: 'old-low' }, priority: 0 });
    await h.advance(35_000);
    // Three levels higher, but 35 s younger: with 10 s per level, the old task is ahead.
    await submit(h, { type: 'process_data', parameters: { name: 'new-high' }, priority: 3 });
    await submit(h, { type: 'process_data', parameters: { name: 'new-higher' }, priority: 5 });
    g.releaseAll();
    await h.advance(50);
    g.releaseAll();
    await h.advance(50);
    g.releaseAll();
    await h.advance(50);
    expect(g.started).toEqual(['blocker', 'new-higher', 'old-low', 'new-high']);
  });

  it('a batch with one bad task stores none of them', async () => {
    const h = await harness();
    await expect(h.orchestrator.tasks.submit([{ type: 'monitor' }, { type: 'teleport' }])).rejects.toMatchObject({ code: 'ORCH_UNKNOWN_TASK_TYPE' });
    expect(Object.values(h.orchestrator.tasks.countsByStatus()).every((n) => n === 0)).toBe(true);
    expect(await h.orchestrator.tasks.list({}, 10)).toEqual([]);
  });
});
