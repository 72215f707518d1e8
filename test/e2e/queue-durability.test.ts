import http from 'node:http';
import { describe, expect, it } from 'vitest';
import { getJson, serversPerTest } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

const startServer = serversPerTest();

function post(agent: http.Agent, url: string, body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(url, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

interface ListedTask {
  id: string;
  status: string;
  params: { n?: number };
  leaseExpiresAt: string | null;
}

async function allTasks(base: string): Promise<ListedTask[]> {
  const out: ListedTask[] = [];
  let cursor: string | null = null;
  do {
    const page = (await getJson(`${base}/api/v1/tasks?limit=500${cursor === null ? '' : `&cursor=${cursor}`}`)).body as { tasks: ListedTask[]; nextCursor: string | null };
    out.push(...page.tasks);
    cursor = page.nextCursor;
  } while (cursor !== null);
  return out;
}

describe('queue durability', () => {
  it('SIGKILL during 10,000 concurrent submissions: every acknowledged task exists exactly once, and none stays in progress past its lease', async () => {
    const dataDir = tempDir();
    const env = { DATA_DIR: dataDir, HEARTBEAT_INTERVAL: '250ms', AGENT_TIMEOUT: '2s', DEFAULT_AGENTS: '4', LOG_LEVEL: 'error' };
    const server = await startServer(env);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
    const acknowledged = new Map<number, string>();
    let refused = 0;
    let killedAt = -1;
    const submissions = Array.from({ length: 10_000 }, async (_, n) => {
      try {
        const res = await post(agent, `${server.url}/api/v1/tasks`, { type: 'process_data', params: { n, data: [n] }, priority: n % 5 });
        if (res.status === 201) {
          acknowledged.set(n, (JSON.parse(res.body) as { id: string }).id);
          if (acknowledged.size === 3000 && killedAt < 0) {
            killedAt = acknowledged.size;
            server.child.kill('SIGKILL');
          }
        } else refused++;
      } catch {
        refused++;
      }
    });
    await Promise.all(submissions);
    agent.destroy();
    expect(await server.exited).toBe('SIGKILL');
    expect(acknowledged.size).toBeGreaterThanOrEqual(3000);
    // The kill landed mid-burst: a good part of the 10,000 never got an answer.
    expect(refused).toBeGreaterThan(1000);
    expect(acknowledged.size + refused).toBe(10_000);

    const again = await startServer(env);
    const tasks = await allTasks(again.url);
    const byMarker = new Map<number, ListedTask[]>();
    for (const t of tasks) {
      const n = t.params.n as number;
      byMarker.set(n, [...(byMarker.get(n) ?? []), t]);
    }
    const missing = [...acknowledged].filter(([n, id]) => byMarker.get(n)?.[0]?.id !== id);
    expect(missing).toEqual([]);
    const duplicated = [...byMarker].filter(([, list]) => list.length > 1);
    expect(duplicated).toEqual([]);
    // Nothing is left in progress under a lease that has run out: attempts of the killed process were ended on start.
    const now = Date.now();
    const overdue = tasks.filter((t) => t.status === 'in_progress' && (t.leaseExpiresAt === null || Date.parse(t.leaseExpiresAt) < now));
    expect(overdue).toEqual([]);
  }, 120_000);
});
