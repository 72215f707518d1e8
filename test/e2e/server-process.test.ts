import { describe, expect, it } from 'vitest';
import { getJson, postJson, runCli, serversPerTest, waitFor } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

const start = serversPerTest();

const FAST = { HEARTBEAT_INTERVAL: '250ms', AGENT_TIMEOUT: '3s' };

describe('the orchestrator process', () => {
  it('first start spawns the fleet and runs a task; SIGTERM stops it cleanly; the next start restores the same agents', async () => {
    const dataDir = tempDir();
    const first = await start({ DATA_DIR: dataDir, ...FAST });
    const lines = first.stdout().split('\n');
    expect(lines.slice(0, 2)).toEqual(['Starting master orchestrator (background)...', 'Spawning 2 default agents...']);
    expect(lines.filter((l) => /^\[Master\] spawned agent slave-[0-9a-f]{8}$/.test(l))).toHaveLength(3);
    expect(first.stdout()).toContain('Simulating asset add from UI (will spawn one agent)...');
    expect(first.stdout()).toContain('Orchestrator is running. HTTP API will accept commands...');
    const agents = (await getJson(`${first.url}/list_agents`)).body.agents as string[];
    expect(agents).toHaveLength(3);

    const { body } = await postJson(`${first.url}/submit_task`, { task_type: 'analyze_risk' });
    const task = await waitFor(async () => {
      const t = (await getJson(`${first.url}/status/${String(body.task_id)}`)).body;
      return t.status === 'completed' ? t : undefined;
    }, 5000);
    expect(task.result).toMatchObject({ level: expect.stringMatching(/low|medium|high/) as unknown });

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    expect(first.stdout()).toContain('Orchestrator stopped.');

    const second = await start({ DATA_DIR: dataDir, ...FAST });
    expect(second.stdout()).toContain('Restored 3 agents');
    expect(second.stdout()).not.toContain('Spawning');
    expect((await getJson(`${second.url}/list_agents`)).body.agents).toEqual(agents);
    expect((await getJson(`${second.url}/status/${String(body.task_id)}`)).body).toMatchObject({ status: 'completed', result: task.result });
    await waitFor(async () => ((await getJson(`${second.url}/cluster_status`)).body.idle_slaves === 3 ? true : undefined));
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });

  it('refuses a bad setting at start, naming it', async () => {
    const run = runCli(['serve', '--port', 'eighty'], { DATA_DIR: tempDir() });
    expect(await run.exited).toBe(2);
    expect(run.err()).toMatch(/--port: must be an integer from 0 to 65535 \(got "eighty"\)/);
    const env = runCli(['serve'], { DATA_DIR: tempDir(), TASK_TIMEOUT: 'forever' });
    expect(await env.exited).toBe(2);
    expect(env.err()).toMatch(/TASK_TIMEOUT: must be a duration/);
  });

  it('loses no acknowledged task when SIGKILLed during a burst of submissions', async () => {
    const dataDir = tempDir();
    const server = await start({ DATA_DIR: dataDir, ...FAST });
    const acknowledged: string[] = [];
    let failed = 0;
    let killed = false;
    const submitOne = async (i: number): Promise<boolean> => {
      try {
        const res = await fetch(`${server.url}/submit_task`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ task_type: 'process_data', parameters: { data: [i] }, priority: i % 5 }),
        });
        if (res.status === 200) {
          acknowledged.push(((await res.json()) as { task_id: string }).task_id);
          return true;
        }
      } catch {
        // The process is gone.
      }
      failed++;
      return false;
    };
    // 32 concurrent clients; the process is killed once 400 submissions have been acknowledged, and
    // each client keeps submitting until a request of its own fails.
    const clients = Array.from({ length: 32 }, async (_, c) => {
      for (let i = c; i < 20_000; i += 32) {
        const ok = await submitOne(i);
        if (!ok && killed) return;
        if (!killed && acknowledged.length >= 400) {
          killed = true;
          server.child.kill('SIGKILL');
        }
      }
    });
    await Promise.all(clients);
    expect(await server.exited).toBe('SIGKILL');
    expect(acknowledged.length).toBeGreaterThanOrEqual(400);
    // The kill landed mid-burst: submissions went on until the process was gone.
    expect(failed).toBeGreaterThanOrEqual(32);

    const again = await start({ DATA_DIR: dataDir, ...FAST });
    const missing: string[] = [];
    for (const id of acknowledged) {
      const res = await fetch(`${again.url}/status/${id}`);
      if (res.status !== 200) missing.push(id);
      else await res.arrayBuffer();
    }
    expect(missing).toEqual([]);
    const cluster = (await getJson(`${again.url}/cluster_status`)).body;
    expect(cluster.total_tasks as number).toBeGreaterThanOrEqual(acknowledged.length);
    // The queue keeps draining on the restored fleet, highest priority first.
    await waitFor(async () => {
      const c = (await getJson(`${again.url}/cluster_status`)).body;
      return (c.completed_tasks as number) >= 20 ? true : undefined;
    }, 20_000, 100);
  }, 60_000);
});
