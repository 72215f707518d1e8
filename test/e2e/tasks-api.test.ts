import { describe, expect, it } from 'vitest';
import { getJson, waitFor } from '../support/server-process.js';
import { serverPerFile } from '../support/in-process.js';

const srv = serverPerFile({ HEARTBEAT_INTERVAL: '200ms', AGENT_TIMEOUT: '5s', DEFAULT_AGENTS: '3' });
const { call } = srv;
const base = (): string => srv.base();

describe('/api/v1/tasks over HTTP', () => {
  it('creates a task (201), returns the original for a repeated idempotency key (200), and runs it to completion', async () => {
    const created = await call('POST', '/api/v1/tasks', { type: 'process_data', params: { data: [4, 5] }, priority: 2, idempotencyKey: 'http-1' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ type: 'process_data', params: { data: [4, 5] }, priority: 2, status: 'pending', attempts: 0, maxAttempts: 4, idempotencyKey: 'http-1' });
    const again = await call('POST', '/api/v1/tasks', { type: 'monitor', idempotencyKey: 'http-1' });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(created.body.id);
    const done = await waitFor(async () => {
      const t = (await call('GET', `/api/v1/tasks/${String(created.body.id)}`)).body;
      return t.status === 'completed' ? t : undefined;
    });
    expect(done.result).toMatchObject({ sum: 9 });
    expect(done.attemptHistory).toEqual([expect.objectContaining({ attempt: 1, outcome: 'succeeded' })]);
    // The seed's view of the same task.
    expect((await getJson(`${base()}/status/${String(created.body.id)}`)).body).toMatchObject({ status: 'completed', state: 'completed', result: { sum: 9 } });
  });

  it('a target no agent matches is accepted and the answer says so; one that some agent matches has no notice; an unknown agent is a 404', async () => {
    const nowhere = await call('POST', '/api/v1/tasks', { type: 'analyze_risk', target: { selector: { site: 'Mars' } } });
    expect(nowhere.status).toBe(201);
    expect(nowhere.body.notice).toMatch(/no agent that offers analyze_risk is matching its selector now; the task waits/);
    const anyone = await call('POST', '/api/v1/tasks', { type: 'analyze_risk', params: { note: 'plain' } });
    expect(anyone.status).toBe(201);
    expect(anyone.body.notice).toBeUndefined();
    const batch = await call('POST', '/api/v1/tasks/batch', { tasks: [{ type: 'monitor', target: { ring: 'canary' }, params: { durationSec: 0 } }, { type: 'monitor', target: { selector: { model: 'none' } } }] });
    expect((batch.body.tasks as { notice?: string }[])[1]?.notice).toMatch(/matching its selector/);
    expect(await call('POST', '/api/v1/tasks', { type: 'analyze_risk', target: { agentId: 'slave-00000000' } })).toMatchObject({ status: 404, body: { code: 'ORCH_AGENT_NOT_FOUND' } });
    expect((await call('POST', `/api/v1/tasks/${String(nowhere.body.id)}/cancel`)).status).toBe(200);
  });

  it('takes a batch in one commit, and pages through tasks with a cursor', async () => {
    const batch = await call('POST', '/api/v1/tasks/batch', { tasks: Array.from({ length: 30 }, (_, i) => ({ type: 'health_check', params: { i } })) });
    expect(batch.status).toBe(201);
    expect(batch.body.created).toBe(30);
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = (await call('GET', `/api/v1/tasks?type=health_check&limit=7${cursor === null ? '' : `&cursor=${cursor}`}`)).body as { tasks: { id: string }[]; nextCursor: string | null };
      page.tasks.forEach((t) => seen.add(t.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== null);
    expect(seen.size).toBe(30);
    expect(pages).toBe(5);
    for (const t of batch.body.tasks as { id: string }[]) expect(seen.has(t.id)).toBe(true);
  });

  it('cancels a delayed task and retries nothing that is not failed or dead', async () => {
    const later = await call('POST', '/api/v1/tasks', { type: 'deploy', runAfter: new Date(Date.now() + 3_600_000).toISOString() });
    expect(later.status).toBe(201);
    const cancelled = await call('POST', `/api/v1/tasks/${String(later.body.id)}/cancel`);
    expect(cancelled).toMatchObject({ status: 200, body: { status: 'cancelled' } });
    expect(await call('POST', `/api/v1/tasks/${String(later.body.id)}/cancel`)).toMatchObject({ status: 409, body: { code: 'ORCH_TASK_STATE' } });
    expect(await call('POST', `/api/v1/tasks/${String(later.body.id)}/retry`)).toMatchObject({ status: 409, body: { code: 'ORCH_TASK_STATE' } });
    expect(await call('POST', '/api/v1/tasks/nope/cancel')).toMatchObject({ status: 404, body: { code: 'ORCH_TASK_NOT_FOUND' } });
  });

  it('retries a failed task over HTTP', async () => {
    const bad = await call('POST', '/api/v1/tasks', { type: 'monitor', params: { durationSec: 1000 }, maxAttempts: 1 });
    const failed = await waitFor(async () => {
      const t = (await call('GET', `/api/v1/tasks/${String(bad.body.id)}`)).body;
      return t.status === 'failed' ? t : undefined;
    });
    expect(failed.error).toBe('parameters.durationSec must be a number of seconds from 0 to 300');
    const retried = await call('POST', `/api/v1/tasks/${String(bad.body.id)}/retry`);
    expect(retried).toMatchObject({ status: 200, body: { status: 'pending', attemptsLeft: 1 } });
    // Its parameters are still bad: the new run fails too, as attempt 2, and the task is listed as failed.
    await waitFor(async () => {
      const t = (await call('GET', `/api/v1/tasks/${String(bad.body.id)}`)).body;
      return t.status === 'failed' && t.attempts === 2 ? true : undefined;
    });
    // A task read by id comes from memory and may show a state whose write is still committing; the listing
    // reads what is committed, so it is waited for.
    await waitFor(async () => {
      const listed = (await call('GET', '/api/v1/tasks?status=failed&limit=50')).body.tasks as { id: string }[];
      return listed.some((t) => t.id === bad.body.id) ? true : undefined;
    });
  });

  it.each([
    [{ type: 'teleport' }, 'ORCH_UNKNOWN_TASK_TYPE', /unknown task_type/],
    [{}, 'ORCH_VALIDATION', /type/],
    [{ type: 'monitor', target: { ring: 'moon' } }, 'ORCH_UNKNOWN_RING', /"moon" is not a configured ring/],
    [{ type: 'monitor', target: { ring: 'Moon!' } }, 'ORCH_VALIDATION', /ring/],
    [{ type: 'monitor', target: { ring: 'dev', agentId: 'a' } }, 'ORCH_VALIDATION', /exactly one/],
    [{ type: 'monitor', target: { selector: {} } }, 'ORCH_VALIDATION', /selector/],
    [{ type: 'monitor', maxAttempts: 0 }, 'ORCH_VALIDATION', /maxAttempts/],
    [{ type: 'monitor', backoff: { strategy: 'linear' } }, 'ORCH_VALIDATION', /strategy/],
    [{ type: 'monitor', backoff: { initialMs: 5000, maxMs: 10 } }, 'ORCH_VALIDATION', /maxMs/],
    [{ type: 'monitor', timeoutMs: 5 }, 'ORCH_VALIDATION', /timeoutMs/],
    [{ type: 'monitor', runAfter: 'tomorrow' }, 'ORCH_VALIDATION', /runAfter/],
    [{ type: 'monitor', runAfter: 2_000_000_000_000, deadline: 1_000_000_000_000 }, 'ORCH_VALIDATION', /deadline/],
    [{ type: 'monitor', status: 'completed' }, 'ORCH_VALIDATION', /unknown field "status"/],
    [{ type: 'monitor', idempotencyKey: '' }, 'ORCH_VALIDATION', /idempotencyKey/],
  ])('refuses %j with 400 %s', async (body, code, message) => {
    const before = (await getJson(`${base()}/cluster_status`)).body.total_tasks;
    const res = await call('POST', '/api/v1/tasks', body);
    expect(res.status).toBe(400);
    expect(res.body.code).toBe(code);
    expect(String(res.body.error)).toMatch(message);
    expect((await getJson(`${base()}/cluster_status`)).body.total_tasks).toBe(before);
  });

  it('refuses a batch over 1,000 tasks, an empty one, and one with a bad task, storing none', async () => {
    const before = (await getJson(`${base()}/cluster_status`)).body.total_tasks;
    expect((await call('POST', '/api/v1/tasks/batch', { tasks: Array.from({ length: 1001 }, () => ({ type: 'monitor' })) })).status).toBe(400);
    expect((await call('POST', '/api/v1/tasks/batch', { tasks: [] })).status).toBe(400);
    expect((await call('POST', '/api/v1/tasks/batch', { tasks: [{ type: 'monitor' }, { type: 'nope' }] })).body.code).toBe('ORCH_UNKNOWN_TASK_TYPE');
    expect((await getJson(`${base()}/cluster_status`)).body.total_tasks).toBe(before);
  });

  it('validates list queries', async () => {
    expect((await call('GET', '/api/v1/tasks?limit=0')).status).toBe(400);
    expect((await call('GET', '/api/v1/tasks?limit=501')).status).toBe(400);
    expect((await call('GET', '/api/v1/tasks?status=sleeping')).status).toBe(400);
    expect((await call('GET', '/api/v1/tasks?cursor=abc')).status).toBe(400);
    expect((await call('GET', '/api/v1/tasks?colour=red')).status).toBe(400);
    expect((await call('GET', '/api/v1/tasks/does-not-exist')).status).toBe(404);
  });
});
