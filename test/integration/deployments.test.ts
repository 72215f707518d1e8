import { describe, expect, it } from 'vitest';
import type { DeploymentSpec, Stage } from '../../src/domain/deployment.js';
import { DEFAULT_GATE, DEFAULT_PREFLIGHT } from '../../src/domain/deployment.js';
import { TASK_TYPES } from '../../src/domain/types.js';
import type { TaskHandler } from '../../src/sim/task-handlers.js';
import { SIMULATED_HANDLERS, TaskFailure } from '../../src/sim/task-handlers.js';
import type { Harness } from '../support/harness.js';
import { advanceUntil, harnessPerTest } from '../support/harness.js';
import { releaseFleet } from '../support/release-fleet.js';

const harness = harnessPerTest({ capabilities: [...TASK_TYPES] });

/**
 * `version: "bad"` fails (a retryable failure, so with one attempt the execution is `failed`); `version: "hot"` succeeds but adds 40 CPU points;
 * `version: "slow"` takes an hour; anything else installs as the simulated handler does.
 */
const releases: TaskHandler = async (params, ctx) => {
  if (params.version === 'slow') await ctx.clock.sleep(3_600_000, ctx.signal);
  if (params.version === 'bad') {
    await ctx.clock.sleep(200, ctx.signal);
    throw new TaskFailure('install failed: checksum mismatch', true);
  }
  const out = await (SIMULATED_HANDLERS.deploy)(params, ctx);
  if (params.version === 'hot') ctx.setMetrics({ cpu: Math.min(95, ctx.device().cpu + 40) });
  return out;
};

const fleetOf = (n: number, seed = 42): Promise<Harness> => releaseFleet(harness, n, seed, releases);

/**
 * The simulated agents drift by the seed's rules, battery included (−0..3% every 10 s on battery, about
 * 50%/h, and a charger that comes and goes): battery drain per hour is mostly noise here, so these gates
 * leave it out. The drain limit is covered by the gate's table tests and by the rollout simulator.
 */
const GATE = { ...DEFAULT_GATE, minDevices: 2, observeMs: 6000, maxBatteryDrainRegression: 1000 };

function stage(ring: string, over: Partial<Stage> = {}): Stage {
  return { ring, rate: { maxPerMinute: 600 }, soakMs: 20_000, gate: { ...GATE }, preflight: { ...DEFAULT_PREFLIGHT }, ...over };
}

function spec(version: string, over: Partial<DeploymentSpec> = {}): DeploymentSpec {
  return {
    name: `release ${version}`,
    payload: { type: 'deploy', params: { version } },
    stages: ['canary', 'dev', 'stage', 'prod'].map((r) => stage(r)),
    maintenanceWindows: [],
    autoRollback: false,
    rollbackPayload: { type: 'deploy', params: { version: '1.0' } },
    ...over,
  };
}

async function until(h: Harness, id: string, status: string, maxMs = 600_000): Promise<void> {
  try {
    await advanceUntil(h, async () => (await h.orchestrator.deployments.get(id)).deployment.status === status, maxMs, 1000);
  } catch (err) {
    const v = await h.orchestrator.deployments.get(id);
    throw new Error(`${String(err)}: deployment is ${v.deployment.status}; ${v.evaluations.map((e) => e.reason).join(' | ')}; ${JSON.stringify(v.executions.filter((e) => e.state !== 'succeeded').map((e) => [e.state, e.reason]))}`, { cause: err });
  }
}

