import { afterEach, describe, expect, it } from 'vitest';
import { getJson, serversPerTest, waitFor } from '../support/server-process.js';
import { mountTmpfs } from '../support/tmpfs.js';

const startServer = serversPerTest();
const mounts: ReturnType<typeof mountTmpfs>[] = [];
afterEach(() => {
  for (const m of mounts.splice(0)) m.unmount();
});

interface Answer {
  status: number;
  body: Record<string, unknown>;
  retryAfter: string | null;
}

async function submit(base: string, key: string, n: number): Promise<Answer> {
  const res = await fetch(`${base}/api/v1/tasks`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'process_data', params: { n, data: [n, 1] }, idempotencyKey: key }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, retryAfter: res.headers.get('retry-after') };
}

async function listAll(base: string): Promise<{ id: string; status: string; idempotencyKey: string | null }[]> {
  const out: { id: string; status: string; idempotencyKey: string | null }[] = [];
  let cursor: string | null = null;
  do {
    const page = (await getJson(`${base}/api/v1/tasks?limit=500${cursor === null ? '' : `&cursor=${cursor}`}`)).body as {
      tasks: { id: string; status: string; idempotencyKey: string | null }[];
      nextCursor: string | null;
    };
    out.push(...page.tasks);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

describe('a full disk under a running orchestrator', () => {
  it('refuses changes with 503 while writes fail, keeps memory equal to the disk, recovers by itself, and loses nothing it acknowledged across a SIGKILL', async () => {
    const fs = mountTmpfs(64);
    mounts.push(fs);
    const env = { DATA_DIR: fs.dir, DEFAULT_AGENTS: '2', AGENT_CONCURRENCY: '25', HEARTBEAT_INTERVAL: '250ms', AGENT_TIMEOUT: '3s', LOG_LEVEL: 'fatal' };
    const server = await startServer(env);
    const base = server.url;
    const acknowledged = new Map<string, string>();
    const refused = new Set<string>();
    const record = (key: string, a: Answer): void => {
      if (a.status === 201 || a.status === 200) acknowledged.set(key, a.body.id as string);
      else {
        // The only refusal a full disk may cause: 503 with its code and a retry-after; never another 5xx.
        expect(a).toMatchObject({ status: 503, body: { code: 'ORCH_STORAGE_UNAVAILABLE' } });
        expect(a.retryAfter).not.toBeNull();
        refused.add(key);
      }
    };
    for (let n = 0; n < 50; n++) record(`before-${n}`, await submit(base, `before-${n}`, n));
    expect(acknowledged.size).toBe(50);
    expect((await getJson(`${base}/readyz`)).status).toBe(200);

    expect(fs.fill()).toBeGreaterThan(0);
    // Submissions while the disk is full: 20 at a time.
    for (let round = 0; round < 10; round++) {
      await Promise.all(Array.from({ length: 20 }, async (_, i) => {
        const key = `full-${round * 20 + i}`;
        record(key, await submit(base, key, 1000 + round * 20 + i));
      }));
    }
    expect(refused.size).toBeGreaterThan(150);
    const ready = await getJson(`${base}/readyz`);
    expect(ready).toMatchObject({ status: 503, body: { status: 'not_ready', code: 'ORCH_STORAGE_UNAVAILABLE', storage: { writable: false } } });
    expect((await getJson(`${base}/healthz`)).status).toBe(200);
    // Reads still work, and what they show is what the disk holds: no refused task is counted or listed.
    await waitFor(async () => {
      const listed = await listAll(base);
      const total = (await getJson(`${base}/cluster_status`)).body.total_tasks;
      return total === listed.length ? true : undefined;
    });
    const during = await listAll(base);
    expect(during.filter((t) => t.idempotencyKey !== null && refused.has(t.idempotencyKey))).toEqual([]);
    // A refused key asked again while the disk is still full is refused again, never answered "existing".
    const again = await submit(base, [...refused][0] as string, 0);
    expect(again.status).toBe(503);

    fs.free();
    await waitFor(async () => ((await getJson(`${base}/readyz`)).status === 200 ? true : undefined), 20_000, 100);
    // Every refused key creates its task now: none of them had been stored.
    for (const key of refused) {
      const a = await submit(base, key, 2000);
      expect(a.status).toBe(201);
      acknowledged.set(key, a.body.id as string);
    }
    // The API serves the state rebuilt after the failure, not the one it replaced: a ring override made now is
    // what the fleet's own counts show.
    const agentId = ((await getJson(`${base}/list_agents`)).body.agents as string[])[0] as string;
    const current = (await getJson(`${base}/api/v1/devices/${agentId}`)).body.ring as string;
    const target = ['canary', 'dev', 'stage', 'prod'].find((r) => r !== current) as string;
    const countIn = async (ring: string): Promise<number> => ((await getJson(`${base}/cluster_status`)).body.ring_distribution as Record<string, number>)[ring] ?? 0;
    const before = await countIn(target);
    const put = await fetch(`${base}/api/v1/devices/${agentId}/ring`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ring: target, reason: 'after recovery' }) });
    expect(put.status).toBe(200);
    expect(await countIn(target)).toBe(before + 1);
    expect((await getJson(`${base}/api/v1/rings`)).body.rings).toEqual(expect.arrayContaining([expect.objectContaining({ name: target, size: before + 1 })]));
    // Every acknowledged task runs to completion.
    await waitFor(async () => {
      const all = await listAll(base);
      return all.length === acknowledged.size && all.every((t) => t.status === 'completed') ? true : undefined;
    }, 60_000, 250);

    server.child.kill('SIGKILL');
    await server.exited;
    const restarted = await startServer(env);
    const after = await listAll(restarted.url);
    const byKey = new Map<string, string[]>();
    for (const t of after) if (t.idempotencyKey !== null) byKey.set(t.idempotencyKey, [...(byKey.get(t.idempotencyKey) ?? []), t.id]);
    const lost = [...acknowledged].filter(([key, id]) => byKey.get(key)?.[0] !== id);
    expect(lost).toEqual([]);
    expect([...byKey.values()].filter((ids) => ids.length > 1)).toEqual([]);
    expect(after.filter((t) => t.status !== 'completed')).toEqual([]);
  }, 180_000);
});
