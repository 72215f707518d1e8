import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ServerProcess } from '../support/server-process.js';
import { getJson, postJson, runCli, waitFor } from '../support/server-process.js';
import { openEventStream } from '../support/sse-client.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { dropTestSchemas, TEST_DATABASE_URL, testSchema } from '../support/postgres.js';

/*
 * Replicas on PostgreSQL as real processes: one leads, the others follow; a killed leader is replaced at
 * once; a paused one past its lease is replaced, and when it resumes none of its writes commits and it
 * follows. Short leases (LEADER_LEASE=2s) keep these fast.
 */

const running: ServerProcess[] = [];
afterEach(async () => {
  for (const s of running.splice(0)) {
    if (s.child.exitCode === null && s.child.signalCode === null) {
      s.child.kill('SIGCONT');
      s.child.kill('SIGKILL');
      await s.exited;
    }
  }
});
afterAll(dropTestSchemas);

/** The local PostgreSQL, on a schema of its own for this test. */
function databaseUrl(schema: string): string {
  // %20, not URLSearchParams' '+': the driver decodes the URL with decodeURIComponent.
  return `${TEST_DATABASE_URL}${TEST_DATABASE_URL.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema}`)}`;
}

/** Starts `orchestrator serve` as a replica on `schema`; resolves once it serves (as leader or follower). */
async function replica(schema: string, env: Record<string, string> = {}): Promise<ServerProcess> {
  const run = runCli(['serve'], { PORT: '0', DATABASE_URL: databaseUrl(schema), LEADER_LEASE: '2s', DEFAULT_AGENTS: '0', ...env });
  const url = await waitFor(async () => /(?:HTTP API running at|HTTP API at) (http:\/\/[^\s)]+)/.exec(run.out())?.[1] ?? (run.child.exitCode !== null ? Promise.reject(new Error(`exited: ${run.err()}`)) : undefined), 20_000);
  const s: ServerProcess = { child: run.child, url, stdout: run.out, stderr: run.err, exited: run.exited };
  running.push(s);
  return s;
}

/**
 * The replica's role as its /readyz says: 'leader' only once it serves as one (while it loads the state it
 * answers 503), 'unreachable' in the moment it changes apps (a client retries).
 */
async function role(s: ServerProcess): Promise<{ role: string; leader: string | null; epoch: number | null }> {
  try {
    const r = await getJson(`${s.url}/readyz`);
    const replica = r.body.replica as { role: string; leader: string | null; epoch: number | null };
    return replica.role === 'leader' && r.status !== 200 ? { ...replica, role: 'beginning' } : replica;
  } catch {
    return { role: 'unreachable', leader: null, epoch: null };
  }
}

async function createSchema(): Promise<string> {
  // The schema is made by the first replica's migration; the name only has to be new.
  return Promise.resolve(testSchema('replicas'));
}

describe('replicas on PostgreSQL', () => {
  it('one leads and one follows, forwarding to it; a killed leader is replaced at once, with every task acknowledged through the follower', async () => {
    const schema = await createSchema();
    const a = await replica(schema);
    await waitFor(async () => ((await role(a)).role === 'leader' ? true : undefined));
    const b = await replica(schema);
    const rb = await role(b);
    expect(rb).toMatchObject({ role: 'follower', leader: a.url, epoch: 1 });
    expect((await getJson(`${b.url}/readyz`)).status).toBe(200);
    expect((await getJson(`${b.url}/healthz`)).status).toBe(200);
    // The follower forwards: the seed's routes and the API answer as the leader does.
    const status = await getJson(`${b.url}/api/v1/tasks`);
    expect(status).toMatchObject({ status: 200, body: { tasks: [] } });
    // The event stream too, as it happens: the first task submitted below arrives through the follower.
    const stream = await openEventStream(`${b.url}/api/v1/events?kinds=task.submitted`);
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await postJson(`${b.url}/api/v1/tasks`, { type: 'health_check', params: { i } });
      expect(r.status).toBe(201);
      ids.push(r.body.id as string);
    }
    expect(((await getJson(`${a.url}/api/v1/tasks?limit=100`)).body.tasks as unknown[]).length).toBe(30);
    const first = await stream.next((e) => e.event === 'task.submitted');
    expect(first.data).toContain(ids[0]);
    stream.close();
    const killedAt = Date.now();
    a.child.kill('SIGKILL');
    await waitFor(async () => ((await role(b)).role === 'leader' ? true : undefined), 10_000, 25);
    const takeOverMs = Date.now() - killedAt;
    // Its lease connection is gone with it: no waiting for the lease to expire.
    expect(takeOverMs).toBeLessThan(2000);
    expect(await role(b)).toMatchObject({ role: 'leader', epoch: 2 });
    const tasks = (await getJson(`${b.url}/api/v1/tasks?limit=100`)).body.tasks as { id: string }[];
    expect(tasks.map((t) => t.id).sort()).toEqual([...ids].sort());
  }, 60_000);

  it('a leader paused past its lease is replaced; resumed, none of its writes commits and it follows', async () => {
    const schema = await createSchema();
    const a = await replica(schema);
    await waitFor(async () => ((await role(a)).role === 'leader' ? true : undefined));
    const b = await replica(schema);
    expect((await role(b)).role).toBe('follower');
    a.child.kill('SIGSTOP');
    const stoppedAt = Date.now();
    // Requests that reach the paused leader wait in its socket: it reads them only once resumed.
    const sent = Array.from({ length: 5 }, (_, i) => postJson(`${a.url}/api/v1/tasks`, { type: 'health_check', idempotencyKey: `paused-${i}` }).catch((err: unknown) => ({ status: 0, body: { error: String(err) } })));
    await waitFor(async () => ((await role(b)).role === 'leader' ? true : undefined), 15_000, 50);
    // Not before the lease (2 s) could have expired.
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(1500);
    const fromB = await postJson(`${b.url}/api/v1/tasks`, { type: 'health_check', idempotencyKey: 'from-b' });
    expect(fromB.status).toBe(201);
    a.child.kill('SIGCONT');
    const answers = await Promise.all(sent);
    // Every request sent to the old leader while it was paused was refused once it resumed: 503 when it read it
    // (it had stepped down), or the connection closed when it stopped listening first. None was acknowledged.
    expect(answers.map((r) => (r.status === 503 ? 503 : r.status === 0 ? 'closed' : r.status)).filter((s) => s !== 503 && s !== 'closed')).toEqual([]);
    expect(answers).toHaveLength(5);
    await waitFor(async () => ((await role(a)).leader === b.url ? true : undefined), 5000);
    expect(await role(a)).toMatchObject({ role: 'follower', leader: b.url, epoch: 2 });
    const tasks = (await getJson(`${b.url}/api/v1/tasks?limit=100`)).body.tasks as { idempotencyKey: string | null }[];
    expect(tasks.map((t) => t.idempotencyKey)).toEqual(['from-b']);
  }, 60_000);

  it('a follower whose leader cannot be reached answers 503 ORCH_NOT_LEADER with retry-after, and leads once the lease is given up', async () => {
    const schema = await createSchema();
    // A holder that is alive (its connection is open) but serves nowhere.
    const holder = await PostgresStore.open(TEST_DATABASE_URL, { schema });
    try {
      expect(await holder.leadership.acquire('elsewhere', 'http://127.0.0.1:9', 60_000)).toBe(1);
      const b = await replica(schema);
      expect(await role(b)).toMatchObject({ role: 'follower', leader: 'http://127.0.0.1:9', epoch: 1 });
      for (const [method, path] of [['GET', '/api/v1/tasks'], ['POST', '/api/v1/tasks'], ['GET', '/cluster_status'], ['GET', '/api/v1/events']] as const) {
        const r = await fetch(`${b.url}${path}`, { method, ...(method === 'POST' ? { body: '{"type":"health_check"}', headers: { 'content-type': 'application/json' } } : {}) });
        expect(r.status).toBe(503);
        expect(r.headers.get('retry-after')).toBe('1');
        expect(await r.json()).toMatchObject({ code: 'ORCH_NOT_LEADER' });
      }
      await holder.leadership.release('elsewhere', 1);
      await waitFor(async () => ((await role(b)).role === 'leader' ? true : undefined), 5000);
      expect((await getJson(`${b.url}/api/v1/tasks`)).status).toBe(200);
    } finally {
      await holder.close();
    }
  }, 60_000);
});
