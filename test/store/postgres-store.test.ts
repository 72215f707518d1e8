import pg from 'pg';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { OrchestratorError } from '../../src/domain/errors.js';
import { PG_SCHEMA_VERSION } from '../../src/store/postgres/migrations.js';
import { PostgresOpenError, PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { dropTestSchemas, TEST_DATABASE_URL, testSchema } from '../support/postgres.js';
import type { TcpProxy } from '../support/tcp-proxy.js';
import { tcpProxy } from '../support/tcp-proxy.js';
import { agent, device, info, task } from './contract.js';

/*
 * What the PostgreSQL adapter does beyond the store contract (test/store/postgres.contract.test.ts): runs of one
 * statement in a batch written as one, a failing write refused alone, the database lost and found again,
 * opening and migrating.
 */

const stores: PostgresStore[] = [];
const proxies: TcpProxy[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const p of proxies.splice(0)) await p.close();
});
afterAll(dropTestSchemas);

async function open(url = TEST_DATABASE_URL, schema = testSchema('pgstore')): Promise<PostgresStore> {
  const s = await PostgresStore.open(url, { schema });
  stores.push(s);
  return s;
}

/** The local PostgreSQL's URL through a proxy the test can cut. */
async function proxied(): Promise<{ url: string; proxy: TcpProxy }> {
  const target = new URL(TEST_DATABASE_URL);
  const proxy = await tcpProxy(Number(target.port || 5432), target.hostname);
  proxies.push(proxy);
  target.host = `127.0.0.1:${proxy.port}`;
  return { url: target.toString(), proxy };
}

