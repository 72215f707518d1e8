import { describe, expect, it } from 'vitest';
import { waitFor } from '../support/server-process.js';
import { serverPerFile } from '../support/in-process.js';

const srv = serverPerFile({ HEARTBEAT_INTERVAL: '200ms', AGENT_TIMEOUT: '5s', DEFAULT_AGENTS: '12' });
const { call } = srv;

interface Advice {
  id: string;
  subject: Record<string, unknown>;
  trigger: string;
  decision: string | null;
  risk: string;
  confidence: number;
  rings: { ring: string; risk: string; reasons: string[] }[];
  moves: unknown[];
  summary: string;
  evidence: Record<string, unknown>;
  provider: { name: string; model: string | null; fallback: string | null };
  cost: { inputTokens: number; outputTokens: number; ms: number };
  applied: { at: string; by: string; actions: { action: string; target: string; ok: boolean; detail: string }[] } | null;
}

describe('/api/v1/advice over HTTP', () => {
  it('advises on the fleet and on a ring with the analyser alone, says so, and stores the advice', async () => {
    const fleet = await call('POST', '/api/v1/advice', { subject: { fleet: true } });
    expect(fleet.status).toBe(201);
    const a = fleet.body as unknown as Advice;
    expect(a).toMatchObject({ subject: { fleet: true }, trigger: 'request', decision: null, provider: { name: 'analyser', model: null, fallback: null }, cost: { inputTokens: 0, outputTokens: 0 }, applied: null });
    expect(a.rings.map((r) => r.ring)).toEqual(['canary', 'dev', 'stage', 'prod']);
    expect(['low', 'medium', 'high', 'unknown']).toContain(a.risk);
    expect(a.summary.length).toBeGreaterThan(10);
    expect((await call('GET', `/api/v1/advice/${a.id}`)).body).toEqual(fleet.body);

    const ring = await call('POST', '/api/v1/advice', { subject: { ring: 'prod' } });
    expect(ring.body).toMatchObject({ subject: { ring: 'prod' }, rings: [{ ring: 'prod' }] });
    expect(await call('POST', '/api/v1/advice', { subject: { ring: 'moon' } })).toMatchObject({ status: 400, body: { code: 'ORCH_UNKNOWN_RING' } });
  });

  it('reads gating factors in words into a gate of the plan, offline, and the gate is accepted by a plan', async () => {
    const parsed = await call('POST', '/api/v1/gating/parse', { text: 'halt if battery drain rises more than 5% per hour on laptops in Coimbatore, or if more than 2% fail' });
    expect(parsed.body).toMatchObject({
      gate: { maxBatteryDrainRegression: 5, maxFailureShare: 0.02 },
      notUnderstood: [{ phrase: 'on laptops in coimbatore' }],
      provider: { name: 'analyser', model: null, fallback: null },
    });
    const plan = { stages: [{ ring: 'canary', gate: parsed.body.gate }] };
    expect((await call('POST', '/api/v1/deployments', { name: 'gated by words', payload: { type: 'health_check' }, plan })).status).toBe(201);
    expect((await call('POST', '/api/v1/gating/parse', { text: '' })).body).toMatchObject({ code: 'ORCH_VALIDATION' });
    expect((await call('POST', '/api/v1/gating/parse', { text: 'x'.repeat(2001) })).body).toMatchObject({ code: 'ORCH_VALIDATION' });
  });

  it('refuses a subject that is not exactly one of deployment, ring or fleet, and unknown ids', async () => {
    for (const body of [{}, { subject: {} }, { subject: { ring: 'prod', fleet: true } }, { subject: { fleet: false } }, { subject: { planet: 'x' } }]) {
      expect((await call('POST', '/api/v1/advice', body)).body).toMatchObject({ code: 'ORCH_VALIDATION' });
    }
    expect(await call('POST', '/api/v1/advice', { subject: { deployment: 'nope' } })).toEqual({ status: 404, body: { error: 'deployment nope not found', code: 'ORCH_DEPLOYMENT_NOT_FOUND' } });
    expect(await call('GET', '/api/v1/advice/nope')).toEqual({ status: 404, body: { error: 'advice nope not found', code: 'ORCH_ADVICE_NOT_FOUND' } });
    expect((await call('POST', '/api/v1/advice/nope/apply')).status).toBe(404);
    expect((await call('GET', '/api/v1/advice?limit=0')).status).toBe(400);
    expect((await call('GET', '/api/v1/advice?subject=galaxy')).status).toBe(400);
  });

  it('explains a halt at once, links it from the deployment, names the cause, and applies only once', async () => {
    // Every device that runs this payload fails it. Agents offer random task types (at least one offers each):
    // rings without a capable device pass on no evidence (minJudged 0), and the first ring with one halts.
    const fast = (ring: string) => ({ ring, rate: { maxPerMinute: 6000 }, soakMs: 300, gate: { minDevices: 1, minJudged: 0, observeMs: 100 } });
    const created = await call('POST', '/api/v1/deployments', {
      name: 'broken data job',
      payload: { type: 'process_data', params: { data: 'not a list' } },
      plan: { stages: ['canary', 'dev', 'stage', 'prod'].map(fast) },
      start: true,
    });
    const id = created.body.id as string;
    const halted = await waitFor(async () => {
      const d = await call('GET', `/api/v1/deployments/${id}`);
      return d.body.status === 'halted' && d.body.haltAdvice !== null ? d.body : undefined;
    }, 20_000);
    const link = halted.haltAdvice as { id: string; url: string; summary: string };
    expect(link.url).toBe(`/api/v1/advice/${link.id}`);
    const advice = (await call('GET', link.url)).body as unknown as Advice;
    expect(advice).toMatchObject({ subject: { deployment: id }, trigger: 'halt', decision: 'halt', provider: { name: 'analyser' } });
    const analyses = advice.evidence.analyses as { ring: string; verdict: string; devices: { updated: number }; rootCause: { metric: string } | null; metrics: { metric: string; rating: string }[] }[];
    const failing = analyses.at(-1);
    expect(failing?.ring).toBe((halted.stage as { ring: string }).ring);
    if (failing?.verdict === 'fail') {
      // Enough updates for the analyser's tests: it names the cause.
      expect(advice.risk).toBe('high');
      expect(advice.summary).toMatch(/^The deployment is halted \(halted at ring \w+: .*\)\. Halt before more devices get it: the release fails ring \w+ \(score \d+(\.\d)? of 100, a critical metric\)\. failures: \d+ of \d+ devices \(100%\) failed/);
      expect(failing).toMatchObject({ verdict: 'fail', rootCause: { metric: 'failures' } });
      expect(failing?.metrics.find((m) => m.metric === 'failures')?.rating).toBe('high');
      // Rings after it are rated: not reached, after a failing one.
      expect(advice.rings.slice(analyses.length).every((r) => r.risk === 'high' && r.reasons[0] === 'not reached; the release failed an earlier ring')).toBe(true);
    } else {
      // Too few updates for the analyser to tell (the agents' task types are random, so the halting ring may have
      // one or two capable devices): not a pass; the gate's reason stands, and so does the halt.
      expect(failing?.verdict).toBe('inconclusive');
      expect(advice.risk).toBe('unknown');
      expect(advice.summary).toMatch(/^The deployment is halted \(halted at ring \w+: (\d+) of \1 devices \(100%\) failed.*\)\. Keep it halted: the gate's reason stands; the analyser cannot judge yet: \1 devices? updated so far in \w+, too few to judge/);
    }

    // Listed under its subject, and by trigger.
    const listed = await call('GET', `/api/v1/advice?subject=deployment:${id}&trigger=halt`);
    expect((listed.body.advice as Advice[]).map((x) => x.id)).toEqual([advice.id]);

    // Applying a halt to a halted deployment: the action is refused by its state, and that is what is recorded.
    const applied = await call('POST', `/api/v1/advice/${advice.id}/apply`);
    expect(applied.status).toBe(200);
    expect((applied.body as unknown as Advice).applied).toMatchObject({ by: 'local', actions: [{ action: 'halt', target: id, ok: false }] });
    expect((applied.body as unknown as Advice).applied?.actions[0]?.detail).toMatch(/is halted; halt applies to in_progress, paused/);
    expect(await call('POST', `/api/v1/advice/${advice.id}/apply`)).toEqual({ status: 409, body: { error: `advice ${advice.id} was applied already`, code: 'ORCH_ADVICE_APPLIED' } });

    // A fresh request on the halted deployment advises the same, and pages newest first.
    const again = await call('POST', '/api/v1/advice', { subject: { deployment: id } });
    expect(again.body).toMatchObject({ trigger: 'request', decision: 'halt' });
    const page1 = await call('GET', `/api/v1/advice?subject=deployment:${id}&limit=1`);
    expect((page1.body.advice as Advice[])[0]?.id).toBe((again.body as unknown as Advice).id);
    const page2 = await call('GET', `/api/v1/advice?subject=deployment:${id}&limit=1&cursor=${String(page1.body.nextCursor)}`);
    expect((page2.body.advice as Advice[])[0]?.id).toBe(advice.id);
    expect(page2.body.nextCursor).toBeNull();
  });
});
