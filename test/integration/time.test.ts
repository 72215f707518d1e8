import { describe, expect, it } from 'vitest';
import { DEFAULT_GATE, DEFAULT_PREFLIGHT } from '../../src/domain/deployment.js';
import { TASK_TYPES } from '../../src/domain/types.js';
import type { Task } from '../../src/domain/types.js';
import { RateLimiter } from '../../src/security/rate-limit.js';
import type { TaskHandler } from '../../src/sim/task-handlers.js';
import { TaskFailure } from '../../src/sim/task-handlers.js';
import { FakeClock } from '../../src/util/clock.js';
import { advanceUntil, harnessPerTest, taskOf } from '../support/harness.js';

const harness = harnessPerTest({ capabilities: [...TASK_TYPES] });
const HOUR = 3_600_000;

/** A handler that runs until released. */
function gate() {
  const waiting: (() => void)[] = [];
  const handler: TaskHandler = async () => {
    await new Promise<void>((resolve) => waiting.push(resolve));
    return 'done';
  };
  return { handler, waiting: () => waiting.length, release: () => waiting.splice(0).forEach((r) => r()) };
}

describe('setting the system clock', () => {
  it('forward by an hour: no agent goes offline, no lease or timeout runs out, no backoff ends early', async () => {
    const g = gate();
    let failures = 0;
    const flaky: TaskHandler = () => {
      failures++;
      return Promise.reject(new TaskFailure('not yet', true));
    };
    const h = await harness({ handlers: { process_data: g.handler, analyze_risk: flaky } });
    for (let i = 0; i < 3; i++) await h.orchestrator.agents.spawn();
    await h.advance(6000);
    const [running] = await h.orchestrator.tasks.submit([{ type: 'process_data', parameters: {} }]);
    await h.orchestrator.tasks.submit([{ type: 'analyze_risk', parameters: {}, backoff: { strategy: 'fixed', initialMs: 30_000, jitter: false } }]);
    await advanceUntil(h, () => g.waiting() === 1 && failures === 1);
    h.clock.step(HOUR);
    await h.advance(20_000);
    expect((await h.orchestrator.agents.views()).map((v) => v.status).filter((s) => s === 'offline')).toEqual([]);
    expect((await taskOf(h, (running as { task: Task }).task.id)).status).toBe('in_progress');
    // The retry waits its 30 s of elapsed time, not of the wall clock: after 20 s it has not run again.
    expect(failures).toBe(1);
    await h.advance(11_000);
    expect(failures).toBe(2);
    g.release();
    await advanceUntil(h, async () => (await taskOf(h, (running as { task: Task }).task.id)).status === 'completed');
    expect((await h.orchestrator.tasks.get((running as { task: Task }).task.id)).attempts).toHaveLength(1);
  });

  it('back by an hour: a silent agent is still marked offline within AGENT_TIMEOUT, and its task goes back to the queue', async () => {
    const g = gate();
    const h = await harness({ handlers: { process_data: g.handler } });
    const id = await h.orchestrator.agents.spawn();
    await h.advance(6000);
    const [out] = await h.orchestrator.tasks.submit([{ type: 'process_data', parameters: {} }]);
    const taskId = (out as { task: Task }).task.id;
    await advanceUntil(h, () => g.waiting() === 1);
    h.fleet.get(id)?.pause();
    h.clock.step(-HOUR);
    // AGENT_TIMEOUT is 20 s in these tests; the sweeper looks every second.
    await h.advance(21_500);
    expect((await h.orchestrator.agents.view(id)).status).toBe('offline');
    const task = await taskOf(h, taskId);
    expect(task.status).toBe('pending');
    expect((await h.orchestrator.tasks.get(taskId)).attempts[0]?.outcome).toBe('agent_lost');
  });

  it("a deployment's soak is elapsed time: setting the clock an hour forward ends no soak early, back delays none", async () => {
    const h = await harness();
    for (let i = 0; i < 12; i++) await h.orchestrator.agents.spawn();
    await advanceUntil(h, () => h.orchestrator.fleet.ringCounts().unassigned === 0 && h.orchestrator.fleet.size === 12, 10_000, 100);
    for (const id of h.orchestrator.agents.ids()) h.fleet.get(id)?.setMetrics({ charging: true, battery: 90, cpu: 20, memory: 40, disk: 30 });
    await h.advance(6000);
    const gate = { ...DEFAULT_GATE, minDevices: 1, minJudged: 0, observeMs: 0, maxBatteryDrainRegression: 1000 };
    const soakMs = 10 * 60_000;
    const stages = ['canary', 'dev'].map((ring) => ({ ring, rate: { maxPerMinute: 600 }, soakMs, gate, preflight: { ...DEFAULT_PREFLIGHT, minBattery: 0 } }));
    const d = await h.orchestrator.deployments.create(
      { name: 'soak', payload: { type: 'deploy', params: { version: '2' } }, stages, maintenanceWindows: [], autoRollback: false, rollbackPayload: { type: 'deploy', params: {} } },
      { start: true },
    );
    const phase = () => h.orchestrator.deployments.peek(d.id);
    await advanceUntil(h, () => phase()?.phase === 'soaking', 120_000);
    expect(phase()?.stage).toBe(0);
    h.clock.step(HOUR);
    await h.advance(5 * 60_000);
    expect(phase()).toMatchObject({ stage: 0, phase: 'soaking' });
    h.clock.step(-2 * HOUR);
    await advanceUntil(h, () => (phase()?.stage ?? 0) === 1, 6 * 60_000, 1000);
  });

  it('rate limits refill with elapsed time, whatever the wall clock does', () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter({ count: 2, perMs: 60_000 }, clock);
    expect(limiter.take('a')).toBeNull();
    expect(limiter.take('a')).toBeNull();
    expect(limiter.take('a')).toBeGreaterThan(0);
    clock.step(HOUR);
    expect(limiter.take('a')).toBeGreaterThan(0);
    clock.step(-2 * HOUR);
    expect(limiter.take('a')).toBeGreaterThan(0);
  });
});
