import { describe, expect, it } from 'vitest';
import { isHealthy } from '../../src/domain/health.js';
import type { TaskType } from '../../src/domain/types.js';
import { TASK_TYPES } from '../../src/domain/types.js';
import type { TaskHandler } from '../../src/sim/task-handlers.js';
import { seededRng } from '../../src/domain/random.js';
import type { Harness } from '../support/harness.js';
import { advanceUntil, harnessPerTest, submitTask, taskOf, waitForStatus } from '../support/harness.js';

const harness = harnessPerTest();

const ALL = [...TASK_TYPES];

async function spawnAll(h: Harness, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(await h.orchestrator.agents.spawn());
  await h.advance(10);
  return ids;
}

describe('agents', () => {
  it('register, heartbeat and get a ring from their first heartbeat, each move stored with a reason', async () => {
    const h = await harness();
    const ids = await spawnAll(h, 4);
    await h.advance(100);
    const views = await h.orchestrator.agents.views();
    expect(views.map((v) => v.agent.connectivity)).toEqual(['online', 'online', 'online', 'online']);
    for (const v of views) {
      expect(v.agent.ring).not.toBe('unassigned');
      expect(h.fleet.get(v.agent.id)?.currentRing).toBe(v.agent.ring);
      const moves = await h.orchestrator.agents.ringMoves(v.agent.id);
      expect(moves).toHaveLength(1);
      expect(moves[0]).toMatchObject({ from: 'unassigned', to: v.agent.ring });
      expect(moves[0]?.reason).toMatch(/^first heartbeat/);
    }
    const counts = h.orchestrator.fleet.ringCounts();
    expect(counts.unassigned).toBe(0);
    expect((counts.canary ?? 0) + (counts.dev ?? 0) + (counts.stage ?? 0) + (counts.prod ?? 0)).toBe(ids.length);
  });

  it('send heartbeats every HEARTBEAT_INTERVAL with metrics that drift', async () => {
    const h = await harness();
    const [id] = await spawnAll(h, 1);
    const before = (await h.store.getAgent(id as string))?.lastHeartbeatAt as number;
    await h.advance(5000);
    const after = (await h.store.getAgent(id as string))?.lastHeartbeatAt as number;
    expect(after - before).toBe(5000);
    const device1 = h.fleet.get(id as string)?.snapshot();
    await h.advance(30_000);
    const stored = (await h.store.getAgent(id as string))?.device;
    expect(stored).not.toEqual(device1);
    // What the master stores is what the device reported at its last heartbeat.
    expect(stored?.cpu).toBeGreaterThanOrEqual(5);
  });

  it('an agent silent past AGENT_TIMEOUT goes offline, its task returns to the queue counting an attempt, and it comes back', async () => {
    let calls = 0;
    const slow: TaskHandler = async (_p, ctx) => {
      calls++;
      await ctx.clock.sleep(30_000, ctx.signal);
      return { ran: calls };
    };
    // Every agent can run every type, so the test decides who runs what by who is free.
    const h = await harness({ handlers: { process_data: slow }, settings: { taskTimeoutMs: 600_000 }, capabilities: ALL });
    const [a, b] = await spawnAll(h, 2);
    // Occupy b so that the task lands on a.
    const blocker = await submitTask(h, { type: 'process_data' });
    const task = await submitTask(h, { type: 'process_data' });
    await h.advance(50);
    const holder = (await taskOf(h, task.id)).assignedTo as string;
    const other = holder === a ? (b as string) : (a as string);
    expect((await taskOf(h, blocker.id)).assignedTo).toBe(other);

    h.fleet.get(holder)?.pause();
    await h.advance(21_000 + 1000);
    const view = await h.orchestrator.agents.view(holder);
    expect(view.agent.connectivity).toBe('offline');
    expect(view.status).toBe('offline');
    const requeued = await taskOf(h, task.id);
    expect(requeued.attempts).toBe(1);
    expect(['pending', 'in_progress']).toContain(requeued.status);
    expect(requeued.error).toMatch(/went offline/);

    // It runs on the other agent as attempt 2 and completes there.
    const done = await waitForStatus(h, task.id, 'completed');
    expect(done.assignedTo).toBe(other);
    expect(done.attempts).toBe(2);
    const history = (await h.orchestrator.tasks.get(task.id)).attempts;
    expect(history.map((x) => [x.attempt, x.agentId, x.outcome])).toEqual([
      [1, holder, 'agent_lost'],
      [2, other, 'succeeded'],
    ]);

    // Back from its pause, the holder's late result for attempt 1 is refused and changes nothing.
    const stale: string[] = [];
    h.orchestrator.events.on('task.stale_result', (e) => stale.push(`${e.taskId}#${e.attempt}`));
    h.fleet.get(holder)?.resume();
    await h.advance(6000);
    expect((await h.orchestrator.agents.view(holder)).agent.connectivity).toBe('online');
    expect(stale).toContain(`${task.id}#1`);
    expect(await taskOf(h, task.id)).toEqual(done);
  });

  it('a removed agent is shut down and its task requeued', async () => {
    const hang: TaskHandler = async (_p, ctx) => {
      await ctx.clock.sleep(10_000, ctx.signal);
      return 'ok';
    };
    const h = await harness({ handlers: { monitor: hang }, capabilities: ALL });
    const [a, b] = await spawnAll(h, 2);
    const task = await submitTask(h, { type: 'monitor' });
    await h.advance(50);
    const holder = (await taskOf(h, task.id)).assignedTo as string;
    await h.orchestrator.agents.remove(holder);
    expect(h.orchestrator.agents.ids()).toEqual([holder === a ? b : a]);
    expect(h.fleet.get(holder)).toBeUndefined();
    expect((await h.store.getAgent(holder))?.connectivity).toBe('decommissioned');
    const done = await waitForStatus(h, task.id, 'completed');
    expect(done.attempts).toBe(2);
    expect(done.assignedTo).not.toBe(holder);
    await expect(h.orchestrator.agents.remove(holder)).rejects.toMatchObject({ code: 'ORCH_AGENT_NOT_FOUND' });
  });
});

