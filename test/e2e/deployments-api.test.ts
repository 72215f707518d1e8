import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../support/server-process.js';
import { serverPerFile } from '../support/in-process.js';

const srv = serverPerFile({ HEARTBEAT_INTERVAL: '200ms', AGENT_TIMEOUT: '5s', DEFAULT_AGENTS: '5' });
const { call } = srv;
const base = (): string => srv.base();

describe('/api/v1/deployments over HTTP', () => {
  it('refuses an invalid deployment with every problem listed, and unknown ids and actions', async () => {
    const bad = await call('POST', '/api/v1/deployments', { name: 'x', payload: { type: 'deploy' }, plan: { stages: [{ ring: 'moon' }] }, autoRollback: 'yes' });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('ORCH_VALIDATION');
    expect(bad.body.errors).toEqual(['autoRollback: must be true or false', 'plan.stages[0].ring: must name one of the rings (canary, dev, stage, prod)']);
    expect((await call('POST', '/api/v1/deployments', '[1,2]')).status).toBe(400);
    expect(await call('GET', '/api/v1/deployments/nope')).toEqual({ status: 404, body: { error: 'deployment nope not found', code: 'ORCH_DEPLOYMENT_NOT_FOUND' } });
    expect((await call('POST', '/api/v1/deployments/nope/start')).status).toBe(404);
    expect((await call('GET', '/api/v1/deployments?limit=0')).status).toBe(400);
  });

  it('halts a deployment by an operator, with a reason kept in the halt, and takes an acknowledgement after it', async () => {
    const created = await call('POST', '/api/v1/deployments', { name: 'held back', payload: { type: 'health_check', params: {} }, plan: { stages: [{ ring: 'prod', soakMs: 3_600_000 }] } });
    const id = created.body.id as string;
    expect((await call('POST', `/api/v1/deployments/${id}/halt`)).body).toMatchObject({ code: 'ORCH_DEPLOYMENT_STATE' });
    await call('POST', `/api/v1/deployments/${id}/start`);
    const bad = await call('POST', `/api/v1/deployments/${id}/halt`, { reason: 42 });
    expect(bad).toMatchObject({ status: 400, body: { code: 'ORCH_VALIDATION' } });
    expect((await call('POST', `/api/v1/deployments/${id}/halt`, { reason: 'x', extra: 1 })).status).toBe(400);
    const halted = await call('POST', `/api/v1/deployments/${id}/halt`, { reason: 'the vendor recalled this build' });
    expect(halted).toMatchObject({ status: 200, body: { status: 'halted', haltReason: 'halted at ring prod by an operator: the vendor recalled this build' } });
    expect((await call('POST', `/api/v1/deployments/${id}/halt`)).status).toBe(409);
    const detail = await call('GET', `/api/v1/deployments/${id}`);
    expect((detail.body.evaluations as { verdict: string; reason: string }[]).at(-1)).toMatchObject({ verdict: 'override', reason: 'ring prod: halted at ring prod by an operator: the vendor recalled this build' });
    expect((await call('POST', `/api/v1/deployments/${id}/acknowledge`)).body).toMatchObject({ status: 'in_progress', haltReason: null });
    expect((await call('POST', `/api/v1/deployments/${id}/abort`)).body).toMatchObject({ status: 'cancelled' });
  });

  it('creates, starts and completes a deployment over the default plan with fast stages, visible to the seed endpoint too', async () => {
    const fast = (ring: string) => ({ ring, rate: { maxPerMinute: 6000 }, soakMs: 500, gate: { minDevices: 1, observeMs: 300 } });
    const created = await call('POST', '/api/v1/deployments', {
      name: 'agent 2.5',
      payload: { type: 'health_check', params: {} },
      plan: { stages: ['canary', 'dev', 'stage', 'prod'].map(fast) },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'agent 2.5', status: 'scheduled', kind: 'rollout' });
    const id = created.body.id as string;
    expect((await call('POST', `/api/v1/deployments/${id}/acknowledge-and-resume`)).status).toBe(409);
    expect((await call('POST', `/api/v1/deployments/${id}/explode`)).body.code).toBe('ORCH_NOT_FOUND');
    const started = await call('POST', `/api/v1/deployments/${id}/start`);
    // Six devices leave the canary ring (5%) empty: it is passed at once, without a soak.
    expect(started.body).toMatchObject({ status: 'in_progress', stage: { index: 1, ring: 'dev' }, pauseReason: null, outcome: null });
    // The agents offer random task types: a ring whose devices all lack health_check has no evidence, and
    // pauses for an operator instead of passing; the operator here promotes it.
    let promoted = 0;
    const done = await waitFor(async () => {
      const d = await call('GET', `/api/v1/deployments/${id}`);
      if (d.body.status === 'paused') {
        expect(d.body.pauseReason).toBe('insufficient_evidence');
        expect(d.body.haltReason).toMatch(/^insufficient evidence at ring \w+: 0 of (\d+) devices could be judged, below the 1 required \(minJudged\); not judged: \1 skipped \(the agent does not offer task type health_check: \1\); paused: /);
        const promotedTo = await call('POST', `/api/v1/deployments/${id}/promote`);
        // Promoting the last ring completes the deployment.
        expect(promotedTo.body).toMatchObject({ status: (d.body.stage as { ring: string }).ring === 'prod' ? 'completed' : 'in_progress', pauseReason: null, haltReason: null });
        promoted++;
        return undefined;
      }
      return d.body.status === 'completed' ? d.body : undefined;
    }, 30_000);
    const progress = done.progress as { rings: { ring: string; reached: boolean; devices: number; counts: Record<string, number>; lastEvaluation: { verdict: string; reason: string } }[]; counts: Record<string, number> };
    expect(progress.rings.map((r) => r.ring)).toEqual(['canary', 'dev', 'stage', 'prod']);
    expect(progress.rings.every((r) => r.reached)).toBe(true);
    // Every agent that offers health_check ran it; the others were skipped for it.
    expect((progress.counts.succeeded ?? 0) + (progress.counts.skipped ?? 0)).toBe(6);
    expect(progress.counts.succeeded).toBeGreaterThan(0);
    const executions = done.executions as { state: string; reason: string | null; baseline: unknown }[];
    for (const e of executions.filter((x) => x.state === 'skipped')) expect(e.reason).toBe('the agent does not offer task type health_check');
    // A device's metrics just before its update: the reading and its drain, in the API's names.
    for (const e of executions.filter((x) => x.state === 'succeeded')) {
      const b = e.baseline as Record<string, unknown>;
      expect(Object.keys(b).sort()).toEqual(['battery', 'charging', 'cpu', 'disk', 'drain', 'memory']);
      expect(Object.entries(b).map(([k, v]) => [k, typeof v])).toEqual(Object.keys(b).map((k) => [k, k === 'charging' ? 'boolean' : 'number']));
      // To a tenth, as the device view shows them: not the float32 they are kept in (7.400000095367432 for 7.4).
      for (const v of Object.values(b)) if (typeof v === 'number') expect(Math.round(v * 10) / 10).toBe(v);
    }
    // Each ring ends with what let the rollout past it: a pass on evidence, an empty ring skipped, or an operator's override of a pause.
    for (const r of progress.rings) {
      if (r.devices === 0) expect(r.lastEvaluation).toMatchObject({ verdict: 'skip', reason: `ring ${r.ring} has no devices: skipped at once, without a soak` });
      else if (r.counts.succeeded === 0) expect(r.lastEvaluation.verdict).toBe('override');
      else expect(r.lastEvaluation.verdict).toBe('pass');
    }
    expect(progress.rings[0]?.devices).toBe(0);
    expect((done.evaluations as { verdict: string }[]).filter((e) => e.verdict === 'insufficient_evidence')).toHaveLength(promoted);
    // Completed, and the outcome says who did not get the release and why.
    const skipped = progress.counts.skipped ?? 0;
    expect(done.outcome).toEqual({
      devices: 6,
      updated: progress.counts.succeeded,
      notUpdated: skipped,
      counts: progress.counts,
      summary: skipped === 0 ? 'all 6 devices updated' : `${progress.counts.succeeded} of 6 devices updated; not updated: ${skipped} skipped (the agent does not offer task type health_check: ${skipped})`,
    });
    const impact = await call('GET', `/api/v1/deployments/${id}/impact?limit=3`);
    expect((impact.body.devices as unknown[]).length).toBeLessThanOrEqual(3);
    const listed = await call('GET', '/api/v1/deployments');
    expect((listed.body.deployments as { id: string }[]).map((d) => d.id)).toContain(id);
    const seedView = await call('GET', `/deployment_status?deployment_id=${id}`);
    expect(seedView.body.status).toBe('completed');
    expect((await call('POST', `/api/v1/deployments/${id}/pause`)).status).toBe(409);
  });

  it('the seed endpoints run as deployments of the same model, with per-device impact', async () => {
    const started = await call('POST', '/start_deployment', { deployment_id: 'seed-1' });
    expect(started.status).toBe(200);
    const affected = started.body.affected_agents as string[];
    expect(affected.length).toBeGreaterThanOrEqual(1);
    const detail = await call('GET', '/api/v1/deployments/seed-1');
    expect(detail.body).toMatchObject({ kind: 'seed', status: 'in_progress' });
    const executions = detail.body.executions as { deviceId: string; state: string; impact: { cpu: number } | null }[];
    expect(executions.map((e) => e.deviceId).sort()).toEqual([...affected].sort());
    expect(executions.every((e) => e.state === 'succeeded' && e.impact !== null)).toBe(true);
    expect((await call('POST', '/api/v1/deployments/seed-1/pause')).status).toBe(409);
    const completed = await call('POST', '/complete_deployment', { deployment_id: 'seed-1' });
    expect(completed.body.status).toBe('completed');
    expect((await call('GET', '/api/v1/deployments/seed-1')).body.status).toBe('completed');
  });
});