describe('staged deployments with simulated agents', () => {
  it('a good release goes ring by ring, each gate passing, until every device runs it', async () => {
    const h = await fleetOf(20);
    const d = await h.orchestrator.deployments.create(spec('2.0'), { start: true });
    expect(d.status).toBe('in_progress');
    await until(h, d.id, 'completed');
    const view = await h.orchestrator.deployments.get(d.id);
    expect(view.executions).toHaveLength(20);
    expect(view.executions.every((e) => e.state === 'succeeded')).toBe(true);
    const passes = view.evaluations.filter((e) => e.verdict === 'pass');
    // Each device was updated only once its ring was reached: after the previous ring's gate passed.
    for (let k = 1; k < 4; k++) {
      const earliest = Math.min(...view.executions.filter((e) => e.stage === k).map((e) => e.startedAt ?? Infinity));
      expect(earliest).toBeGreaterThanOrEqual(passes[k - 1]?.at ?? Infinity);
    }
    expect(passes.map((e) => e.ring)).toEqual(['canary', 'dev', 'stage', 'prod']);
    expect(passes[0]?.reason).toMatch(/^ring canary passed: 0 of 1 failed \(0%\), 0 timed out, 0 of 1 regressed; CPU [+-][\d.]+ points/);
    // Baselines and observations were taken for each device.
    expect(view.executions.every((e) => e.baseline !== null && e.observed !== null && e.cpuDelta !== null)).toBe(true);
    for (const id of h.orchestrator.agents.ids()) expect((await h.orchestrator.tasks.get(view.executions.find((e) => e.deviceId === id)?.taskId as string)).task.status).toBe('completed');
  });

  it('a release that fails halts at the first ring: nothing beyond it is touched, and automatic rollback restores the devices it reached', async () => {
    const h = await fleetOf(20);
    const d = await h.orchestrator.deployments.create(spec('bad', { autoRollback: true }), { start: true });
    await until(h, d.id, 'rolled_back');
    await advanceUntil(h, async () => (await h.orchestrator.deployments.get(d.id)).executions.every((e) => e.state !== 'failed' && e.state !== 'in_progress'), 60_000, 500);
    const view = await h.orchestrator.deployments.get(d.id);
    const fail = view.evaluations.find((e) => e.verdict === 'fail');
    expect(fail?.reason).toBe('halted at ring canary: 1 of 1 devices (100%) failed, above the 5% limit (at 99% confidence: at least 15.6%)');
    expect(view.deployment.haltReason).toBe(fail?.reason);
    // Only the canary ring was reached.
    expect(new Set(view.executions.map((e) => e.stage))).toEqual(new Set([0]));
    expect(view.executions.map((e) => e.state)).toEqual(['rolled_back']);
    const canary = view.executions[0];
    expect((await h.orchestrator.tasks.get(canary?.rollbackTaskId as string)).task).toMatchObject({ status: 'completed', parameters: { version: '1.0' } });
    await expect(h.orchestrator.deployments.act(d.id, 'resume')).rejects.toMatchObject({ code: 'ORCH_DEPLOYMENT_STATE', status: 409 });
  });

  it('a release that raises CPU on each device over its own baseline halts on health, then an operator can acknowledge and resume', async () => {
    const h = await fleetOf(24);
    const stages = ['canary', 'dev', 'stage', 'prod'].map((r) => stage(r, { gate: { ...GATE, minDevices: 1, confidence: 0 } }));
    // What a client of the event stream sees, in order: the gate's verdict comes before the halt it caused, so
    // that a client that stops at the deployment's final status has read its reason.
    const seen: string[] = [];
    h.orchestrator.events.on('deployment.gate_evaluated', ({ evaluation }) => seen.push(`gate ${evaluation.verdict}`));
    h.orchestrator.events.on('deployment.changed', (e) => {
      if (e.status !== undefined) seen.push(`status ${e.status}`);
    });
    const d = await h.orchestrator.deployments.create(spec('hot', { stages }), { start: true });
    await until(h, d.id, 'halted');
    expect(seen.slice(seen.indexOf('status halted') - 1, seen.indexOf('status halted') + 1)).toEqual(['gate fail', 'status halted']);
    const view = await h.orchestrator.deployments.get(d.id);
    expect(view.deployment.haltReason).toMatch(/^halted at ring canary: 1 of 1 devices \(100%\) regressed over their own baselines, above the 10% limit; on average CPU \+[2-4]\d(\.\d+)? points/);
    const impact = await h.orchestrator.deployments.impact(d.id, 5);
    expect(impact[0]?.cpuDelta).toBeGreaterThan(15);
    // The hurt devices' deployment impact feeds their health score.
    const hurt = h.orchestrator.fleet.device(impact[0]?.deviceId as string);
    expect(hurt.health?.factors.find((f) => f.factor === 'impact')?.value).toBeGreaterThan(0);
    // No device beyond canary got it.
    expect(view.executions.every((e) => e.stage === 0)).toBe(true);
    const resumed = await h.orchestrator.deployments.act(d.id, 'acknowledge');
    expect(resumed.status).toBe('in_progress');
    const after = await h.orchestrator.deployments.get(d.id);
    expect(after.evaluations.at(-1)?.reason).toBe('ring canary: halt acknowledged by an operator; resuming');
  });

  it('pause, resume, promote and abort, and refusals from the wrong state', async () => {
    const h = await fleetOf(12);
    const stages = ['canary', 'dev', 'stage', 'prod'].map((r) => stage(r, { rate: { maxPerMinute: 6 }, soakMs: 3_600_000 }));
    const d = await h.orchestrator.deployments.create(spec('2.1', { stages }));
    expect(d.status).toBe('scheduled');
    await expect(h.orchestrator.deployments.act(d.id, 'pause')).rejects.toMatchObject({ code: 'ORCH_DEPLOYMENT_STATE' });
    await expect(h.orchestrator.deployments.act(d.id, 'acknowledge')).rejects.toMatchObject({ code: 'ORCH_DEPLOYMENT_STATE' });
    await h.orchestrator.deployments.act(d.id, 'start');
    await advanceUntil(h, async () => (await h.orchestrator.deployments.get(d.id)).deployment.phase === 'soaking', 120_000, 1000);
    // Soaking for an hour: promote skips it.
    const promoted = await h.orchestrator.deployments.act(d.id, 'promote');
    expect(promoted).toMatchObject({ stage: 1, status: 'in_progress' });
    await h.orchestrator.deployments.act(d.id, 'pause');
    const during = (await h.orchestrator.deployments.get(d.id)).executions.filter((e) => e.state === 'succeeded' || e.state === 'in_progress').length;
    await h.advance(120_000);
    await advanceUntil(h, async () => (await h.orchestrator.deployments.get(d.id)).executions.every((e) => e.state !== 'in_progress'), 30_000, 500);
    const paused = (await h.orchestrator.deployments.get(d.id)).executions.filter((e) => e.state === 'succeeded' || e.state === 'in_progress').length;
    expect(paused).toBe(during);
    await h.orchestrator.deployments.act(d.id, 'resume');
    await h.advance(30_000);
    expect((await h.orchestrator.deployments.get(d.id)).executions.filter((e) => e.state === 'succeeded').length).toBeGreaterThan(paused);
    const aborted = await h.orchestrator.deployments.act(d.id, 'abort');
    expect(aborted.status).toBe('cancelled');
    const view = await h.orchestrator.deployments.get(d.id);
    expect(view.executions.some((e) => e.state === 'cancelled')).toBe(true);
    expect(view.evaluations.map((e) => e.reason)).toContain('ring canary: promoted by an operator; soak skipped');
    await expect(h.orchestrator.deployments.act(d.id, 'resume')).rejects.toMatchObject({ code: 'ORCH_DEPLOYMENT_STATE' });
    await expect(h.orchestrator.deployments.act('nope', 'start')).rejects.toMatchObject({ code: 'ORCH_DEPLOYMENT_NOT_FOUND' });
  });

  it('devices failing pre-flight are skipped with the reason and updated once they qualify; offline devices wait for their return', async () => {
    const h = await fleetOf(8);
    const ids = h.orchestrator.agents.ids();
    const low = ids.find((id) => h.orchestrator.fleet.ringOf(id) === 'canary') as string;
    const away = ids.find((id) => h.orchestrator.fleet.ringOf(id) === 'prod') as string;
    h.fleet.get(low)?.setMetrics({ charging: false, battery: 40 });
    h.fleet.get(away)?.pause();
    await h.advance(30_000); // `away` is offline now
    // The last ring soaks for 10 minutes: the deployment is still running when the two come back.
    const stages = ['canary', 'dev', 'stage', 'prod'].map((r) => stage(r, { soakMs: r === 'prod' ? 600_000 : 5000, preflight: { ...DEFAULT_PREFLIGHT, minBattery: 50 } }));
    const d = await h.orchestrator.deployments.create(spec('3.0', { stages }), { start: true });
    await advanceUntil(h, async () => (await h.orchestrator.deployments.get(d.id)).executions.find((e) => e.deviceId === low)?.state === 'skipped', 300_000, 1000);
    const skipped = (await h.orchestrator.deployments.get(d.id)).executions.find((e) => e.deviceId === low);
    expect(skipped?.reason).toMatch(/^pre-flight: battery [1-4]\d% is below the 50% minimum$/);
    // The canary ring had nobody to judge: instead of moving on without evidence, the deployment pauses for an operator.
    await advanceUntil(h, async () => (await h.orchestrator.deployments.get(d.id)).deployment.status === 'paused', 300_000, 1000);
    const paused = await h.orchestrator.deployments.get(d.id);
    expect(paused.deployment).toMatchObject({ stage: 0, detail: { pauseReason: 'insufficient_evidence' } });
    const shortfall = paused.evaluations.at(-1);
    expect(shortfall).toMatchObject({ stage: 0, ring: 'canary', verdict: 'insufficient_evidence', figures: { devices: 1, judged: 0, required: 1, offline: 0, skipped: 0, failedPreflight: 1 } });
    expect(shortfall?.reason).toMatch(
      /^insufficient evidence at ring canary: 0 of 1 devices could be judged, below the 1 required \(every device, in a ring smaller than minJudged 10\); not judged: 1 failed pre-flight \(pre-flight: battery [1-4]\d% is below the 50% minimum: 1\); paused: promote to go on without it, resume to wait one more soak for it, or abort$/,
    );
    expect(paused.deployment.haltReason).toBe(shortfall?.reason);
    expect(paused.evaluations.some((e) => e.verdict === 'pass')).toBe(false);
    expect(paused.executions.every((e) => e.stage === 0)).toBe(true);
    // The operator decides to go on without the canary's evidence.
    expect(await h.orchestrator.deployments.act(d.id, 'promote')).toMatchObject({ status: 'in_progress', stage: 1, haltReason: null });
    await advanceUntil(h, async () => (await h.orchestrator.deployments.get(d.id)).deployment.stage === 3, 300_000, 1000);
    await h.advance(5000);
    expect((await h.orchestrator.deployments.get(d.id)).executions.find((e) => e.deviceId === away)?.state).toBe('queued');
    // Plugged in, it qualifies; back online, the other one is updated too.
    h.fleet.get(low)?.setMetrics({ charging: true, battery: 60 });
    h.fleet.get(away)?.resume();
    await advanceUntil(h, async () => {
      const v = await h.orchestrator.deployments.get(d.id);
      return [low, away].every((id) => v.executions.find((e) => e.deviceId === id)?.state === 'succeeded');
    }, 300_000, 1000);
    expect((await h.orchestrator.deployments.get(d.id)).deployment.status).toBe('in_progress');
  });

  it('an abort cancels the updates running, and their tasks say what cancelled them', async () => {
    const h = await fleetOf(8);
    const d = await h.orchestrator.deployments.create(spec('slow'), { start: true });
    await advanceUntil(h, async () => (await h.orchestrator.deployments.get(d.id)).executions.some((e) => e.state === 'in_progress' && e.taskId !== null), 60_000, 500);
    const running = (await h.orchestrator.deployments.get(d.id)).executions.filter((e) => e.state === 'in_progress');
    expect(running.length).toBeGreaterThan(0);
    expect((await h.orchestrator.deployments.act(d.id, 'abort')).status).toBe('cancelled');
    await h.advance(1000);
    const view = await h.orchestrator.deployments.get(d.id);
    for (const r of running) {
      expect(view.executions.find((e) => e.deviceId === r.deviceId)).toMatchObject({ state: 'cancelled', reason: 'the deployment was aborted by an operator during the update' });
      const { task, attempts } = await h.orchestrator.tasks.get(r.taskId as string);
      expect(task).toMatchObject({ status: 'cancelled', error: `deployment ${d.id} was aborted by an operator` });
      expect(attempts.at(-1)?.error).toBe(`deployment ${d.id} was aborted by an operator`);
    }
  });

  it('a deployment survives an orchestrator restart mid-rollout and completes, every device updated exactly once', async () => {
    const h1 = await fleetOf(16);
    const stages = ['canary', 'dev', 'stage', 'prod'].map((r) => stage(r, { rate: { maxPerMinute: 12 }, soakMs: 10_000 }));
    const d = await h1.orchestrator.deployments.create(spec('4.0', { stages }), { start: true });
    await advanceUntil(h1, async () => (await h1.orchestrator.deployments.get(d.id)).deployment.stage >= 2, 600_000, 1000);
    await h1.stop();
    const h2 = await harness({ dbPath: h1.dbPath, clock: h1.clock, seed: 43, handlers: { deploy: releases } });
    expect((await h2.orchestrator.deployments.get(d.id)).deployment.status).toBe('in_progress');
    await until(h2, d.id, 'completed', 900_000);
    const view = await h2.orchestrator.deployments.get(d.id);
    expect(view.executions).toHaveLength(16);
    expect(view.executions.every((e) => e.state === 'succeeded')).toBe(true);
    expect(view.evaluations.filter((e) => e.verdict === 'pass').map((e) => e.ring)).toEqual(['canary', 'dev', 'stage', 'prod']);
    // Every agent installed 4.0, and none more than once after its execution succeeded.
    const tasks = await h2.orchestrator.tasks.list({ type: 'deploy', status: 'completed' }, 500);
    const perDevice = new Map<string, number>();
    for (const t of tasks) {
      const target = t.target as { agentId: string };
      perDevice.set(target.agentId, (perDevice.get(target.agentId) ?? 0) + 1);
    }
    expect([...perDevice.values()].every((n) => n === 1)).toBe(true);
    expect(perDevice.size).toBe(16);
  });
});

