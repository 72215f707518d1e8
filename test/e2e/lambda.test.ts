import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { LambdaHandler } from '../../src/lambda.js';
import { dropTestSchemas, testSchema } from '../support/postgres.js';
import { databaseUrl, replicasPerTest, replicaRole, untilLeads } from '../support/replicas.js';
import type { ServerProcess } from '../support/server-process.js';
import { waitFor } from '../support/server-process.js';

/*
 * The Lambda function (src/lambda.ts) against a real leader: `orchestrator serve` on PostgreSQL as a child process
 * on loopback. Its exported handler is made as at a cold start (the module imported anew with the environment set)
 * and invoked in this process with the events API Gateway and function URLs send: a REST API's (payload 1.0), an
 * HTTP API's (2.0) and a function URL's (2.0 on a lambda-url domain).
 */

const ADMIN = 'lambda-admin-token-0123456789abcdefghijklmnop';
const startReplica = replicasPerTest();
const made: LambdaHandler[] = [];
afterEach(async () => {
  for (const h of made.splice(0)) await h.close();
});
afterAll(dropTestSchemas);

/** Imports src/lambda.ts anew with `env` as the function's environment (a cold start) and gives its `handler`. */
async function coldStart(env: Record<string, string | undefined>): Promise<LambdaHandler> {
  const saved = { ...process.env };
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  vi.resetModules();
  try {
    const { handler } = await import('../../src/lambda.js');
    made.push(handler);
    return handler;
  } finally {
    process.env = saved;
  }
}

interface Request {
  method: string;
  /** Path and query string, as the client wrote them. */
  url: string;
  headers?: Record<string, string>;
  body?: string;
  /** Sent base64-encoded, as API Gateway does for a binary media type (REST) or a body it does not take for text. */
  base64?: boolean;
  sourceIp?: string;
}

type EventKind = 'rest' | 'http' | 'url';
const KINDS: EventKind[] = ['rest', 'http', 'url'];

const clientHeaders = (r: Request, host: string): Record<string, string> => ({
  accept: 'application/json',
  'user-agent': 'curl/8.5.0',
  host,
  'x-amzn-trace-id': `Root=1-${Date.now().toString(16)}-${randomUUID().replace(/-/g, '').slice(0, 24)}`,
  'x-forwarded-for': r.sourceIp ?? '203.0.113.10',
  'x-forwarded-port': '443',
  'x-forwarded-proto': 'https',
  ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}),
  ...r.headers,
});

const encodeBody = (r: Request): string | undefined => (r.body === undefined ? undefined : r.base64 === true ? Buffer.from(r.body).toString('base64') : r.body);

/** A REST API (payload 1.0) proxy event, as API Gateway sends it for `ANY /{proxy+}` on the `prod` stage. */
function restEvent(r: Request): unknown {
  const u = new URL(r.url, 'https://example.invalid');
  const host = 'abc123defg.execute-api.eu-west-1.amazonaws.com';
  const headers = Object.fromEntries(Object.entries(clientHeaders(r, host)).map(([k, v]) => [k.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase()), v]));
  const multiQuery: Record<string, string[]> = {};
  for (const [k, v] of u.searchParams) (multiQuery[k] ??= []).push(v);
  const query = Object.fromEntries(Object.entries(multiQuery).map(([k, v]) => [k, v[v.length - 1] as string]));
  const requestId = randomUUID();
  return {
    resource: '/{proxy+}',
    path: u.pathname,
    httpMethod: r.method,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    queryStringParameters: Object.keys(query).length === 0 ? null : query,
    multiValueQueryStringParameters: Object.keys(multiQuery).length === 0 ? null : multiQuery,
    pathParameters: { proxy: u.pathname.slice(1) },
    stageVariables: null,
    requestContext: {
      resourceId: 'a1b2c3',
      resourcePath: '/{proxy+}',
      httpMethod: r.method,
      extendedRequestId: 'Xyz0AbCdEFg=',
      requestTime: new Date().toUTCString(),
      path: `/prod${u.pathname}`,
      accountId: '123456789012',
      protocol: 'HTTP/1.1',
      stage: 'prod',
      domainPrefix: 'abc123defg',
      requestTimeEpoch: Date.now(),
      requestId,
      identity: { sourceIp: r.sourceIp ?? '203.0.113.10', userAgent: 'curl/8.5.0', accountId: null, caller: null, user: null, userArn: null },
      domainName: host,
      apiId: 'abc123defg',
    },
    body: encodeBody(r) ?? null,
    isBase64Encoded: r.base64 === true,
  };
}