describe('tasks', () => {
  it('run on an agent and complete with a checkable result', async () => {
    const h = await harness();
    await spawnAll(h, 2);
    await h.advance(100);
    const t = await submitTask(h, { type: 'process_data', parameters: { data: [2, 4, 9] }, priority: 1 });
    expect(t.status).toBe('pending');
    const done = await waitForStatus(h, t.id, 'completed', 5000);
    expect(done.result).toEqual({ count: 3, sum: 15, mean: 5, min: 2, max: 9, median: 4 });
    expect(done.priority).toBe(1);
    expect(done.attempts).toBe(1);
    expect(done.startedAt).not.toBeNull();
    expect(done.completedAt).not.toBeNull();
  });

  it('health_check returns the device metrics as they are', async () => {
    const h = await harness();
    await spawnAll(h, 2);
    const t = await submitTask(h, { type: 'health_check' });
    const done = await waitForStatus(h, t.id, 'completed', 5000);
    const device = h.fleet.get(done.assignedTo as string)?.snapshot();
    expect(done.result).toMatchObject({
      cpu_usage: device?.cpu,
      memory_usage: device?.memory,
      battery_level: device?.battery,
      is_healthy: isHealthy(device as NonNullable<typeof device>),
    });
  });

  it('go to capable agents only', async () => {
    const h = await harness({ seed: 3 });
    await spawnAll(h, 3);
    const views = await h.orchestrator.agents.views();
    for (const type of ['process_data', 'health_check', 'deploy', 'analyze_risk', 'monitor'] as const) {
      const t = await submitTask(h, { type, parameters: type === 'monitor' ? { durationSec: 0 } : {} });
      const done = await waitForStatus(h, t.id, 'completed', 10_000);
      const runner = views.find((v) => v.agent.id === done.assignedTo);
      expect(runner?.agent.capabilities).toContain(type);
    }
  });

  it('start by priority, FIFO within a priority, and one type no agent is free for does not block the rest', async () => {
    const order: string[] = [];
    const record: TaskHandler = async (p, ctx) => {
      order.push(String(p.name));
      await ctx.clock.sleep(100, ctx.signal);
      return p.name;
    };
    const h = await harness({ handlers: { process_data: record, health_check: record } });
    const [only] = await spawnAll(h, 1);
    const caps = (await h.orchestrator.agents.view(only as string)).agent.capabilities;
    const type = caps[0] as TaskType;
    const blocker = await submitTask(h, { type, parameters: { name: 'blocker' } });
    await h.advance(1);
    const submitted: [string, number][] = [['low-1', 0], ['high-1', 5], ['low-2', 0], ['high-2', 5], ['mid', 2], ['neg', -3]];
    const ids: string[] = [];
    for (const [name, priority] of submitted) ids.push((await submitTask(h, { type, parameters: { name }, priority })).id);
    for (const id of [blocker.id, ...ids]) await waitForStatus(h, id, 'completed', 20_000);
    expect(order).toEqual(['blocker', 'high-1', 'high-2', 'mid', 'low-1', 'low-2', 'neg']);
  });

  it('retry after failures up to TASK_RETRY_LIMIT, keeping priority and counting attempts', async () => {
    let failuresLeft = 2;
    const flaky: TaskHandler = async (_p, ctx) => {
      await ctx.clock.sleep(10, ctx.signal);
      if (failuresLeft-- > 0) throw new Error(`transient failure ${2 - failuresLeft}`);
      return 'finally';
    };
    const h = await harness({ handlers: { deploy: flaky } });
    await spawnAll(h, 2);
    const t = await submitTask(h, { type: 'deploy', priority: 7 });
    const done = await waitForStatus(h, t.id, 'completed', 10_000);
    expect(done).toMatchObject({ attempts: 3, priority: 7, result: 'finally', error: null, maxAttempts: 4 });
    expect((await h.orchestrator.tasks.get(t.id)).attempts.map((a) => a.outcome)).toEqual(['failed', 'failed', 'succeeded']);
  });

  it('are dead (the dead letter) with the last error once attempts run out', async () => {
    let n = 0;
    const broken: TaskHandler = async (_p, ctx) => {
      await ctx.clock.sleep(10, ctx.signal);
      throw new Error(`broken #${++n}`);
    };
    const h = await harness({ handlers: { analyze_risk: broken }, settings: { taskRetryLimit: 2 } });
    await spawnAll(h, 2);
    const t = await submitTask(h, { type: 'analyze_risk' });
    const dead = await waitForStatus(h, t.id, 'dead', 30_000);
    expect(dead).toMatchObject({ attempts: 3, maxAttempts: 3, error: 'broken #3' });
    const history = (await h.orchestrator.tasks.get(t.id)).attempts;
    expect(history.map((a) => a.outcome)).toEqual(['failed', 'failed', 'failed']);
    // Retries waited their backoff: 1 s then 2 s, each with jitter over its upper half.
    const gap = (i: number) => (history[i + 1]?.startedAt ?? 0) - (history[i]?.endedAt ?? 0);
    expect(gap(0)).toBeGreaterThanOrEqual(500);
    expect(gap(1)).toBeGreaterThanOrEqual(1000);
  });

  it('a non-retryable failure fails at once', async () => {
    const h = await harness();
    await spawnAll(h, 2);
    const t = await submitTask(h, { type: 'process_data', parameters: { data: 'not numbers' } });
    const failed = await waitForStatus(h, t.id, 'failed', 10_000);
    expect(failed).toMatchObject({ attempts: 1, error: 'parameters.data must be an array of finite numbers' });
  });

  it('time out after TASK_TIMEOUT, are retried, and fail when every attempt times out', async () => {
    const hang: TaskHandler = async (_p, ctx) => {
      await ctx.clock.sleep(10 * 60_000, ctx.signal);
      return 'never';
    };
    const h = await harness({ handlers: { monitor: hang }, settings: { taskRetryLimit: 1, taskTimeoutMs: 60_000 } });
    await spawnAll(h, 2);
    const t = await submitTask(h, { type: 'monitor' });
    await h.advance(59_000);
    expect((await taskOf(h, t.id)).status).toBe('in_progress');
    await advanceUntil(h, async () => (await taskOf(h, t.id)).attempts === 2, 5000);
    const second = await taskOf(h, t.id);
    expect(second.status).toBe('in_progress');
    expect((await h.orchestrator.tasks.get(t.id)).attempts[0]).toMatchObject({ outcome: 'timed_out', error: expect.stringMatching(/attempt 1 timed out after 60 s/) as unknown });
    const dead = await waitForStatus(h, t.id, 'dead', 70_000);
    expect(dead.attempts).toBe(2);
    expect(dead.error).toMatch(/attempt 2 timed out after 60 s/);
    // The agents were told to stop; nothing is left running on them.
    await h.advance(100);
    for (const id of h.orchestrator.agents.ids()) expect(h.fleet.get(id)?.runningTasks()).toEqual([]);
  });

  it('refuses unknown task types', async () => {
    const h = await harness();
    await expect(submitTask(h, { type: 'mine_bitcoin' })).rejects.toMatchObject({ code: 'ORCH_UNKNOWN_TASK_TYPE', status: 400 });
    expect(Object.values(await h.store.countTasksByStatus()).every((n) => n === 0)).toBe(true);
    expect(Object.values(h.orchestrator.tasks.countsByStatus()).every((n) => n === 0)).toBe(true);
  });
});