describe('PostgresStore', () => {
  it('writes a batch in one transaction, runs of one statement as one, with the outcome of one by one', async () => {
    const s = await open();
    await Promise.all(['a', 'b', 'c'].map((id) => s.insertAgent(agent(id))));
    const { commits, statements } = s.writer.stats;
    // One turn: heartbeats, agent a twice (the later wins), a thousand tasks, ring moves in order.
    const writes = [
      s.recordHeartbeats([{ id: 'a', device: info(10), at: 100 }, { id: 'b', device: info(20), at: 100 }]),
      s.recordHeartbeats([{ id: 'a', device: info(11), at: 200 }, { id: 'c', device: info(30), at: 200 }]),
      s.insertTasks(Array.from({ length: 1000 }, (_, k) => task(`t-${k + 1}`, k + 1))),
      s.applyRingMoves(Array.from({ length: 300 }, (_, k) => ({ agentId: `d-${k % 7}`, from: 'a', to: `r-${k}`, reason: 'balance' as const, at: k }))),
    ];
    await Promise.all(writes);
    expect(s.writer.stats.commits - commits).toBe(1);
    // Four statements: heartbeats of a and b; of a (again) and c; the tasks; the moves.
    expect(s.writer.stats.statements - statements).toBe(4);
    expect((await s.getAgent('a'))?.device?.cpu).toBe(11);
    expect((await s.getAgent('a'))?.lastHeartbeatAt).toBe(200);
    expect((await s.getAgent('b'))?.device?.cpu).toBe(20);
    expect((await s.getAgent('c'))?.connectivity).toBe('online');
    expect(await s.maxTaskSeq()).toBe(1000);
    expect((await s.getTask('t-777'))?.seq).toBe(777);
    const moves = await s.listRingMoves();
    expect(moves.map((m) => m.to)).toEqual(Array.from({ length: 300 }, (_, k) => `r-${k}`));
    expect(moves.map((m) => m.id)).toEqual([...moves.map((m) => m.id)].sort((x, y) => x - y));
  });

  it('upserts devices and saves samples in runs, keeping what a sample leaves alone', async () => {
    const s = await open();
    await s.upsertDevices(Array.from({ length: 50 }, (_, k) => device(`d-${String(k).padStart(2, '0')}`)));
    await s.upsertDevices([{ ...device('d-00'), site: 'Pune', metrics: null, sampledAt: null }]);
    const first = (await s.loadDevices('', 1))[0];
    expect(first).toMatchObject({ id: 'd-00', site: 'Pune', metrics: { cpu: 20, battery: 80 }, sampledAt: 10 });
    await s.saveDeviceSamples(
      Array.from({ length: 50 }, (_, k) => ({ id: `d-${String(k).padStart(2, '0')}`, battery: null, charging: null, cpu: k, memory: 1, disk: 2, drain: 0, cpuTrend: 0, impact: 0, sampledAt: 500, history: { score: 90 } })),
    );
    const all = await s.loadDevices('', 100);
    expect(all.map((d) => d.metrics?.cpu)).toEqual(Array.from({ length: 50 }, (_, k) => k));
    expect(await s.deviceHistory('d-07', 0, 10)).toEqual([{ at: 500, battery: null, charging: null, cpu: 7, memory: 1, disk: 2, score: 90 }]);
  });

  it('refuses a failing write alone: the others of its batch commit', async () => {
    const s = await open();
    await s.insertTasks([task('x', 1)]);
    const [a, dup, c] = await Promise.allSettled([s.insertTasks([task('y', 2)]), s.insertTasks([task('x', 3)]), s.insertTasks([task('z', 4)])]);
    expect(a.status).toBe('fulfilled');
    expect(c.status).toBe('fulfilled');
    expect(dup.status).toBe('rejected');
    // A write's own fault is not the database's: not ORCH_STORAGE_UNAVAILABLE.
    expect((dup as PromiseRejectedResult).reason).not.toBeInstanceOf(OrchestratorError);
    expect(((dup as PromiseRejectedResult).reason as Error).message).toMatch(/23505|duplicate key/);
    expect((await s.listTasks({}, 10)).map((t) => t.id)).toEqual(['z', 'y', 'x']);
  });

  it('with the database unreachable, writes and reads fail with ORCH_STORAGE_UNAVAILABLE; the store recovers once it is back', async () => {
    const { url, proxy } = await proxied();
    const s = await open(url);
    await s.insertTasks([task('before', 1)]);
    const heard: Error[] = [];
    s.onWriteFailure((err) => heard.push(err));
    proxy.cut();
    const write = s.insertTasks([task('during', 2)]);
    await expect(write).rejects.toMatchObject({ code: 'ORCH_STORAGE_UNAVAILABLE' });
    await expect(s.getTask('before')).rejects.toMatchObject({ code: 'ORCH_STORAGE_UNAVAILABLE' });
    await expect(s.probe()).rejects.toMatchObject({ code: 'ORCH_STORAGE_UNAVAILABLE' });
    expect(heard.length).toBeGreaterThanOrEqual(1);
    proxy.mend();
    await s.probe();
    await s.insertTasks([task('after', 3)]);
    expect((await s.listTasks({}, 10)).map((t) => t.id)).toEqual(['after', 'before']);
  });

  it('says in one line why it cannot open: unreachable (without the password), or a schema newer than it knows', async () => {
    const { url, proxy } = await proxied();
    proxy.cut();
    const withPassword = new URL(url);
    withPassword.password = 'hunter2';
    const err = await PostgresStore.open(withPassword.toString(), { schema: testSchema() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PostgresOpenError);
    expect((err as Error).message).toContain('DATABASE_URL');
    expect((err as Error).message).not.toContain('hunter2');
    expect((err as Error).message).not.toContain('\n');

    const schema = testSchema();
    await (await open(TEST_DATABASE_URL, schema)).close();
    stores.length = 0;
    const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await c.connect();
    await c.query(`UPDATE ${pg.escapeIdentifier(schema)}.schema_version SET version = ${PG_SCHEMA_VERSION + 1}`);
    await c.end();
    await expect(PostgresStore.open(TEST_DATABASE_URL, { schema })).rejects.toThrow(new RegExp(`schema version ${PG_SCHEMA_VERSION + 1}, newer than this orchestrator knows`));
  });

  it('lets replicas that start together migrate once', async () => {
    const schema = testSchema();
    const opened = await Promise.all([0, 1, 2].map(() => open(TEST_DATABASE_URL, schema)));
    await opened[0]?.setMeta('k', 'v');
    expect(await opened[2]?.getMeta('k')).toBe('v');
    const c = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await c.connect();
    const rows = (await c.query(`SELECT version FROM ${pg.escapeIdentifier(schema)}.schema_version`)).rows;
    await c.end();
    expect(rows).toEqual([{ version: PG_SCHEMA_VERSION }]);
  });
});