/** An HTTP API (payload 2.0) event on the `$default` stage, or a function URL's (the same shape on a lambda-url domain). */
function v2Event(r: Request, kind: 'http' | 'url'): unknown {
  const u = new URL(r.url, 'https://example.invalid');
  const host = kind === 'url' ? 'kq3xv7d2jrnhb4yq5zmzqaehuy0wmnka.lambda-url.eu-west-1.on.aws' : 'abc123defg.execute-api.eu-west-1.amazonaws.com';
  const query: Record<string, string> = {};
  // API Gateway joins a repeated key's values with commas.
  for (const [k, v] of u.searchParams) query[k] = query[k] === undefined ? v : `${query[k]},${v}`;
  const now = Date.now();
  return {
    version: '2.0',
    routeKey: '$default',
    rawPath: u.pathname,
    rawQueryString: u.search.slice(1),
    ...(r.headers?.cookie !== undefined ? { cookies: r.headers.cookie.split('; ') } : {}),
    headers: Object.fromEntries(Object.entries(clientHeaders(r, host)).filter(([k]) => k !== 'cookie')),
    ...(Object.keys(query).length > 0 ? { queryStringParameters: query } : {}),
    requestContext: {
      accountId: kind === 'url' ? 'anonymous' : '123456789012',
      apiId: kind === 'url' ? 'kq3xv7d2jrnhb4yq5zmzqaehuy0wmnka' : 'abc123defg',
      domainName: host,
      domainPrefix: host.split('.')[0],
      http: { method: r.method, path: u.pathname, protocol: 'HTTP/1.1', sourceIp: r.sourceIp ?? '203.0.113.10', userAgent: 'curl/8.5.0' },
      requestId: randomUUID(),
      routeKey: '$default',
      stage: '$default',
      time: new Date(now).toUTCString(),
      timeEpoch: now,
    },
    ...(r.body !== undefined ? { body: encodeBody(r) } : {}),
    isBase64Encoded: r.base64 === true,
  };
}

const eventOf = (kind: EventKind, r: Request): unknown => (kind === 'rest' ? restEvent(r) : v2Event(r, kind));

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  text: string;
}

/** Invokes the handler and reads its answer as API Gateway would. */
async function invoke(handler: LambdaHandler, kind: EventKind, r: Request, remainingMs?: number): Promise<Answer> {
  const context = { awsRequestId: randomUUID(), functionName: 'orchestrator-api', ...(remainingMs !== undefined ? { getRemainingTimeInMillis: () => remainingMs } : {}) };
  const out = await handler(eventOf(kind, r), context);
  const text = out.isBase64Encoded === true ? Buffer.from(out.body, 'base64').toString() : out.body;
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON: the text is the answer
  }
  return { status: out.statusCode, headers: Object.fromEntries(Object.entries(out.headers).map(([k, v]) => [k.toLowerCase(), String(v)])), body, text };
}

/** The same request sent to the leader directly, over HTTP. */
async function direct(leader: string, r: Request): Promise<Answer> {
  const res = await fetch(`${leader}${r.url}`, { method: r.method, headers: { ...(r.body !== undefined ? { 'content-type': 'application/json' } : {}), ...r.headers }, ...(r.body !== undefined ? { body: r.body } : {}) });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON
  }
  return { status: res.status, headers: Object.fromEntries(res.headers), body, text };
}

const auth = { authorization: `Bearer ${ADMIN}` };

async function leaderOn(schema: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const leader = await startReplica(schema, { ADMIN_TOKEN: ADMIN, ...env });
  await untilLeads(leader.url);
  return leader;
}