describe('messages over a lossy link', () => {
  it('every task completes exactly once although a third of all envelopes are lost', async () => {
    const rng = seededRng(11);
    let dropped = 0;
    const h = await harness({
      faults: {
        drop: () => {
          // Registration must get through eventually too: it is reliable, so losing it is fair game.
          const lose = rng() < 0.33;
          if (lose) dropped++;
          return lose;
        },
      },
      settings: { agentTimeoutMs: 60_000 },
    });
    await spawnAll(h, 3);
    const completed: string[] = [];
    h.orchestrator.events.on('task.completed', ({ task }) => completed.push(task.id));
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await submitTask(h, { type: 'process_data', parameters: { data: [i] } })).id);
    await advanceUntil(h, async () => {
      for (const id of ids) if ((await taskOf(h, id)).status !== 'completed') return false;
      return true;
    }, 600_000, 500);
    expect(dropped).toBeGreaterThan(10);
    expect(completed.sort()).toEqual(ids.slice().sort());
    for (const [i, id] of ids.entries()) expect((await taskOf(h, id)).result).toMatchObject({ sum: i });
    const cluster = await h.orchestrator.seed.cluster();
    const stats = Object.values(cluster.queueStats);
    expect(stats.reduce((s, x) => s + x.retransmitted, 0)).toBeGreaterThan(0);
  });
});

