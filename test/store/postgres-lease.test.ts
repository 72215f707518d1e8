import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { dropTestSchemas, TEST_DATABASE_URL, testSchema } from '../support/postgres.js';
import { task } from './contract.js';

/*
 * The leader lease on PostgreSQL (store/postgres/lease.ts): taking it, renewing it, losing it to expiry or
 * to a holder whose connection is gone, and the fence that keeps a deposed leader's commits out.
 */

const stores: PostgresStore[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
});
afterAll(dropTestSchemas);

/** Two replicas' stores on one schema. */
async function replicas(n = 2): Promise<PostgresStore[]> {
  const schema = testSchema('lease');
  const opened = await Promise.all(Array.from({ length: n }, () => PostgresStore.open(TEST_DATABASE_URL, { schema })));
  stores.push(...opened);
  return opened;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('leader lease on PostgreSQL', () => {
  it('is taken by one replica; the others see who holds it until it expires, then one takes it with the next epoch', async () => {
    const [a, b] = (await replicas()) as [PostgresStore, PostgresStore];
    expect(await a.leadership.current()).toBeNull();
    const [ea, eb] = await Promise.all([a.leadership.acquire('a', 'http://a:1', 600), b.leadership.acquire('b', 'http://b:1', 600)]);
    // Exactly one of them.
    expect([ea, eb].filter((e) => e !== null)).toEqual([1]);
    const [leader, other, otherId] = ea === 1 ? [a, b, 'b'] : [b, a, 'a'];
    const leaderId = otherId === 'a' ? 'b' : 'a';
    const seen = await other.leadership.current();
    expect(seen).toMatchObject({ holder: leaderId, url: `http://${leaderId}:1`, epoch: 1 });
    expect(seen?.expiresInMs).toBeGreaterThan(0);
    expect(await leader.leadership.renew(leaderId, 1, 600)).toBe(true);
    expect(await other.leadership.acquire(otherId, `http://${otherId}:1`, 600)).toBeNull();
    await sleep(700);
    expect(await other.leadership.acquire(otherId, `http://${otherId}:1`, 600)).toBe(2);
    // The old holder's renewal finds it gone.
    expect(await leader.leadership.renew(leaderId, 1, 600)).toBe(false);
  });

  it('passes at once from a holder whose connection is gone (its process was killed), without waiting for expiry', async () => {
    const [a, b] = (await replicas()) as [PostgresStore, PostgresStore];
    expect(await a.leadership.acquire('a', 'http://a:1', 60_000)).toBe(1);
    expect(await b.leadership.acquire('b', 'http://b:1', 60_000)).toBeNull();
    // What a SIGKILL does to the holder's lease connection: the server ends its session.
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'orchestrator lease' AND pid = (SELECT backend_pid FROM ${pg.escapeIdentifier(b.schema as string)}.leader_lease)`);
    await admin.end();
    await sleep(100);
    expect(await b.leadership.acquire('b', 'http://b:1', 60_000)).toBe(2);
  });

  it('fences a deposed leader: none of its commits lands once another epoch holds the lease', async () => {
    const [a, b] = (await replicas()) as [PostgresStore, PostgresStore];
    expect(await a.leadership.acquire('a', 'http://a:1', 400)).toBe(1);
    a.leadership.fence(1);
    await a.insertTasks([task('from-a-while-leading', 1)]);
    await sleep(500);
    expect(await b.leadership.acquire('b', 'http://b:1', 10_000)).toBe(2);
    b.leadership.fence(2);
    const heard: Error[] = [];
    a.onWriteFailure((err) => heard.push(err));
    const refused = await Promise.allSettled([a.insertTasks([task('from-a-deposed', 2)]), a.setMeta('k', 'a'), a.insertTasks([task('also-from-a', 3)])]);
    expect(refused.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    expect((refused[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'ORCH_NOT_LEADER' });
    expect(a.writer.fencedBatches).toBeGreaterThanOrEqual(1);
    expect(heard.length).toBe(3);
    await b.insertTasks([task('from-b', 4)]);
    expect((await b.listTasks({}, 10)).map((t) => t.id)).toEqual(['from-b', 'from-a-while-leading']);
    expect(await b.getMeta('k')).toBeNull();
    // Stepping down: every write refused at once, without asking the database.
    a.leadership.fence('closed');
    const batches = a.writer.stats.commits;
    await expect(a.setMeta('k', 'again')).rejects.toMatchObject({ code: 'ORCH_NOT_LEADER' });
    expect(a.writer.stats.commits).toBe(batches);
  });

  it('is given up on release, so that a follower takes it at once', async () => {
    const [a, b] = (await replicas()) as [PostgresStore, PostgresStore];
    expect(await a.leadership.acquire('a', 'http://a:1', 60_000)).toBe(1);
    await a.leadership.release('a', 1);
    expect(await b.leadership.acquire('b', 'http://b:1', 60_000)).toBe(2);
  });
});
