import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { ScriptRun } from '../support/server-process.js';
import { runCli, waitFor } from '../support/server-process.js';
import type { Netns } from '../support/netns.js';
import { makeNetns } from '../support/netns.js';
import { dropTestSchemas, testSchema } from '../support/postgres.js';
import type { ReplicaView } from '../support/replicas.js';
import { databaseUrl, replicasPerTest } from '../support/replicas.js';
import type { TcpProxy } from '../support/tcp-proxy.js';
import { tcpProxy } from '../support/tcp-proxy.js';

/*
 * A partition, in network namespaces: the leader runs in a namespace of the test's own, reaching PostgreSQL
 * over one veth pair and serving its API over another. The test cuts the first: the leader is cut off from
 * PostgreSQL (its connections hang, as across a real partition) but still reachable. A follower outside takes
 * over once the lease expires; the old leader stops serving as leader within one lease of the cut, commits
 * nothing, and follows the new leader once the link is mended.
 */

const replica = replicasPerTest();
const ADMIN_TOKEN = 'partition-test-admin-token-0123456789abcdef';
const AUTH = { authorization: `Bearer ${ADMIN_TOKEN}` };
const LEASE_MS = 2000;

let netns: Netns | null = null;
let proxy: TcpProxy | null = null;
const inside: ScriptRun[] = [];
afterEach(async () => {
  for (const r of inside.splice(0)) {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGKILL');
      await r.exited;
    }
  }
  await proxy?.close();
  proxy = null;
  netns?.remove();
  netns = null;
});
afterAll(dropTestSchemas);

async function call(url: string, method = 'GET', body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(url, { method, headers: { ...AUTH, 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }), signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

/** What /readyz says of the replica at `url` ('beginning' while it loads to lead; 'unreachable' when it does not answer). */
async function roleOf(url: string): Promise<ReplicaView> {
  try {
    const r = await call(`${url}/readyz`);
    const replica = r.body.replica as ReplicaView;
    return replica.role === 'leader' && r.status !== 200 ? { ...replica, role: 'beginning' } : replica;
  } catch {
    return { role: 'unreachable', leader: null, epoch: null };
  }
}

describe('a partition between the leader and PostgreSQL (network namespaces)', () => {
  it('cut off from PostgreSQL, the leader stops leading within one lease and commits nothing; a follower takes over; mended, the old leader follows', async () => {
    const schema = testSchema('partition');
    netns = makeNetns('part', 2);
    const [db, api] = netns.links as [Netns['links'][number], Netns['links'][number]];
    // PostgreSQL listens on loopback: the namespace reaches it through a proxy on this side of the first link.
    proxy = await tcpProxy(5432, '127.0.0.1', db.host);
    const aUrl = `http://${api.inside}:18000`;
    const env = { ADMIN_TOKEN, LEADER_LEASE: `${LEASE_MS / 1000}s`, DEFAULT_AGENTS: '0', PORT: '0' };
    const a = runCli(['serve'], {
      ...env,
      DATABASE_URL: databaseUrl(schema, `postgres://postgres@${db.host}:${proxy.port}/test`),
      HOST: api.inside,
      PORT: '18000',
      ADVERTISE_URL: aUrl,
    }, { wrap: netns.wrap });
    inside.push(a);
    await waitFor(async () => ((await roleOf(aUrl)).role === 'leader' ? true : a.child.exitCode !== null ? Promise.reject(new Error(`the leader exited: ${a.err()}`)) : undefined), 30_000, 100);
    // The follower listens on this side of the API link, so that the old leader, once it follows, reaches it.
    const b = await replica(schema, { ...env, HOST: api.host });
    expect(await roleOf(b.url)).toMatchObject({ role: 'follower', leader: aUrl, epoch: 1 });
    const before = await call(`${b.url}/api/v1/tasks`, 'POST', { type: 'health_check', idempotencyKey: 'before-the-cut' });
    expect(before.status).toBe(201);

    netns.cut(0);
    const cutAt = Date.now();
    // Sent to the old leader during the partition: none may be acknowledged.
    const during = [0, 1, 2].map((i) => call(`${aUrl}/api/v1/tasks`, 'POST', { type: 'health_check', idempotencyKey: `to-the-cut-leader-${i}` }).catch(() => ({ status: 0, body: {} })));
    const stoppedLeading = await waitFor(async () => ((await roleOf(aUrl)).role !== 'leader' ? Date.now() : undefined), 10_000, 50);
    const tookOver = await waitFor(async () => ((await roleOf(b.url)).role === 'leader' ? Date.now() : undefined), 15_000, 50);
    // Within one lease of the cut (with a renewal period of slack: the deadline counts from the last renewal sent).
    expect(stoppedLeading - cutAt).toBeLessThanOrEqual(LEASE_MS + 500);
    expect(tookOver - cutAt).toBeGreaterThan(stoppedLeading - cutAt - 100);
    const answers = await Promise.all(during);
    expect(answers.filter((r) => r.status >= 200 && r.status < 300)).toEqual([]);
    // What the old leader says while cut off: not a leader, no leader known (it cannot read the lease).
    expect((await call(`${aUrl}/api/v1/tasks`, 'POST', { type: 'health_check' })).status).toBe(503);

    const after = await call(`${b.url}/api/v1/tasks`, 'POST', { type: 'health_check', idempotencyKey: 'after-the-cut' });
    expect(after.status).toBe(201);
    netns.mend(0);
    // Mended: the old leader sees the new one in the lease and follows it (forwarding to it).
    await waitFor(async () => ((await roleOf(aUrl)).leader === b.url ? true : undefined), 30_000, 100);
    expect(await roleOf(aUrl)).toMatchObject({ role: 'follower', leader: b.url, epoch: 2 });
    const tasks = (await call(`${aUrl}/api/v1/tasks?limit=100`)).body.tasks as { idempotencyKey: string | null }[];
    expect(tasks.map((t) => t.idempotencyKey).sort()).toEqual(['after-the-cut', 'before-the-cut']);
    process.stdout.write(`partition: the leader stopped leading ${stoppedLeading - cutAt} ms after the cut; the follower led after ${tookOver - cutAt} ms\n`);
  }, 90_000);
});