describe('rings', () => {
  it('a device that fails the seed rule in prod moves to an early ring at once, and not back before its dwell time is over', async () => {
    const h = await harness({ settings: { rebalanceIntervalMs: 30_000 } });
    await spawnAll(h, 8);
    const inProd = (await h.orchestrator.agents.views()).filter((v) => v.agent.ring === 'prod');
    expect(inProd.length).toBeGreaterThan(0);
    const sick = inProd[0]?.agent.id as string;
    const device = h.fleet.get(sick);
    const countsBefore = h.orchestrator.fleet.ringCounts();
    device?.setMetrics({ cpu: 95 });
    await h.advance(5000);
    const view = await h.orchestrator.agents.view(sick);
    expect(['canary', 'dev']).toContain(view.agent.ring);
    const moves = await h.orchestrator.agents.ringMoves(sick);
    expect(moves.at(-1)).toMatchObject({ from: 'prod', to: view.agent.ring });
    expect(moves.at(-1)?.reason).toMatch(/fails the seed health rule \(cpu 95\.0% >= 80%\)/);
    expect(device?.currentRing).toBe(view.agent.ring);
    // Ring sizes stayed on target: the move was a swap with the healthiest device of that ring.
    expect(h.orchestrator.fleet.ringCounts()).toEqual(countsBefore);
    // Healthy again at once: it stays where it is for the dwell time (10 minutes by default), rebalances included.
    for (let i = 0; i < 9; i++) {
      device?.setMetrics({ cpu: 5, memory: 20, charging: true, battery: 100 });
      await h.advance(60_000);
    }
    expect((await h.orchestrator.agents.ringMoves(sick)).length).toBe(moves.length);
    for (let i = 0; i < 3; i++) {
      device?.setMetrics({ cpu: 5, memory: 20, charging: true, battery: 100 });
      await h.advance(60_000);
    }
    const later = await h.orchestrator.agents.ringMoves(sick);
    expect(later.length).toBeGreaterThan(moves.length);
    expect((later[moves.length]?.at ?? 0) - (moves.at(-1)?.at ?? 0)).toBeGreaterThanOrEqual(10 * 60_000);
  });

  it('devices that fail the seed rule leave prod: at once after a first placement, otherwise when their dwell time ends', async () => {
    const h = await harness({ seed: 5 });
    for (let i = 0; i < 6; i++) await h.orchestrator.agents.spawn();
    await h.advance(100);
    const sick = (): void => {
      for (const id of h.orchestrator.agents.ids()) h.fleet.get(id)?.setMetrics({ battery: 10, charging: false });
    };
    sick();
    for (let t = 0; t < 11 * 60; t += 5) {
      sick();
      await h.advance(5000);
    }
    for (const v of await h.orchestrator.agents.views()) expect(['canary', 'dev']).toContain(v.agent.ring);
    // No device moved between rings twice within its dwell time.
    for (const id of h.orchestrator.agents.ids()) {
      const between = (await h.orchestrator.agents.ringMoves(id)).filter((m) => m.from !== 'unassigned');
      for (let k = 1; k < between.length; k++) expect((between[k]?.at ?? 0) - (between[k - 1]?.at ?? 0)).toBeGreaterThanOrEqual(10 * 60_000);
    }
  });

  it('rings, pins and scores survive a restart', async () => {
    const h = await harness({ seed: 9 });
    await spawnAll(h, 6);
    await h.orchestrator.fleet.configure({ rings: [{ name: 'early', share: 0.5 }, { name: 'late', share: 0.5 }], pins: [], holds: [], dwellMs: 0 });
    const [first] = h.orchestrator.agents.ids();
    await h.orchestrator.fleet.override(first as string, 'late', true, 'test');
    const ids = h.orchestrator.agents.ids().sort();
    const before = ids.map((id) => h.orchestrator.fleet.device(id));
    await h.stop();
    const again = await harness({ dbPath: h.dbPath, clock: h.clock, seed: 9 });
    expect(again.orchestrator.agents.ids().sort()).toEqual(ids);
    const after = ids.map((id) => again.orchestrator.fleet.device(id));
    expect(after.map((d) => [d.id, d.ring, d.pinned, d.score])).toEqual(before.map((d) => [d.id, d.ring, d.pinned, d.score]));
    expect(again.orchestrator.fleet.device(first as string).pin).toEqual({ ring: 'late', source: 'manual' });
    expect(again.orchestrator.fleet.rings().rings.map((r) => r.name)).toEqual(['early', 'late']);
  });
});