describe('the Lambda function: the API as a follower, forwarding to the leader', () => {
  it("serves the seed's routes and the API through REST API, HTTP API and function URL events as the leader does", async () => {
    const schema = testSchema('lambda');
    const leader = await leaderOn(schema);
    const handler = await coldStart({ DATABASE_URL: databaseUrl(schema), LEADER_LEASE: '2s', LOG_LEVEL: 'silent' });
    expect(handler.replica()).toMatchObject({ role: 'follower', leader: leader.url, epoch: 1 });

    // Tasks submitted through each kind of event exist in the leader: the seed's route, and the API's (base64 bodies too).
    const submitted: string[] = [];
    for (const kind of KINDS) {
      const seed = await invoke(handler, kind, { method: 'POST', url: '/submit_task', headers: auth, body: JSON.stringify({ task_type: 'health_check', parameters: { via: kind }, priority: 3 }) });
      expect(seed.status).toBe(200);
      expect(seed.headers['content-type']).toMatch(/^application\/json/);
      submitted.push(seed.body.task_id as string);
      const api = await invoke(handler, kind, { method: 'POST', url: '/api/v1/tasks', headers: auth, body: JSON.stringify({ type: 'health_check', params: { via: `${kind}-base64` } }), base64: true });
      expect(api.status).toBe(201);
      submitted.push(api.body.id as string);
    }
    const inLeader = await direct(leader.url, { method: 'GET', url: '/api/v1/tasks?limit=100', headers: auth });
    expect((inLeader.body.tasks as { id: string }[]).map((t) => t.id).sort()).toEqual([...submitted].sort());
    const seedTask = await direct(leader.url, { method: 'GET', url: `/status/${submitted[0]}`, headers: auth });
    expect(seedTask).toMatchObject({ status: 200, body: { task_id: submitted[0], parameters: { via: 'rest' } } });

    // Reads answer as from the leader directly: status and body, query strings as written (a comma stays a comma).
    const reads: Request[] = [
      { method: 'GET', url: '/list_agents', headers: auth },
      { method: 'GET', url: `/status/${submitted[2]}`, headers: auth },
      { method: 'GET', url: '/status/no-such-task', headers: auth },
      { method: 'GET', url: '/asset_details', headers: auth },
      { method: 'GET', url: '/deployment_status?deployment_id=deploy-001', headers: auth },
      { method: 'GET', url: '/api/v1/tasks?type=health_check&limit=2', headers: auth },
      { method: 'GET', url: '/api/v1/tasks?status=pending,completed', headers: auth },
      // A repeated key: API Gateway's 2.0 parameters join it with a comma; the raw query string keeps it apart.
      { method: 'GET', url: '/api/v1/tasks?limit=1&limit=2', headers: auth },
      { method: 'GET', url: '/api/v1/agents', headers: auth },
      { method: 'GET', url: '/api/v1/whoami', headers: auth },
      // Unknown: the leader's 404 JSON, not the function's.
      { method: 'GET', url: '/api/v1/no-such-route?x=1', headers: auth },
      { method: 'POST', url: '/no_such_seed_route', headers: auth, body: '{}' },
    ];
    for (const r of reads) {
      const want = await direct(leader.url, r);
      for (const kind of KINDS) {
        const got = await invoke(handler, kind, r);
        expect({ kind, url: r.url, status: got.status, body: got.body }).toEqual({ kind, url: r.url, status: want.status, body: want.body });
      }
    }
    const unknown = await invoke(handler, 'http', { method: 'GET', url: '/api/v1/no-such-route', headers: auth });
    expect(unknown).toMatchObject({ status: 404, body: { code: 'ORCH_NOT_FOUND' } });
    // The cluster's counts, whose uptime-like fields move: the same shape and the same task count.
    const cluster = await invoke(handler, 'url', { method: 'GET', url: '/cluster_status', headers: auth });
    const clusterDirect = await direct(leader.url, { method: 'GET', url: '/cluster_status', headers: auth });
    expect(cluster.status).toBe(200);
    expect(Object.keys(cluster.body).sort()).toEqual(Object.keys(clusterDirect.body).sort());
    expect(JSON.stringify(cluster.body)).toContain('"total_tasks":6');

    // The function answers /healthz and /readyz itself.
    const ready = await invoke(handler, 'rest', { method: 'GET', url: '/readyz' });
    expect(ready).toMatchObject({ status: 200, body: { status: 'ready', replica: { role: 'follower', leader: leader.url, epoch: 1 } } });
    expect(ready.body.replica).toMatchObject({ id: expect.stringMatching(/^lambda-/) as unknown });
    expect(await invoke(handler, 'http', { method: 'GET', url: '/healthz' })).toMatchObject({ status: 200, body: { status: 'ok' } });
  }, 90_000);

  it("passes the caller's credentials through: the leader's 401 and 403, and its limits per client address", async () => {
    const schema = testSchema('lambda');
    const leader = await leaderOn(schema, { AUTH_FAILURE_LIMIT: '3/1m' });
    const viewer = await direct(leader.url, { method: 'POST', url: '/api/v1/tokens', headers: auth, body: JSON.stringify({ name: 'lambda-viewer', role: 'viewer' }) });
    expect(viewer.status).toBe(201);
    const viewerAuth = { authorization: `Bearer ${viewer.body.token as string}` };
    const handler = await coldStart({ DATABASE_URL: databaseUrl(schema), LEADER_LEASE: '2s', LOG_LEVEL: 'silent' });
    for (const kind of KINDS) {
      // No token: the leader's 401 (the function is not on the leader's machine: no open API for it).
      const none = await invoke(handler, kind, { method: 'GET', url: '/api/v1/tasks', sourceIp: '198.51.100.1' });
      expect(none).toMatchObject({ status: 401, body: { code: 'ORCH_UNAUTHORIZED' } });
      // A viewer may read, not submit: the leader's 403.
      expect((await invoke(handler, kind, { method: 'GET', url: '/api/v1/tasks', headers: viewerAuth })).status).toBe(200);
      const refused = await invoke(handler, kind, { method: 'POST', url: '/submit_task', headers: viewerAuth, body: '{"task_type":"health_check"}' });
      expect(refused).toMatchObject({ status: 403, body: { code: 'ORCH_FORBIDDEN' } });
      expect(await direct(leader.url, { method: 'POST', url: '/submit_task', headers: viewerAuth, body: '{"task_type":"health_check"}' })).toMatchObject({ status: 403, body: refused.body });
    }
    // The leader counts failures per client (API Gateway's sourceIp, signed by the function), not per function.
    const bad = { authorization: `Bearer ${'x'.repeat(40)}` };
    for (let i = 0; i < 3; i++) expect((await invoke(handler, 'http', { method: 'GET', url: '/api/v1/agents', headers: bad, sourceIp: '192.0.2.77' })).status).toBe(401);
    const limited = await invoke(handler, 'http', { method: 'GET', url: '/api/v1/agents', headers: bad, sourceIp: '192.0.2.77' });
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBeDefined();
    expect((await invoke(handler, 'rest', { method: 'GET', url: '/api/v1/agents', headers: bad, sourceIp: '192.0.2.78' })).status).toBe(401);
    expect((await invoke(handler, 'url', { method: 'GET', url: '/api/v1/agents', headers: auth, sourceIp: '192.0.2.79' })).status).toBe(200);
  }, 60_000);

  it('with no leader answers 503 ORCH_NOT_LEADER with retry-after, and forwards again once one leads', async () => {
    // A database no replica has started on: no lease (no table even).
    const schema = testSchema('lambda');
    const handler = await coldStart({ DATABASE_URL: databaseUrl(schema), LEADER_LEASE: '2s', LOG_LEVEL: 'silent' });
    expect(handler.replica()).toMatchObject({ role: 'follower', leader: null, epoch: null });
    const notLeader = async (kind: EventKind, r: Request): Promise<void> => {
      const a = await invoke(handler, kind, r);
      expect({ kind, url: r.url, status: a.status, retryAfter: a.headers['retry-after'], code: a.body.code }).toEqual({ kind, url: r.url, status: 503, retryAfter: '1', code: 'ORCH_NOT_LEADER' });
    };
    for (const kind of KINDS) {
      await notLeader(kind, { method: 'GET', url: '/cluster_status', headers: auth });
      await notLeader(kind, { method: 'POST', url: '/api/v1/tasks', headers: auth, body: '{"type":"health_check"}' });
    }
    const notReady = await invoke(handler, 'rest', { method: 'GET', url: '/readyz' });
    expect(notReady).toMatchObject({ status: 503, body: { status: 'not_ready', code: 'ORCH_NOT_LEADER' } });

    // A leader starts: the function finds it in the lease.
    const first = await leaderOn(schema);
    const taskId = await waitFor(async () => {
      const a = await invoke(handler, 'http', { method: 'POST', url: '/api/v1/tasks', headers: auth, body: '{"type":"health_check","idempotencyKey":"after-start"}' });
      return a.status === 201 ? (a.body.id as string) : undefined;
    }, 5000, 100);
    expect(handler.replica()).toMatchObject({ leader: first.url, epoch: 1 });

    // Killed: 503 at once (its address refuses), never another 5xx; a new leader takes over and is found.
    first.child.kill('SIGKILL');
    await first.exited;
    for (const kind of KINDS) await notLeader(kind, { method: 'GET', url: '/api/v1/tasks', headers: auth });
    const second = await leaderOn(schema);
    const statuses: number[] = [];
    await waitFor(async () => {
      const a = await invoke(handler, 'url', { method: 'GET', url: `/api/v1/tasks/${taskId}`, headers: auth });
      statuses.push(a.status);
      return a.status === 200 ? a : undefined;
    }, 10_000, 100);
    expect(statuses.filter((s) => s !== 200 && s !== 503)).toEqual([]);
    expect(handler.replica()).toMatchObject({ leader: second.url, epoch: 2 });
  }, 90_000);

  it("answers 503 before the function's time runs out when the leader does not answer, and ends an event stream there", async () => {
    const schema = testSchema('lambda');
    const leader = await leaderOn(schema, { LEADER_LEASE: '8s' });
    const handler = await coldStart({ DATABASE_URL: databaseUrl(schema), LEADER_LEASE: '8s', LOG_LEVEL: 'silent' });

    // An event stream ends at the deadline (1 s before the function's time), with the events so far: the client resumes.
    const streaming = invoke(handler, 'url', { method: 'GET', url: '/api/v1/events?kinds=task', headers: { ...auth, accept: 'text/event-stream' } }, 2500);
    await new Promise((r) => setTimeout(r, 400));
    const task = await direct(leader.url, { method: 'POST', url: '/api/v1/tasks', headers: auth, body: '{"type":"health_check"}' });
    const started = Date.now();
    const stream = await streaming;
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(stream.text).toContain('event: task.submitted');
    expect(stream.text).toContain(task.body.id as string);
    expect(Date.now() - started).toBeLessThan(2500);

    // A paused leader holds its lease (8 s) but answers nothing: 503 at the deadline, not the function's timeout.
    leader.child.kill('SIGSTOP');
    try {
      const t0 = Date.now();
      const a = await invoke(handler, 'http', { method: 'GET', url: '/cluster_status', headers: auth }, 2500);
      const took = Date.now() - t0;
      expect({ status: a.status, code: a.body.code, retryAfter: a.headers['retry-after'] }).toEqual({ status: 503, code: 'ORCH_NOT_LEADER', retryAfter: '1' });
      expect(String(a.body.error ?? a.body.message)).toMatch(/did not answer|cannot be reached/);
      expect(took).toBeGreaterThanOrEqual(1400);
      expect(took).toBeLessThan(2500);
    } finally {
      leader.child.kill('SIGCONT');
    }
    expect((await replicaRole(leader.url)).role).toBe('leader');
  }, 60_000);

  it('refuses to start without DATABASE_URL, or with a URL that is not PostgreSQL, naming the setting', async () => {
    await expect(coldStart({ DATABASE_URL: undefined, LOG_LEVEL: 'silent' })).rejects.toThrow(/^DATABASE_URL: required on AWS Lambda/);
    await expect(coldStart({ DATABASE_URL: 'mysql://u:p@db.example:3306/orchestrator', LOG_LEVEL: 'silent' })).rejects.toThrow(/^DATABASE_URL: must be a PostgreSQL URL/);
    await expect(coldStart({ DATABASE_URL: databaseUrl('x'), LEADER_LEASE: 'soon', LOG_LEVEL: 'silent' })).rejects.toThrow(/^LEADER_LEASE: /);
  });
});
