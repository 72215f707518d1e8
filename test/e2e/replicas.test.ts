import { request } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import type { ServerProcess } from '../support/server-process.js';
import { getJson, postJson, waitFor } from '../support/server-process.js';
import type { ReplicaView } from '../support/replicas.js';
import { replicaRole, replicasPerTest } from '../support/replicas.js';
import { openEventStream } from '../support/sse-client.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { dropTestSchemas, TEST_DATABASE_URL, testSchema } from '../support/postgres.js';

/*
 * Replicas on PostgreSQL as real processes: one leads, the others follow; a killed leader is replaced at
 * once; a paused one past its lease is replaced, and when it resumes none of its writes commits and it
 * follows. Short leases (LEADER_LEASE=2s) keep these fast.
 */

const replica = replicasPerTest();
afterAll(dropTestSchemas);

/** The replica's role as its /readyz says (test/support/replicas.ts). */
const role = (s: ServerProcess): Promise<ReplicaView> => replicaRole(s.url);

/** POSTs JSON to `url` from the loopback address `from` (127.0.0.2, ...: a client of its own); `headers` besides. */
function postFrom(from: string, url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', localAddress: from, headers: { 'content-type': 'application/json', ...headers } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
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

  it("the leader counts a forwarded request as its client's, by the follower's signed word: limits, blocks and the audit log per client, and a forged word is not believed", async () => {
    const schema = await createSchema();
    const env = { ENROLL_TOKEN: 'signed-clients-token', ENROLL_RATE_LIMIT: '2/1m' };
    const a = await replica(schema, env);
    await waitFor(async () => ((await role(a)).role === 'leader' ? true : undefined));
    const b = await replica(schema, env);
    expect((await role(b)).role).toBe('follower');
    const enroll = (from: string, hostname: string): Promise<{ status: number; body: Record<string, unknown> }> =>
      postFrom(from, `${b.url}/api/v1/agent/enroll`, { token: 'signed-clients-token', hostname, capabilities: ['health_check'], metrics: { battery: 90, charging: false, cpu: 5, memory: 10, disk: 20 } });
    // Two enrollments a minute per client address: through the follower, 127.0.0.2 uses its own two...
    expect((await enroll('127.0.0.2', 'one')).status).toBe(200);
    expect((await enroll('127.0.0.2', 'two')).status).toBe(200);
    const third = await enroll('127.0.0.2', 'three');
    expect(third).toMatchObject({ status: 429, body: { code: 'ORCH_RATE_LIMITED' } });
    // ...and 127.0.0.3, behind the same follower, still has its own.
    expect((await enroll('127.0.0.3', 'four')).status).toBe(200);
    // The audit log names the client, not the follower.
    await postFrom('127.0.0.4', `${b.url}/api/v1/tasks`, { type: 'health_check' });
    // A forged word, sent straight to the leader, is not believed: the socket's address is counted.
    await postFrom('127.0.0.5', `${a.url}/api/v1/tasks`, { type: 'health_check' }, { 'x-orchestrator-forwarded': 'intruder;for=203.0.113.9;sig=AAAA' });
    const audit = (await getJson(`${a.url}/api/v1/audit?limit=10`)).body.entries as { action: string; address: string }[];
    expect(audit.filter((e) => e.action === 'POST /api/v1/tasks').map((e) => e.address).sort()).toEqual(['127.0.0.4', '127.0.0.5']);
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