describe('deployments (the seed facade)', () => {
  it('start affects 30–50% of agents with the seed impact; complete recovers 40–80%', async () => {
    const h = await harness();
    await spawnAll(h, 10);
    const before = new Map(h.orchestrator.agents.ids().map((id) => [id, h.fleet.get(id)?.snapshot()]));
    const d = await h.orchestrator.seed.startDeployment('deploy-001');
    expect(d.affectedAgents.length).toBeGreaterThanOrEqual(3);
    expect(d.affectedAgents.length).toBeLessThanOrEqual(5);
    for (const id of d.affectedAgents) {
      const b = before.get(id);
      const stored = (await h.orchestrator.agents.view(id)).agent.device;
      // The master's copy is what the agent reported after applying the instruction.
      expect(stored).toEqual(h.fleet.get(id)?.snapshot());
      expect(stored?.cpu).toBeGreaterThanOrEqual(Math.min(95, (b?.cpu ?? 0) + 10) - 0.01);
      expect(stored?.memory).toBeGreaterThanOrEqual(Math.min(90, (b?.memory ?? 0) + 10) - 0.01);
    }
    await expect(h.orchestrator.seed.startDeployment('deploy-001')).rejects.toMatchObject({ code: 'ORCH_DEPLOYMENT_EXISTS', status: 409 });
    const done = await h.orchestrator.seed.completeDeployment('deploy-001');
    expect(done.status).toBe('completed');
    expect(done.recoveredAgents.length).toBeGreaterThanOrEqual(4);
    expect(done.recoveredAgents.length).toBeLessThanOrEqual(8);
    await expect(h.orchestrator.seed.completeDeployment('deploy-001')).rejects.toMatchObject({ code: 'ORCH_DEPLOYMENT_NOT_ACTIVE', status: 409 });
    await expect(h.orchestrator.seed.completeDeployment('nope')).rejects.toMatchObject({ code: 'ORCH_DEPLOYMENT_NOT_FOUND', status: 404 });
    await expect(h.orchestrator.seed.getDeployment('nope')).rejects.toMatchObject({ status: 404 });
  });

  it('simulate_activity changes every online agent and reports before and after', async () => {
    const h = await harness();
    await spawnAll(h, 3);
    const r = await h.orchestrator.seed.simulateActivity();
    expect(r.affected).toHaveLength(3);
    for (const id of r.affected) {
      expect(r.after.get(id)).toEqual(h.fleet.get(id)?.snapshot());
      expect(Math.abs((r.after.get(id)?.cpu ?? 0) - (r.before.get(id)?.cpu ?? 0))).toBeLessThanOrEqual(10.01);
    }
  });
});

