import { describe, expect, it } from 'vitest';
import type { Access } from '../../src/security/access.js';
import { ROUTE_ACCESS } from '../../src/security/access.js';
import { H2Client } from '../support/h2-client.js';
import { serverPerFile } from '../support/in-process.js';
import { fetchAnswer, OpenApiChecker } from '../support/openapi-check.js';

const ADMIN = 'admin-token-from-the-environment-0123456789';
const ENROLL = 'matrix-enroll-token-0123456789';
const srv = serverPerFile({ ADMIN_TOKEN: ADMIN, ENROLL_TOKEN: ENROLL, DEFAULT_AGENTS: '0', AUTH_FAILURE_LIMIT: 'off', ENROLL_RATE_LIMIT: 'off' });
const metrics = { battery: 70, charging: false, cpu: 12.5, memory: 40, disk: 55 };

type Who = 'none' | 'viewer' | 'operator' | 'admin' | 'agent' | 'otherAgent';
const WHO: Who[] = ['none', 'viewer', 'operator', 'admin', 'agent', 'otherAgent'];

/**
 * The documented rule (docs/security.md): 'pass' means the route's own answer (anything but 401, 403 or a 5xx).
 * An agent's credential is not an operator token: 403 on operator routes. Agent routes take only agents.
 */
const EXPECTED: Record<Access, Record<Who, number | 'pass'>> = {
  public: { none: 'pass', viewer: 'pass', operator: 'pass', admin: 'pass', agent: 'pass', otherAgent: 'pass' },
  enroll: { none: 'pass', viewer: 'pass', operator: 'pass', admin: 'pass', agent: 'pass', otherAgent: 'pass' },
  agent: { none: 401, viewer: 401, operator: 401, admin: 401, agent: 'pass', otherAgent: 'pass' },
  viewer: { none: 401, viewer: 'pass', operator: 'pass', admin: 'pass', agent: 403, otherAgent: 403 },
  operator: { none: 401, viewer: 403, operator: 'pass', admin: 'pass', agent: 403, otherAgent: 403 },
  admin: { none: 401, viewer: 403, operator: 403, admin: 'pass', agent: 403, otherAgent: 403 },
};

let checker: Promise<OpenApiChecker> | undefined;

