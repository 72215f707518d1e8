import { describe, expect, it } from 'vitest';
import { securityOf } from '../../src/api/openapi.js';
import { taskJson, taskV1Json } from '../../src/api/views.js';
import { DASHBOARD_PAGES, ROUTE_ACCESS } from '../../src/security/access.js';
import { fetchAnswer, OpenApiChecker } from '../support/openapi-check.js';
import { waitFor } from '../support/server-process.js';
import { serverPerFile } from '../support/in-process.js';

const ADMIN = 'openapi-admin-token-0123456789-0123456789';
const ENROLL = 'openapi-enroll-token-0123456789';
// The failed-authentication limit is reached on purpose by the last step (a 429 with retry-after).
const AUTH_LIMIT = 5;
const srv = serverPerFile({
  ADMIN_TOKEN: ADMIN,
  ENROLL_TOKEN: ENROLL,
  DEFAULT_AGENTS: '2',
  HEARTBEAT_INTERVAL: '200ms',
  AGENT_TIMEOUT: '5s',
  AUTH_FAILURE_LIMIT: `${AUTH_LIMIT}/1m`,
  ENROLL_RATE_LIMIT: 'off',
});
const metrics = { battery: 64, charging: false, cpu: 21.5, memory: 40, disk: 55 };
/** An hour ahead: a task that waits, with a timer node can hold (a delay over 24.8 days fires at once). */
const later = (): string => new Date(Date.now() + 3_600_000).toISOString();

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

let checker: OpenApiChecker | undefined;
async function docChecker(): Promise<OpenApiChecker> {
  checker ??= await OpenApiChecker.load(srv.base());
  return checker;
}