describe('every action from every state', () => {
  const STATES = ['scheduled', 'in_progress', 'paused', 'halted', 'completed', 'cancelled', 'rolled_back'] as const;
  type State = (typeof STATES)[number];
  const fastStages = (): Stage[] => ['canary', 'dev', 'stage', 'prod'].map((r) => stage(r, { soakMs: 2000 }));

  /** A fresh deployment driven into `state`. */
  async function inState(h: Harness, state: State): Promise<string> {
    const c = h.orchestrator.deployments;
    const version = state === 'halted' ? 'bad' : '5.0';
    const stages = state === 'in_progress' || state === 'paused' ? ['canary', 'dev', 'stage', 'prod'].map((r) => stage(r, { soakMs: 3_600_000 })) : fastStages();
    const d = await c.create(spec(version, { stages }));
    if (state === 'scheduled') return d.id;
    await c.act(d.id, 'start');
    if (state === 'in_progress') return d.id;
    if (state === 'paused') return (await c.act(d.id, 'pause')).id;
    if (state === 'cancelled') return (await c.act(d.id, 'abort')).id;
    if (state === 'rolled_back') return (await c.act(d.id, 'rollback')).id;
    await until(h, d.id, state);
    return d.id;
  }

  it('an action is taken from the states it applies to, and refused with 409 from every other, leaving the deployment as it was', async () => {
    const h = await fleetOf(8);
    const c = h.orchestrator.deployments;
    const { TRANSITIONS, DEPLOYMENT_ACTIONS } = await import('../../src/domain/deployment.js');
    for (const state of STATES) {
      const refusedFrom = await inState(h, state);
      for (const action of DEPLOYMENT_ACTIONS) {
        const allowed = (TRANSITIONS[action].from as readonly string[]).includes(state);
        if (allowed) {
          const id = await inState(h, state);
          const after = await c.act(id, action);
          expect(after.status, `${action} from ${state}`).toBe(TRANSITIONS[action].to);
        } else {
          await expect(c.act(refusedFrom, action), `${action} from ${state}`).rejects.toMatchObject({ code: 'ORCH_DEPLOYMENT_STATE', status: 409 });
          expect((await c.get(refusedFrom)).deployment.status).toBe(state);
        }
      }
    }
  });

  it('a manual rollback of a completed deployment sends the rollback payload to every updated device', async () => {
    const h = await fleetOf(6);
    const c = h.orchestrator.deployments;
    const d = await c.create(spec('6.0', { stages: ['canary', 'dev', 'stage', 'prod'].map((r) => stage(r, { soakMs: 2000 })) }), { start: true });
    await until(h, d.id, 'completed');
    expect((await c.act(d.id, 'rollback')).status).toBe('rolled_back');
    await advanceUntil(h, async () => (await c.get(d.id)).executions.every((e) => e.state === 'rolled_back'), 60_000, 500);
    const view = await c.get(d.id);
    expect(view.executions).toHaveLength(6);
    for (const e of view.executions) expect((await h.orchestrator.tasks.get(e.rollbackTaskId as string)).task).toMatchObject({ status: 'completed', parameters: { version: '1.0' } });
    expect(view.deployment.endedAt).not.toBeNull();
  });
});