describe('restart', () => {
  it('brings back the same fleet, keeps finished tasks, and requeues interrupted ones with the attempt counted', async () => {
    const hang: TaskHandler = async (_p, ctx) => {
      await ctx.clock.sleep(60_000, ctx.signal);
      return 'late';
    };
    const h1 = await harness({ handlers: { monitor: hang } });
    await spawnAll(h1, 3);
    await h1.orchestrator.agents.addAsset({ id: 'asset-9', name: 'LAPTOP-9', site: 'Coimbatore' });
    const done = await submitTask(h1, { type: 'process_data', parameters: { data: [1] } });
    await waitForStatus(h1, done.id, 'completed', 5000);
    const running = await submitTask(h1, { type: 'monitor' });
    await h1.advance(50);
    expect((await taskOf(h1, running.id)).status).toBe('in_progress');
    await h1.orchestrator.seed.startDeployment('dep-1');
    const ids = h1.orchestrator.agents.ids();
    const rings = new Map((await h1.orchestrator.agents.views()).map((v) => [v.agent.id, v.agent.ring]));
    const masterId = h1.orchestrator.masterId;
    await h1.stop();

    const h2 = await harness({ dbPath: h1.dbPath, clock: h1.clock });
    expect(h2.orchestrator.masterId).toBe(masterId);
    expect(h2.orchestrator.agents.ids()).toEqual(ids);
    await h2.advance(100);
    for (const v of await h2.orchestrator.agents.views()) {
      expect(v.agent.connectivity).toBe('online');
      expect(v.agent.ring).toBe(rings.get(v.agent.id));
    }
    expect((await h2.orchestrator.agents.assets()).map((a) => a.asset.id)).toEqual(['asset-9']);
    expect(await taskOf(h2, done.id)).toMatchObject({ status: 'completed', result: { sum: 1 } });
    const requeued = await taskOf(h2, running.id);
    expect(requeued.attempts).toBeGreaterThanOrEqual(1);
    expect((await h2.orchestrator.tasks.get(running.id)).attempts[0]?.outcome).toBe('interrupted');
    expect((await h2.orchestrator.seed.getDeployment('dep-1')).status).toBe('active');
    // The interrupted task now runs on the restored fleet with the built-in handler.
    await waitForStatus(h2, running.id, 'completed', 10_000);
  });
});

describe('adaptive failure detection', () => {
  it('agents with ±20% heartbeat jitter are never marked offline; a killed one is, between two missed beats and AGENT_TIMEOUT', async () => {
    const jittery = await harness({ seed: 11, heartbeatJitter: 0.2 });
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await jittery.orchestrator.agents.spawn());
    const offline: { agentId: string; at: number; silentMs: number }[] = [];
    jittery.orchestrator.events.on('agent.offline', ({ agentId, silentMs }) => offline.push({ agentId, at: jittery.clock.now(), silentMs }));
    for (let t = 0; t < 3600; t += 10) await jittery.advance(10_000);
    expect(offline).toEqual([]);
    const victim = ids[3] as string;
    jittery.fleet.get(victim)?.pause();
    const killedAt = jittery.clock.now();
    await advanceUntil(jittery, () => offline.length > 0, 60_000, 250);
    expect(offline.map((o) => o.agentId)).toEqual([victim]);
    const detectedAfter = (offline[0]?.at ?? 0) - killedAt;
    // Between two heartbeat intervals (10 s) and AGENT_TIMEOUT (20 s), plus the sweeper's second and the last beat's age.
    expect(detectedAfter).toBeGreaterThanOrEqual(10_000 - 6000);
    expect(detectedAfter).toBeLessThanOrEqual(20_000 + 1000);
    // This rhythm (5 s ± 20%) teaches a timeout below the floor, so the floor applies: about 10 s of silence,
    // half of AGENT_TIMEOUT, which a fixed timeout would have waited for.
    expect(offline[0]?.silentMs).toBeGreaterThan(10_000);
    expect(offline[0]?.silentMs).toBeLessThanOrEqual(11_000);
  });
});