/** One request; its answer must be what the OpenAPI document says (status, body, headers), or the test fails here. */
async function call(method: string, path: string, body?: unknown, auth: string | null = `Bearer ${ADMIN}`): Promise<Answer> {
  const { res, text, type } = await fetchAnswer(`${srv.base()}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(auth === null ? {} : { authorization: auth }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const c = await docChecker();
  expect(c.check({ method, path, status: res.status, headers: res.headers, text }), `${method} ${path}`).toEqual([]);
  expect(c.match(method, path), `${method} ${path} is an operation of the document`).toBeDefined();
  return { status: res.status, body: type.startsWith('application/json') ? (JSON.parse(text) as Record<string, unknown>) : { text } };
}

async function expectStatus(p: Promise<Answer>, status: number): Promise<Record<string, unknown>> {
  const a = await p;
  expect(a.status, JSON.stringify(a.body)).toBe(status);
  return a.body;
}

/** Fastify's `/status/:task_id` as the document's `/status/{task_id}`. */
const template = (route: string): string => route.replace(/:([a-z_]+)/g, '{$1}');

const DASHBOARD_ROUTES = new Set([...DASHBOARD_PAGES.map((page) => `GET ${page}`), 'GET /assets/:file']);

describe('the OpenAPI document says what the API does', () => {
  it("every operation's security requirement is its route's rule in the access table, and only used schemes are defined", async () => {
    const c = await docChecker();
    const fromTable = Object.entries(ROUTE_ACCESS)
      // The API's description itself, and the dashboard's pages and files (HTML and scripts, not API operations).
      .filter(([route]) => route !== 'GET /openapi.json' && !DASHBOARD_ROUTES.has(route))
      .map(([route, access]) => {
        const [method, url] = route.split(' ') as [string, string];
        return { key: `${method} ${template(url)}`, security: securityOf(access) };
      });
    expect(c.operations().sort()).toEqual(fromTable.map((r) => r.key).sort());
    for (const { key, security } of fromTable) expect({ key, security: c.operation(key).security }).toEqual({ key, security });
    // The rule kinds map to the schemes as documented: nothing for public routes, the token or the agent credential.
    expect(c.operation('GET /healthz').security).toEqual([]);
    expect(c.operation('POST /api/v1/agent/enroll').security).toEqual([]);
    expect(c.operation('GET /cluster_status').security).toEqual([{ token: [] }]);
    expect(c.operation('POST /api/v1/agent/heartbeat').security).toEqual([{ agent: [] }]);
    const used = new Set(c.operations().flatMap((k) => (c.operation(k).security ?? []).flatMap((s) => Object.keys(s))));
    expect(Object.keys(c.doc.components.securitySchemes ?? {}).sort()).toEqual([...used].sort());
    expect(c.doc.openapi).toBe('3.0.3');
  });

  it('every operation has an operationId, a summary and the errors of its access rule', async () => {
    const c = await docChecker();
    const ids = new Set<string>();
    for (const key of c.operations()) {
      const op = c.operation(key) as ReturnType<OpenApiChecker['operation']> & { summary?: string };
      expect(op.operationId, key).toBeDefined();
      expect(ids.has(op.operationId as string), `${key}: operationId ${op.operationId} twice`).toBe(false);
      ids.add(op.operationId as string);
      expect(op.summary, key).toBeDefined();
      const auth = (op.security ?? []).length > 0;
      expect({ key, has401: '401' in op.responses }).toEqual({ key, has401: auth });
      expect(Object.keys(op.responses).some((s) => s.startsWith('2')), key).toBe(true);
    }
  });

  it('every route answers what the document says, and every documented success of every operation is seen', async () => {
    const c = await docChecker();
    // ---- liveness and the prototype's endpoints
    await expectStatus(call('GET', '/healthz', undefined, null), 200);
    await expectStatus(call('GET', '/readyz', undefined, null), 200);
    const spawned = (await expectStatus(call('POST', '/spawn_agent'), 200)).agent_id as string;
    await expectStatus(call('POST', '/add_asset', { id: 'asset-oa', name: 'LAPTOP-OA', site: 'Berlin', department: 'IT', extra: { any: ['thing'] } }), 200);
    await expectStatus(call('POST', '/add_asset', { id: 'asset-oa', name: 'LAPTOP-OA2' }), 200);
    const seedTask = (await expectStatus(call('POST', '/submit_task', { task_type: 'process_data', parameters: { data: [3, 1, 4] }, priority: 2 }), 200)).task_id as string;
    await waitFor(async () => ((await call('GET', `/status/${seedTask}`)).body.status === 'completed' ? true : undefined), 20_000);
    await expectStatus(call('GET', '/list_agents'), 200);
    await expectStatus(call('GET', '/cluster_status'), 200);
    await expectStatus(call('POST', '/start_deployment', { deployment_id: 'oa-seed' }), 200);
    await expectStatus(call('GET', '/deployment_status?deployment_id=oa-seed'), 200);
    await expectStatus(call('POST', '/complete_deployment', { deployment_id: 'oa-seed' }), 200);
    await expectStatus(call('GET', '/asset_details'), 200);
    await expectStatus(call('GET', '/asset_details?asset_id=asset-oa'), 200);
    await expectStatus(call('POST', '/simulate_activity'), 200);

    // ---- agents
    await expectStatus(call('GET', '/api/v1/agents'), 200);
    await expectStatus(call('GET', `/api/v1/agents/${spawned}`), 200);
    await expectStatus(call('GET', `/api/v1/agents/${spawned}/ring-history`), 200);
    await expectStatus(call('DELETE', `/api/v1/agents/${spawned}`), 200);

    // ---- tasks: created (201), the same idempotency key (200), a batch, a list, cancel and retry
    const task = await expectStatus(call('POST', '/api/v1/tasks', { type: 'health_check', target: { ring: 'canary' }, idempotencyKey: 'oa-1', runAfter: later() }), 201);
    await expectStatus(call('POST', '/api/v1/tasks', { type: 'health_check', target: { ring: 'canary' }, idempotencyKey: 'oa-1', runAfter: later() }), 200);
    await expectStatus(call('POST', '/api/v1/tasks/batch', { tasks: [{ type: 'monitor', params: { samples: 1, interval_ms: 10 } }, { type: 'deploy', target: { selector: { site: 'Berlin' } }, deadline: Date.now() + 60_000 }] }), 201);
    await expectStatus(call('GET', '/api/v1/tasks?limit=5'), 200);
    await expectStatus(call('GET', `/api/v1/tasks/${String(task.id)}`), 200);
    await expectStatus(call('POST', `/api/v1/tasks/${String(task.id)}/cancel`), 200);
    // Data that is not numbers fails without retry: a failed task, which can be retried.
    const failing = await expectStatus(call('POST', '/api/v1/tasks', { type: 'process_data', params: { data: ['x'] }, maxAttempts: 1 }), 201);
    await waitFor(async () => ((await call('GET', `/api/v1/tasks/${String(failing.id)}`)).body.status === 'failed' ? true : undefined), 20_000);
    await expectStatus(call('POST', `/api/v1/tasks/${String(failing.id)}/retry`), 200);

    // ---- devices and rings
    await expectStatus(call('POST', '/api/v1/devices', { devices: [{ id: 'oa-dev-1', site: 'Berlin', model: 'x1', tags: ['kiosk'], metrics: { battery: 50, charging: false, cpu: 30, memory: 50, disk: 40 } }, { id: 'oa-dev-2', model: 't14' }] }), 201);
    await expectStatus(call('POST', '/api/v1/devices', { devices: [{ id: 'oa-dev-2', department: 'IT' }] }), 200);
    await expectStatus(call('GET', '/api/v1/devices?sort=-score&limit=2'), 200);
    await expectStatus(call('GET', '/api/v1/devices/oa-dev-1'), 200);
    await expectStatus(call('GET', '/api/v1/devices/oa-dev-2'), 200);
    await expectStatus(call('PUT', '/api/v1/devices/oa-dev-1/ring', { ring: 'dev', reason: 'openapi test' }), 200);
    await expectStatus(call('GET', '/api/v1/devices/oa-dev-1/ring-history'), 200);
    await expectStatus(call('GET', '/api/v1/rings'), 200);
    await expectStatus(
      call('PUT', '/api/v1/rings', {
        rings: [{ name: 'canary', share: 0.1, min: 1 }, { name: 'dev', share: 0.2, allowUnhealthy: true }, { name: 'stage', share: 0.3 }, { name: 'prod', share: 0.4, max: 1000 }],
        pins: [{ rule: 'department = IT', ring: 'canary' }],
        holds: ['tag = kiosk'],
        policy: 'health',
        hysteresis: 5,
        dwellMs: 600000,
      }),
      200,
    );
    await expectStatus(call('POST', '/api/v1/rings/rebalance'), 200);
    await expectStatus(call('GET', '/api/v1/rings/moves?limit=5'), 200);
    await expectStatus(call('GET', '/api/v1/devices/oa-dev-1/history?since=0&limit=10'), 200);
    await expectStatus(call('GET', '/api/v1/devices/oa-dev-1/executions'), 200);
    await expectStatus(call('GET', '/api/v1/overview'), 200);
    await expectStatus(call('GET', '/api/v1/events?kinds=task,deployment'), 200);
    expect((await expectStatus(call('GET', '/metrics'), 200)).text).toMatch(/^orchestrator_devices\{/m);

    // ---- a staged deployment, fast, and the actions
    // This walk documents answers, not evidence: a ring whose few agents cannot run the payload passes without judging any.
    const fast = (ring: string) => ({ ring, rate: { maxPerMinute: 6000 }, soakMs: 300, gate: { minDevices: 1, minJudged: 0, observeMs: 200 }, preflight: { minBattery: 0 } });
    const dep = await expectStatus(call('POST', '/api/v1/deployments', { name: 'oa release', payload: { type: 'health_check' }, plan: { stages: ['canary', 'dev', 'stage', 'prod'].map(fast) }, maintenanceWindows: [{ days: [0, 1, 2, 3, 4, 5, 6], start: '00:00', end: '23:59' }], start: true }), 201);
    await waitFor(async () => {
      const d = await call('GET', `/api/v1/deployments/${String(dep.id)}`);
      return d.body.status === 'completed' ? true : undefined;
    }, 30_000);
    await expectStatus(call('GET', `/api/v1/deployments/${String(dep.id)}?state=succeeded&limit=10`), 200);
    await expectStatus(call('GET', `/api/v1/deployments/${String(dep.id)}/impact?limit=5`), 200);
    await expectStatus(call('GET', '/api/v1/deployments?limit=5'), 200);
    const scheduled = await expectStatus(call('POST', '/api/v1/deployments', { name: 'oa waits', payload: { type: 'deploy', params: { version: '9' } }, autoRollback: true }), 201);
    for (const action of ['start', 'pause', 'resume', 'abort']) await expectStatus(call('POST', `/api/v1/deployments/${String(scheduled.id)}/${action}`), 200);
    await expectStatus(call('GET', `/api/v1/deployments/${String(scheduled.id)}`), 200);

    // ---- the advisor
    const advice = await expectStatus(call('POST', '/api/v1/advice', { subject: { deployment: dep.id } }), 201);
    await expectStatus(call('POST', '/api/v1/advice', { subject: { fleet: true } }), 201);
    await expectStatus(call('GET', `/api/v1/advice?subject=deployment:${String(dep.id)}&limit=5`), 200);
    await expectStatus(call('GET', `/api/v1/advice/${String(advice.id)}`), 200);
    await expectStatus(call('POST', `/api/v1/advice/${String(advice.id)}/apply`), 200);
    await expectStatus(call('POST', '/api/v1/gating/parse', { text: 'halt if more than 2% fail' }), 200);

    // ---- the agent protocol
    const enrolled = await expectStatus(call('POST', '/api/v1/agent/enroll', { token: ENROLL, hostname: 'oa-laptop', osVersion: 'Linux', capabilities: ['health_check'], metrics }, null), 200);
    const agent = `Bearer ${String(enrolled.agentId)}:${String(enrolled.credential)}`;
    await expectStatus(call('POST', '/api/v1/agent/heartbeat', { seq: 1, metrics, running: [] }, agent), 200);
    const first = (await expectStatus(call('GET', '/api/v1/agent/commands?waitMs=0', undefined, agent), 200)).commands as { id: number }[];
    const assigned = await expectStatus(call('POST', '/api/v1/tasks', { type: 'health_check', target: { agentId: enrolled.agentId } }), 201);
    const commands = await waitFor(async () => {
      const got = (await call('GET', `/api/v1/agent/commands?waitMs=2000&ack=${first.at(-1)?.id ?? 0}`, undefined, agent)).body.commands as { type: string; attempt: number }[];
      return got.some((x) => x.type === 'task_assignment') ? got : undefined;
    }, 20_000);
    const attempt = commands.find((x) => x.type === 'task_assignment')?.attempt ?? 1;
    await expectStatus(call('POST', '/api/v1/agent/progress', { taskId: assigned.id, attempt }, agent), 200);
    const result = { taskId: assigned.id, attempt, success: true, result: { fine: true } };
    expect((await expectStatus(call('POST', '/api/v1/agent/results', { results: [result] }, agent), 200)).results).toEqual([{ taskId: assigned.id, attempt, status: 'accepted' }]);
    expect((await expectStatus(call('POST', '/api/v1/agent/results', { results: [{ ...result, attempt: attempt + 1 }] }, agent), 200)).results).toMatchObject([{ status: 'refused', code: 'ORCH_STALE_ATTEMPT' }]);

    // ---- tokens, enrollment tokens, approval, audit
    await expectStatus(call('GET', '/api/v1/whoami'), 200);
    const token = await expectStatus(call('POST', '/api/v1/tokens', { name: 'oa viewer', role: 'viewer' }), 201);
    await expectStatus(call('GET', '/api/v1/whoami', undefined, `Bearer ${String(token.token)}`), 200);
    await expectStatus(call('GET', '/api/v1/tokens'), 200);
    await expectStatus(call('DELETE', `/api/v1/tokens/${String(token.id)}`), 200);
    const et = await expectStatus(call('POST', '/api/v1/enrollment-tokens', { name: 'oa approval', maxUses: 2, expiresInSeconds: 3600, requireApproval: true }), 201);
    await expectStatus(call('GET', '/api/v1/enrollment-tokens'), 200);
    const pending = await expectStatus(call('POST', '/api/v1/agent/enroll', { token: et.token, hostname: 'oa-pending', capabilities: [], metrics: { ...metrics, battery: null, charging: null } }, null), 200);
    expect(pending.approval).toBe('pending');
    await expectStatus(call('POST', `/api/v1/agents/${String(pending.agentId)}/approve`), 200);
    await expectStatus(call('DELETE', `/api/v1/enrollment-tokens/${String(et.id)}`), 200);
    await expectStatus(call('GET', '/api/v1/audit?limit=20'), 200);

    // ---- errors: a sample of each kind (the fuzz test checks thousands)
    await expectStatus(call('GET', '/status/no-such-task'), 404);
    await expectStatus(call('POST', '/api/v1/tasks', { type: 'teleport' }), 400);
    expect((await expectStatus(call('PUT', '/api/v1/rings', { rings: [{ name: 'a', share: 0.5 }], policy: 'none' }), 400)).errors).toEqual(expect.any(Array));
    await expectStatus(call('POST', `/api/v1/deployments/${String(scheduled.id)}/explode`), 404);
    await expectStatus(call('POST', `/api/v1/deployments/${String(scheduled.id)}/pause`), 409);
    await expectStatus(call('GET', '/cluster_status', undefined, `Bearer ${String(token.token)}`), 401);
    await expectStatus(call('POST', '/spawn_agent', undefined, `Bearer ${String((await expectStatus(call('POST', '/api/v1/tokens', { name: 'oa v2', role: 'viewer' }), 201)).token)}`), 403);
    await expectStatus(call('POST', '/submit_task', '{"task_type": '), 400);

    // Every operation answered every success status it documents, and each answer matched its schema.
    const missing: string[] = [];
    for (const key of c.operations()) {
      for (const status of Object.keys(c.operation(key).responses).filter((s) => s.startsWith('2'))) {
        if (!c.seen.get(key)?.has(Number(status))) missing.push(`${key} ${status}`);
      }
    }
    expect(missing).toEqual([]);
  }, 120_000);

  it('the checker is not blind: an answer that differs from the document is reported', async () => {
    const c = await docChecker();
    const headers = { 'content-type': 'application/json; charset=utf-8' };
    const replica = { role: 'leader', id: 'r', leader: null, epoch: null };
    const ok = JSON.stringify({ status: 'ok', master_id: 'm', replica });
    expect(c.check({ method: 'GET', path: '/healthz', status: 200, headers, text: ok })).toEqual([]);
    // A field too many, a field missing, a wrong type, a value outside an enum, an undocumented status, a code not listed for the status.
    expect(c.check({ method: 'GET', path: '/healthz', status: 200, headers, text: JSON.stringify({ status: 'ok', master_id: 'm', replica, extra: 1 }) })).toHaveLength(1);
    expect(c.check({ method: 'GET', path: '/healthz', status: 200, headers, text: JSON.stringify({ status: 'ok', replica }) })).toHaveLength(1);
    expect(c.check({ method: 'GET', path: '/healthz', status: 200, headers, text: JSON.stringify({ status: 'ok', master_id: 7, replica }) })).toHaveLength(1);
    expect(c.check({ method: 'GET', path: '/healthz', status: 200, headers, text: JSON.stringify({ status: 'fine', master_id: 'm', replica }) })).toHaveLength(1);
    expect(c.check({ method: 'GET', path: '/healthz', status: 404, headers, text: JSON.stringify({ error: 'x', code: 'ORCH_NOT_FOUND' }) })).toHaveLength(1);
    expect(c.check({ method: 'GET', path: '/status/x', status: 404, headers, text: JSON.stringify({ error: 'x', code: 'ORCH_TASK_NOT_FOUND' }) })).toEqual([]);
    expect(c.check({ method: 'GET', path: '/status/x', status: 404, headers, text: JSON.stringify({ error: 'x', code: 'ORCH_AGENT_NOT_FOUND' }) })).toHaveLength(1);
    expect(c.check({ method: 'GET', path: '/status/x', status: 404, headers, text: JSON.stringify({ error: 'x' }) })).toHaveLength(1);
    // A nested component: a task whose attempt has an outcome the document does not list.
    const task = (await call('GET', '/api/v1/tasks?limit=1')).body.tasks as Record<string, unknown>[];
    const one = { ...task[0], status: 'exploded' } as Record<string, unknown>;
    expect(c.check({ method: 'GET', path: `/api/v1/tasks/${String(one.id)}`, status: 200, headers, text: JSON.stringify(one) })).toHaveLength(1);
    // The route a path reaches: literal segments before parameters, as the router picks.
    expect(c.match('POST', '/api/v1/tasks/batch')).toBe('POST /api/v1/tasks/batch');
    expect(c.match('GET', '/api/v1/tasks/batch')).toBe('GET /api/v1/tasks/{id}');
    expect(c.match('GET', '/api/v1/rings/moves?limit=1')).toBe('GET /api/v1/rings/moves');
    expect(c.match('GET', '/no/such/route')).toBeUndefined();
  });

  it('an answer is JSON.stringify of what its route returns: a response schema never drops, orders or coerces a field', async () => {
    // An ended task does not change: its answers can be compared byte for byte with what the routes render.
    const created = await call('POST', '/api/v1/tasks', { type: 'deploy', params: { version: '2.4.1', nested: { b: 1, a: [1.5, 'x'] } }, runAfter: later() });
    const id = String(created.body.id);
    await call('POST', `/api/v1/tasks/${id}/cancel`);
    const { task, attempts } = await srv.server().orchestrator.tasks.get(id);
    const v1 = await fetch(`${srv.base()}/api/v1/tasks/${id}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(await v1.text()).toBe(JSON.stringify(taskV1Json(task, attempts)));
    const seed = await fetch(`${srv.base()}/status/${id}`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(await seed.text()).toBe(JSON.stringify(taskJson(task, attempts)));
    // The app's serializer ignores the schema it is given (fast-json-stringify would drop `b` and make `a` an integer).
    const compile = srv.server().app.serializerCompiler;
    expect(compile).toBeDefined();
    const serialize = compile?.({ schema: { type: 'object', properties: { a: { type: 'integer' } }, additionalProperties: false }, method: 'GET', url: '/x', httpStatus: '200' });
    expect(serialize?.({ a: 1.5, b: 'kept' })).toBe('{"a":1.5,"b":"kept"}');
  });

  // Last: once over the limit, this address is refused for a minute, valid tokens too.
  it('past the failed-authentication limit, a 429 with retry-after, as documented', async () => {
    const c = await docChecker();
    for (let i = 0; i < AUTH_LIMIT; i++) await call('GET', '/cluster_status', undefined, 'Bearer not-a-token');
    const limited = await fetch(`${srv.base()}/cluster_status`, { headers: { authorization: 'Bearer not-a-token' } });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(c.check({ method: 'GET', path: '/cluster_status', status: limited.status, headers: limited.headers, text: await limited.text() })).toEqual([]);
    const agentLimited = await call('POST', '/api/v1/agent/heartbeat', { seq: 1, metrics, running: [] }, 'Bearer x:0123456789abcdefghijklmn');
    expect(agentLimited.status).toBe(429);
  });
});
