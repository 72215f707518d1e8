import { describe, expect, it } from 'vitest';
import { Advisor, ADVISOR_ACTOR } from '../../src/advisor/advisor.js';
import type { DeploymentSpec, Stage } from '../../src/domain/deployment.js';
import { DEFAULT_GATE, DEFAULT_PREFLIGHT } from '../../src/domain/deployment.js';
import { TASK_TYPES } from '../../src/domain/types.js';
import { silentLogger } from '../../src/util/logger.js';
import type { Harness } from '../support/harness.js';
import { advanceUntil, harnessPerTest } from '../support/harness.js';
import { releaseFleet } from '../support/release-fleet.js';

const harness = harnessPerTest({ capabilities: [...TASK_TYPES] });

const fleetOf = (n: number): Promise<Harness> => releaseFleet(harness, n, 7);

function advisorOf(h: Harness, auto: 'off' | 'halt' = 'off'): Advisor {
  const a = new Advisor({ services: h.orchestrator.services, store: h.orchestrator.store, clock: h.clock, events: h.orchestrator.events, log: silentLogger, auto, watchMs: 5000, model: null });
  a.start();
  return a;
}

const GATE = { ...DEFAULT_GATE, minDevices: 2, observeMs: 6000, maxBatteryDrainRegression: 1000 };

function spec(version: string, stages: Partial<Stage>[]): DeploymentSpec {
  return {
    name: `release ${version}`,
    payload: { type: 'deploy', params: { version } },
    stages: stages.map((s) => ({ ring: 'prod', rate: { maxPerMinute: 600 }, soakMs: 20_000, gate: { ...GATE }, preflight: { ...DEFAULT_PREFLIGHT }, ...s })),
    maintenanceWindows: [],
    autoRollback: false,
    rollbackPayload: { type: 'deploy', params: { version: '1.0' } },
  };
}

describe('the advisor on a running orchestrator', () => {
  it('explains a gate halt at once, naming the metric that moved, and advises a rollback', async () => {
    const h = await fleetOf(40);
    const advisor = advisorOf(h);
    const d = await h.orchestrator.deployments.create(spec('hot', [{ ring: 'stage' }, { ring: 'prod' }]), { start: true });
    await advanceUntil(h, async () => (await advisor.haltExplanation(d.id)) !== null, 300_000, 1000);
    const view = await h.orchestrator.deployments.get(d.id);
    expect(view.deployment.status).toBe('halted');
    const advice = await advisor.haltExplanation(d.id);
    expect(advice).toMatchObject({ trigger: 'halt', decision: 'rollback', risk: 'high', provider: { name: 'analyser', model: null, fallback: null }, applied: null });
    expect(advice?.summary).toMatch(/^The deployment is halted \(halted at ring stage: \d+ of \d+ devices \(\d+(\.\d)?%\) regressed over their own baselines.*\)\. Roll back the devices already updated: the release fails ring stage \(score \d+(\.\d)? of 100\)\. CPU \+\d+(\.\d)? points against baseline on \d+ devices/);
    const [analysis] = advice?.evidence.analyses as { ring: string; rootCause: { metric: string }; impacted: { deviceId: string; metric: string }[] }[];
    expect(analysis).toMatchObject({ ring: 'stage', rootCause: { metric: 'cpu' } });
    expect((analysis as unknown as { metrics: { metric: string; rating: string }[] }).metrics.map((m) => [m.metric, m.rating])).toEqual([
      ['failures', 'pass'], ['timeouts', 'pass'], ['offline', 'pass'], ['cpu', 'high'], ['memory', 'pass'],
      // Every device is on its charger: no drain to compare.
      ['drain', 'inconclusive'], ['disk', 'pass'],
    ]);
    expect(analysis?.impacted[0]?.metric).toBe('cpu');
    // prod was not reached; it is rated after a failing ring.
    expect(advice?.rings.map((r) => [r.ring, r.risk])).toEqual([['stage', 'high'], ['prod', 'high']]);
    await advisor.stop();
  });

  it('ADVISOR_AUTO=halt halts a deployment its analyser fails before the gate has its minimum, and does no more', async () => {
    const h = await fleetOf(40);
    const advisor = advisorOf(h, 'halt');
    // The gate waits for all of prod's devices (and judges no model on its own); updates go one a second and each fails.
    const d = await h.orchestrator.deployments.create(spec('bad', [{ ring: 'prod', rate: { maxPerMinute: 60 }, gate: { ...GATE, minDevices: 1000, minModelDevices: 1000 } }]), { start: true });
    await advanceUntil(h, async () => (await h.orchestrator.deployments.get(d.id)).deployment.status === 'halted', 60_000, 500);
    const view = await h.orchestrator.deployments.get(d.id);
    expect(view.deployment.haltReason).toMatch(/^halted at ring prod by the advisor \(advice adv-[0-9a-f-]+, ADVISOR_AUTO=halt\): Halt before more devices get it: the release fails ring prod/);
    // Fewer devices updated than the gate wanted: the advisor halted first.
    expect(view.executions.filter((e) => e.startedAt !== null).length).toBeLessThan(20);
    const all = await advisor.list({ subject: `deployment:${d.id}` }, 10);
    expect(all.map((a) => a.trigger)).toEqual(['watch']);
    expect(all[0]).toMatchObject({ decision: 'halt', applied: { by: ADVISOR_ACTOR, actions: [{ action: 'halt', target: d.id, ok: true, detail: `deployment ${d.id} is halted` }] } });
    // It never does more than halt: the deployment stays halted, not rolled back.
    await h.advance(30_000);
    expect((await h.orchestrator.deployments.get(d.id)).deployment.status).toBe('halted');
    await advisor.stop();
  });

  it('proposes moving a sick device pinned to prod to the latest ring for unhealthy devices, and moves it only when applied', async () => {
    const h = await fleetOf(40);
    const advisor = advisorOf(h);
    const sick = h.orchestrator.agents.ids().find((id) => h.orchestrator.fleet.ringOf(id) === 'prod') as string;
    await h.orchestrator.fleet.override(sick, 'prod', true, 'kept here by an operator');
    for (let i = 0; i < 3; i++) {
      h.fleet.get(sick)?.setMetrics({ cpu: 97, memory: 95, charging: false, battery: 12 });
      await h.advance(5000);
    }
    const advice = await advisor.advise({ fleet: true });
    expect(advice.moves).toEqual([expect.objectContaining({ deviceId: sick, from: 'prod', to: 'dev' })]);
    expect(advice.moves[0]?.reason).toMatch(/^risk \d+(\.\d)? \(fails the seed health rule: .*\) in prod, which is meant for healthy devices; pinned to prod by an operator$/);
    expect(advice.rings.find((r) => r.ring === 'prod')?.risk).not.toBe('low');
    expect(h.orchestrator.fleet.ringOf(sick)).toBe('prod');
    const applied = await advisor.apply(advice.id, 'ops');
    expect(applied.applied).toMatchObject({ by: 'ops', actions: [{ action: 'move', target: sick, ok: true, detail: 'moved to dev and pinned there' }] });
    expect(h.orchestrator.fleet.ringOf(sick)).toBe('dev');
    await expect(advisor.apply(advice.id, 'ops')).rejects.toMatchObject({ code: 'ORCH_ADVICE_APPLIED' });
    await advisor.stop();
  });
});