/** One request as `who`; its answer must be what the OpenAPI document says for the route (status, body, headers). */
async function call(method: string, path: string, auth: string | undefined, body?: unknown): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const { res, text, type } = await fetchAnswer(`${srv.base()}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(auth === undefined ? {} : { authorization: `Bearer ${auth}` }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  checker ??= OpenApiChecker.load(srv.base());
  expect((await checker).check({ method, path, status: res.status, headers: res.headers, text }), `${method} ${path}`).toEqual([]);
  // The dashboard's pages and files and the Prometheus scrape are not JSON.
  return { status: res.status, body: type.startsWith('application/json') ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
}

async function setUp(): Promise<Record<Who, string | undefined>> {
  const make = async (role: string): Promise<string> => {
    const r = await call('POST', '/api/v1/tokens', ADMIN, { name: `matrix-${role}`, role });
    expect(r.status).toBe(201);
    return r.body.token as string;
  };
  const enroll = async (hostname: string): Promise<string> => {
    const r = await call('POST', '/api/v1/agent/enroll', undefined, { token: ENROLL, hostname, capabilities: ['health_check'], metrics });
    expect(r.status).toBe(200);
    return `${String(r.body.agentId)}:${String(r.body.credential)}`;
  };
  return { none: undefined, viewer: await make('viewer'), operator: await make('operator'), admin: await make('admin'), agent: await enroll('matrix-a'), otherAgent: await enroll('matrix-b') };
}

describe('every route × every kind of caller', () => {
  it('gives the documented status, for every route the app serves (a route without a rule cannot be served at all)', async () => {
    const who = await setUp();
    const routes = srv.server().app.routeTable.filter((r) => r.method !== 'HEAD');
    // The table is the app's, not a copy: a route added later is walked too.
    expect(routes.length).toBe(Object.keys(ROUTE_ACCESS).length);
    const seen = new Set<Access>();
    for (const route of routes) {
      seen.add(route.access);
      // Parameters that name nothing, and an empty body: whoever passes gets a 4xx from the route itself, and nothing changes.
      const path = route.url.replace(/:[a-z_]+/g, 'zz-no-such-thing');
      for (const w of WHO) {
        const r = await call(route.method, path, who[w], route.method === 'GET' || route.method === 'DELETE' ? undefined : {});
        const expected = EXPECTED[route.access][w];
        const label = `${route.method} ${route.url} as ${w}`;
        if (expected === 'pass') {
          expect({ label, status: r.status, passed: r.status !== 401 && r.status !== 403 && r.status < 500 }).toEqual({ label, status: r.status, passed: true });
        } else {
          expect({ label, status: r.status, code: r.body.code }).toEqual({ label, status: expected, code: expected === 401 ? 'ORCH_UNAUTHORIZED' : 'ORCH_FORBIDDEN' });
        }
      }
    }
    expect([...seen].sort()).toEqual(['admin', 'agent', 'enroll', 'operator', 'public', 'viewer']);
  });

  it('refuses malformed, unknown and revoked tokens with 401, and a revoked token at once', async () => {
    const made = await call('POST', '/api/v1/tokens', ADMIN, { name: 'short-lived', role: 'operator' });
    const token = made.body.token as string;
    expect((await call('GET', '/api/v1/whoami', token)).body).toMatchObject({ actor: 'short-lived', role: 'operator' });
    expect((await call('DELETE', `/api/v1/tokens/${String(made.body.id)}`, ADMIN)).body).toMatchObject({ id: made.body.id, revokedAt: expect.any(String) as unknown });
    expect((await call('GET', '/api/v1/whoami', token)).status).toBe(401);
    const forged = `${token.slice(0, -4)}AAAA`;
    for (const bad of [forged, 'orch_nosuchtoken0_' + 'a'.repeat(43), 'not-a-token', 'a'.repeat(500)]) {
      expect((await call('GET', '/cluster_status', bad)).status).toBe(401);
    }
    const res = await fetch(`${srv.base()}/cluster_status`, { headers: { authorization: 'Basic YWRtaW46YWRtaW4=' } });
    expect(res.status).toBe(401);
    // Tokens are listed without their secrets.
    const list = await call('GET', '/api/v1/tokens', ADMIN);
    expect(JSON.stringify(list.body)).not.toContain(token.slice(18));
    expect(list.body.tokens).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'short-lived', revokedAt: expect.any(String) as unknown })]));
  });

  it("an agent's credential reaches only its own work: another agent's task is not found, and nothing about it is told", async () => {
    const a = await call('POST', '/api/v1/agent/enroll', undefined, { token: ENROLL, hostname: 'own-a', capabilities: ['health_check'], metrics });
    const b = await call('POST', '/api/v1/agent/enroll', undefined, { token: ENROLL, hostname: 'own-b', capabilities: ['health_check'], metrics });
    const authA = `${String(a.body.agentId)}:${String(a.body.credential)}`;
    const authB = `${String(b.body.agentId)}:${String(b.body.credential)}`;
    const drain = async (auth: string): Promise<number> => (((await call('GET', '/api/v1/agent/commands?waitMs=0', auth)).body.commands as { id: number }[]).at(-1)?.id ?? 0);
    const ackA = await drain(authA);
    const ackB = await drain(authB);
    const task = await call('POST', '/api/v1/tasks', ADMIN, { type: 'health_check', target: { agentId: a.body.agentId } });
    const cmds = (await call('GET', `/api/v1/agent/commands?waitMs=5000&ack=${ackA}`, authA)).body.commands as { type: string; taskId: string; attempt: number }[];
    expect(cmds).toEqual([expect.objectContaining({ type: 'task_assignment', taskId: task.body.id })]);
    // B never sees it, and cannot act on it: the answer is the one for a task that does not exist.
    expect((await call('GET', `/api/v1/agent/commands?waitMs=0&ack=${ackB}`, authB)).body.commands).toEqual([]);
    const forged = await call('POST', '/api/v1/agent/results', authB, { results: [{ taskId: task.body.id, attempt: 1, success: true, result: 'forged' }] });
    const missing = await call('POST', '/api/v1/agent/results', authB, { results: [{ taskId: 'no-such-task', attempt: 1, success: true }] });
    expect(forged.body.results).toEqual([{ taskId: task.body.id, attempt: 1, status: 'refused', code: 'ORCH_TASK_NOT_FOUND', error: 'task not found' }]);
    expect(missing.body.results).toEqual([{ taskId: 'no-such-task', attempt: 1, status: 'refused', code: 'ORCH_TASK_NOT_FOUND', error: 'task not found' }]);
    const progress = await call('POST', '/api/v1/agent/progress', authB, { taskId: task.body.id, attempt: 1 });
    expect(progress).toMatchObject({ status: 404, body: { code: 'ORCH_TASK_NOT_FOUND' } });
    expect((await call('POST', '/api/v1/agent/progress', authB, { taskId: 'no-such-task', attempt: 1 })).body).toEqual(progress.body);
    // The same over HTTP/2, where these routes take the leaner path.
    const h2 = new H2Client(srv.base());
    try {
      const viaH2 = await h2.request('POST', '/api/v1/agent/results', { body: { results: [{ taskId: task.body.id, attempt: 1, success: true }] }, headers: { authorization: `Bearer ${authB}` } });
      expect(viaH2.body.results).toEqual(forged.body.results);
    } finally {
      await h2.close();
    }
    // The task is untouched, and A's own result is taken.
    expect((await call('GET', `/api/v1/tasks/${String(task.body.id)}`, ADMIN)).body).toMatchObject({ status: 'in_progress' });
    const own = await call('POST', '/api/v1/agent/results', authA, { results: [{ taskId: task.body.id, attempt: 1, success: true, result: { ok: 1 } }] });
    expect(own.body.results).toEqual([{ taskId: task.body.id, attempt: 1, status: 'accepted' }]);
  });

  it('puts the security headers on every answer, errors and HTTP/2 included', async () => {
    const h2 = new H2Client(srv.base());
    try {
      const answers = [
        Object.fromEntries((await call('GET', '/healthz', undefined)).headers),
        Object.fromEntries((await call('GET', '/cluster_status', undefined)).headers),
        Object.fromEntries((await call('GET', '/no/such/route', ADMIN)).headers),
        (await h2.request('POST', '/api/v1/agent/heartbeat', { body: { seq: 1, metrics, running: [] } })).headers,
        (await h2.request('GET', '/cluster_status', { headers: { authorization: `Bearer ${ADMIN}` } })).headers,
      ];
      for (const headers of answers) {
        expect(headers).toMatchObject({
          'x-content-type-options': 'nosniff',
          'x-frame-options': 'DENY',
          'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
          'referrer-policy': 'no-referrer',
          'cache-control': 'no-store',
        });
        expect(headers['strict-transport-security']).toBeUndefined();
      }
    } finally {
      await h2.close();
    }
  });
});