describe('hostile input on the deployment routes', () => {
  it('no random deployment, action or query gets a 5xx, and every error has the error shape', async () => {
    const stageArb = fc.record(
      {
        ring: fc.oneof(fc.constantFrom('canary', 'dev', 'prod'), fc.string()),
        rate: fc.oneof(fc.record({ maxPerMinute: fc.oneof(fc.double(), fc.integer()) }), fc.record({ exponential: fc.record({ base: fc.double(), factor: fc.double(), every: fc.integer(), max: fc.jsonValue() }, { requiredKeys: [] }) }), fc.jsonValue()),
        soakMs: fc.oneof(fc.integer(), fc.jsonValue()),
        gate: fc.oneof(fc.dictionary(fc.constantFrom('maxFailureShare', 'minDevices', 'confidence', 'observeMs', 'bogus'), fc.oneof(fc.double(), fc.jsonValue())), fc.jsonValue()),
        preflight: fc.oneof(fc.dictionary(fc.constantFrom('minBattery', 'requireCharging', 'minFreeDisk'), fc.jsonValue()), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    const body = fc.record(
      {
        name: fc.oneof(fc.string(), fc.jsonValue()),
        payload: fc.oneof(fc.record({ type: fc.oneof(fc.constantFrom('deploy', 'health_check'), fc.string()), params: fc.jsonValue() }, { requiredKeys: [] }), fc.jsonValue()),
        plan: fc.oneof(fc.record({ stages: fc.array(stageArb, { maxLength: 5 }) }), fc.jsonValue()),
        maintenanceWindows: fc.oneof(fc.array(fc.record({ days: fc.jsonValue(), start: fc.oneof(fc.constant('22:00'), fc.string()), end: fc.string() }), { maxLength: 3 }), fc.jsonValue()),
        autoRollback: fc.jsonValue(),
        start: fc.constant(false),
      },
      { requiredKeys: [] },
    );
    const request = fc.oneof(
      fc.tuple(fc.constant('POST'), fc.constant('/api/v1/deployments'), fc.oneof(body.map((b) => JSON.stringify(b)), fc.string())),
      fc.tuple(fc.constant('POST'), fc.tuple(fc.constantFrom('seed-1', 'nope', '%20'), fc.oneof(fc.constantFrom('start', 'pause', 'rollback', 'acknowledge-and-resume'), fc.string({ minLength: 1 }))).map(([id, a]) => `/api/v1/deployments/${id}/${encodeURIComponent(a)}`), fc.constant(undefined)),
      fc.tuple(fc.constant('GET'), fc.tuple(fc.constantFrom('limit', 'cursor', 'state', 'x'), fc.string()).map(([k, v]) => `/api/v1/deployments?${k}=${encodeURIComponent(v)}`), fc.constant(undefined)),
      fc.tuple(fc.constant('GET'), fc.string().map((v) => `/api/v1/deployments/seed-1/impact?limit=${encodeURIComponent(v)}`), fc.constant(undefined)),
    );
    let requests = 0;
    await fc.assert(
      fc.asyncProperty(request, async ([method, path, payload]) => {
        requests++;
        const res = await fetch(`${base()}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(payload === undefined ? {} : { body: payload }) });
        expect(res.status, `${method} ${path} ${payload ?? ''}`).toBeLessThan(500);
        const json = (await res.json()) as Record<string, unknown>;
        if (res.status >= 400) {
          expect(typeof json.error).toBe('string');
          expect(typeof json.code).toBe('string');
        }
      }),
      { numRuns: 300, seed: 2028 },
    );
    expect(requests).toBe(300);
  });
});
