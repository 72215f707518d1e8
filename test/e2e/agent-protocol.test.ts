import { describe, expect, it } from 'vitest';
import { waitFor } from '../support/server-process.js';
import { serverPerFile } from '../support/in-process.js';

const TOKEN = 'test-enroll-token-0123456789';
const srv = serverPerFile({ HEARTBEAT_INTERVAL: '1s', AGENT_TIMEOUT: '5s', DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN });
const base = (): string => srv.base();
const { call } = srv;

const metrics = { battery: null, charging: null, cpu: 12.5, memory: 40, disk: 55 };

async function agentCall(auth: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base()}${path}`, {
    method,
    headers: { 'content-type': 'application/json', authorization: auth },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function enroll(): Promise<{ agentId: string; credential: string; auth: string }> {
  const res = await call('POST', '/api/v1/agent/enroll', { token: TOKEN, hostname: 'laptop-1', osVersion: 'Linux 6.1', capabilities: ['health_check', 'deploy'], metrics });
  expect(res.status).toBe(200);
  const { agentId, credential } = res.body as { agentId: string; credential: string };
  return { agentId, credential, auth: `Bearer ${agentId}:${credential}` };
}

describe('the network agent protocol over HTTP', () => {
  it('enrolls an agent, which then holds its identity; other credentials and tokens are refused', async () => {
    const a = await enroll();
    expect(a.agentId).toMatch(/^slave-[0-9a-f]{8}$/);
    expect(a.credential.length).toBeGreaterThanOrEqual(40);
    const agent = await call('GET', `/api/v1/agents/${a.agentId}`);
    expect(agent.body).toMatchObject({ slave_id: a.agentId, connectivity: 'online', capabilities: ['health_check', 'deploy'] });
    // A machine without a battery is on mains power: healthy, with no made-up level or charger in any view.
    expect(agent.body.device_info).toMatchObject({ battery_level: null, battery_charging: null, is_healthy: true });
    const device = (await call('GET', `/api/v1/devices/${a.agentId}`)).body as { metrics: Record<string, unknown>; health: { score: number } };
    expect(device.metrics).toMatchObject({ battery: null, charging: null, cpu: 12.5 });
    // Scored as a machine on mains power: no battery factor counts against it.
    expect(device.health.score).toBeGreaterThan(80);
    const again = await call('POST', '/api/v1/agent/enroll', { token: TOKEN, agentId: a.agentId, credential: a.credential, hostname: 'laptop-1', capabilities: ['health_check'], metrics });
    expect(again.body).toMatchObject({ agentId: a.agentId, credential: a.credential });
    expect(await call('POST', '/api/v1/agent/enroll', { token: TOKEN, agentId: a.agentId, credential: 'x'.repeat(43), hostname: 'evil', capabilities: [], metrics })).toMatchObject({ status: 409, body: { code: 'ORCH_AGENT_IDENTITY' } });
    expect(await call('POST', '/api/v1/agent/enroll', { token: 'wrong-token-000000000', hostname: 'h', capabilities: [], metrics })).toMatchObject({ status: 403, body: { code: 'ORCH_ENROLL_REFUSED' } });
    // A verified credential is remembered in memory; another one of the same length is still refused after it.
    expect(await agentCall(a.auth, 'POST', '/api/v1/agent/heartbeat', { seq: 1, metrics, running: [] })).toMatchObject({ status: 200, body: { ok: true, seq: 1 } });
    expect(await agentCall(`Bearer ${a.agentId}:${'y'.repeat(43)}`, 'POST', '/api/v1/agent/heartbeat', { seq: 2, metrics, running: [] })).toMatchObject({ status: 401, body: { code: 'ORCH_UNAUTHORIZED' } });
    expect(await agentCall(`Bearer ${a.agentId}:${a.credential.slice(0, -1)}${a.credential.endsWith('A') ? 'B' : 'A'}`, 'POST', '/api/v1/agent/heartbeat', { seq: 3, metrics, running: [] })).toMatchObject({ status: 401 });
    expect((await agentCall('', 'GET', '/api/v1/agent/commands?waitMs=0')).status).toBe(401);
  });

  it("keeps the model, manufacturer and OS name an agent reports as its device's attributes, and not its host name", async () => {
    const res = await call('POST', '/api/v1/agent/enroll', { token: TOKEN, hostname: 'laptop-7', osVersion: 'Linux 6.1', model: 'ThinkPad X1 Carbon Gen 11', manufacturer: 'LENOVO', osName: 'Ubuntu 24.04', capabilities: ['health_check'], metrics });
    expect(res.status).toBe(200);
    const device = await call('GET', `/api/v1/devices/${String(res.body.agentId)}`);
    expect(device.body).toMatchObject({ model: 'ThinkPad X1 Carbon Gen 11', manufacturer: 'LENOVO', osName: 'Ubuntu 24.04' });
    // An agent that does not say has no model, rather than its host name for one.
    const quiet = await call('POST', '/api/v1/agent/enroll', { token: TOKEN, hostname: 'laptop-8', capabilities: [], metrics });
    expect((await call('GET', `/api/v1/devices/${String(quiet.body.agentId)}`)).body).toMatchObject({ model: null, manufacturer: null, osName: null });
    expect((await call('POST', '/api/v1/agent/enroll', { token: TOKEN, hostname: 'h', model: 'x'.repeat(201), capabilities: [], metrics })).status).toBe(400);
    expect((await call('POST', '/api/v1/agent/enroll', { token: TOKEN, hostname: 'h', manufacturer: '', capabilities: [], metrics })).status).toBe(400);
  });

  it('a task submitted for the agent reaches its long-poll within a second; the result completes it once; a stale one is refused', async () => {
    const a = await enroll();
    // What is queued at enrollment (its ring) is taken and acknowledged first.
    const first = (await agentCall(a.auth, 'GET', '/api/v1/agent/commands?waitMs=0')).body.commands as { id: number; type: string }[];
    expect(first.map((c) => c.type)).toEqual(['ring_assignment']);
    const acked = first.at(-1)?.id ?? 0;
    // The agent waits on its long-poll before the task exists.
    const t0 = Date.now();
    const poll = agentCall(a.auth, 'GET', `/api/v1/agent/commands?waitMs=10000&ack=${acked}`);
    const submitted = await call('POST', '/api/v1/tasks', { type: 'health_check', target: { agentId: a.agentId } });
    expect(submitted.status).toBe(201);
    const got = await poll;
    const startedWithin = Date.now() - t0;
    expect(startedWithin).toBeLessThan(1000);
    const [cmd] = got.body.commands as { id: number; type: string; taskId: string; attempt: number; taskType: string; timeoutMs: number }[];
    expect(cmd).toMatchObject({ type: 'task_assignment', taskId: submitted.body.id, attempt: 1, taskType: 'health_check' });
    // Not acknowledged yet: the next poll hands it out again; acknowledged, it is gone.
    expect(((await agentCall(a.auth, 'GET', '/api/v1/agent/commands?waitMs=0')).body.commands as unknown[]).length).toBe(1);
    expect((await agentCall(a.auth, 'GET', `/api/v1/agent/commands?waitMs=0&ack=${cmd?.id ?? 0}`)).body.commands).toEqual([]);
    expect((await agentCall(a.auth, 'POST', '/api/v1/agent/progress', { taskId: cmd?.taskId, attempt: 1 })).status).toBe(200);
    const results = await agentCall(a.auth, 'POST', '/api/v1/agent/results', {
      results: [
        { taskId: cmd?.taskId, attempt: 1, success: true, result: { cpu: 12.5 } },
        { taskId: cmd?.taskId, attempt: 7, success: true },
      ],
    });
    expect(results.body.results).toEqual([
      { taskId: cmd?.taskId, attempt: 1, status: 'accepted' },
      { taskId: cmd?.taskId, attempt: 7, status: 'refused', code: 'ORCH_STALE_ATTEMPT', error: expect.stringMatching(/^attempt 7 of task .* is no longer current \(the task is completed\)$/) as unknown },
    ]);
    const task = await call('GET', `/api/v1/tasks/${String(submitted.body.id)}`);
    expect(task.body).toMatchObject({ status: 'completed', result: { cpu: 12.5 }, attempts: 1 });
  });

  it('heartbeats keep an agent online and report its metrics; a silent one goes offline and its task is requeued', async () => {
    const a = await enroll();
    for (let seq = 1; seq <= 3; seq++) {
      expect((await agentCall(a.auth, 'POST', '/api/v1/agent/heartbeat', { seq, metrics: { ...metrics, cpu: 30 + seq }, running: [] })).body).toEqual({ ok: true, seq });
      await new Promise((r) => setTimeout(r, 300));
    }
    const device = await call('GET', `/api/v1/devices/${a.agentId}`);
    expect(device.body).toMatchObject({ status: 'online', metrics: { cpu: 33 } });
    const task = await call('POST', '/api/v1/tasks', { type: 'deploy', params: { version: '2' }, target: { agentId: a.agentId }, maxAttempts: 3 });
    const got = await agentCall(a.auth, 'GET', '/api/v1/agent/commands?waitMs=5000');
    expect((got.body.commands as { taskId: string }[]).map((c) => c.taskId)).toContain(task.body.id);
    // Silence: offline within the detector's bound (AGENT_TIMEOUT 5 s here), and the attempt is counted.
    const offlineAt = await waitFor(async () => ((await call('GET', `/api/v1/agents/${a.agentId}`)).body.connectivity === 'offline' ? Date.now() : undefined), 10_000, 200);
    expect(offlineAt).toBeGreaterThan(0);
    const requeued = await waitFor(async () => {
      const t = await call('GET', `/api/v1/tasks/${String(task.body.id)}`);
      // The live status changes first; the ended attempt's record commits a moment later.
      const history = t.body.attemptHistory as unknown[] | undefined;
      return t.body.status === 'pending' && (t.body.attempts as number) === 1 && (history?.length ?? 0) > 0 ? t.body : undefined;
    }, 5000, 100);
    expect((requeued.attemptHistory as { outcome: string; agentId: string }[])[0]).toMatchObject({ outcome: 'agent_lost', agentId: a.agentId });
  });

  it('an empty long-poll ends after its wait, cut by at most 20% at random, so agents that came together spread out', async () => {
    const a = await enroll();
    const first = (await agentCall(a.auth, 'GET', '/api/v1/agent/commands?waitMs=0')).body.commands as { id: number }[];
    const ack = first.at(-1)?.id ?? 0;
    const waits = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const b = await enroll();
        await agentCall(b.auth, 'GET', '/api/v1/agent/commands?waitMs=0');
        const started = Date.now();
        const r = await agentCall(b.auth, 'GET', `/api/v1/agent/commands?waitMs=1500&ack=${Number.MAX_SAFE_INTEGER}`);
        expect(r.body.commands).toEqual([]);
        return Date.now() - started;
      }),
    );
    for (const w of waits) {
      expect(w).toBeGreaterThanOrEqual(1500 * 0.8 - 20);
      expect(w).toBeLessThan(1500 + 500);
    }
    // The cut is uniform over 0–300 ms: six waits all within 30 ms of the full wait would be a 1-in-400,000 chance.
    expect(Math.min(...waits)).toBeLessThan(1470);
    // Under a second there is no jitter: waitMs=0 answers at once.
    const started = Date.now();
    expect((await agentCall(a.auth, 'GET', `/api/v1/agent/commands?waitMs=0&ack=${ack}`)).body.commands).toEqual([]);
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('refuses malformed protocol messages with 400', async () => {
    const a = await enroll();
    for (const [path, body] of [
      ['/api/v1/agent/heartbeat', { seq: -1, metrics, running: [] }],
      ['/api/v1/agent/heartbeat', { seq: 1, metrics: { ...metrics, cpu: 300 }, running: [] }],
      ['/api/v1/agent/results', { results: [] }],
      ['/api/v1/agent/results', { results: [{ taskId: 't', attempt: 0, success: true }] }],
    ] as const) {
      const res = await agentCall(a.auth, 'POST', path, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.code).toBe('ORCH_VALIDATION');
    }
    expect((await call('POST', '/api/v1/agent/enroll', { token: TOKEN, hostname: 'h', capabilities: ['teleport'], metrics })).status).toBe(400);
  });

  it('heartbeats are written behind (within a second) and flushed when the orchestrator stops', async () => {
    const a = await enroll();
    expect((await agentCall(a.auth, 'POST', '/api/v1/agent/heartbeat', { seq: 1, metrics: { ...metrics, cpu: 71 }, running: [] })).status).toBe(200);
    // Held back at most a second: after that the store has it.
    await new Promise((r) => setTimeout(r, 1300));
    expect((await srv.server().store.loadDevices('', 1000)).find((d) => d.id === a.agentId)?.metrics?.cpu).toBe(71);
    // The next one is still held back when the orchestrator stops; stopping writes it.
    expect((await agentCall(a.auth, 'POST', '/api/v1/agent/heartbeat', { seq: 2, metrics: { ...metrics, cpu: 77 }, running: [] })).status).toBe(200);
    await srv.restart();
    expect((await call('GET', `/api/v1/devices/${a.agentId}`)).body).toMatchObject({ metrics: { cpu: 77 } });
  });

  it('the OpenAPI document describes the protocol routes with their schemas', async () => {
    const doc = await call('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe('3.0.3');
    const paths = doc.body.paths as Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { required?: string[] } }> } }>>;
    for (const p of ['/api/v1/agent/enroll', '/api/v1/agent/heartbeat', '/api/v1/agent/results', '/api/v1/agent/progress']) expect(paths[p]?.post, p).toBeDefined();
    expect(paths['/api/v1/agent/commands']?.get).toBeDefined();
    expect(paths['/api/v1/agent/heartbeat']?.post?.requestBody?.content['application/json']?.schema.required).toEqual(['seq', 'metrics', 'running']);
    expect(paths['/api/v1/tasks']?.post).toBeDefined();
    expect(paths['/openapi.json']).toBeUndefined();
  });

  it('an agent that reports running an attempt it no longer holds is told to drop it', async () => {
    const a = await enroll();
    const first = (await agentCall(a.auth, 'GET', '/api/v1/agent/commands?waitMs=0')).body.commands as { id: number }[];
    const ack = first.at(-1)?.id ?? 0;
    expect((await agentCall(a.auth, 'POST', '/api/v1/agent/heartbeat', { seq: 1, metrics, running: [{ taskId: 'gone-task', attempt: 3 }] })).status).toBe(200);
    const got = (await agentCall(a.auth, 'GET', `/api/v1/agent/commands?waitMs=0&ack=${ack}`)).body.commands as { type: string; taskId: string; attempt: number }[];
    expect(got).toEqual([expect.objectContaining({ type: 'cancel', taskId: 'gone-task', attempt: 3 })]);
  });
});
