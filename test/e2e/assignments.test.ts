import { describe, expect, it } from 'vitest';
import { getJson, jsonClient, serversPerTest, waitFor } from '../support/server-process.js';
import type { ServerProcess } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

const startServer = serversPerTest();
const TOKEN = 'assignments-test-token-1234';

/** An agent driven by hand over the protocol, so that the order of its requests is the test's to choose. */
function handAgent(base: () => string) {
  let auth = '';
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base()}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const metrics = { battery: 80, charging: false, cpu: 10, memory: 40, disk: 50 };
  let seq = 0;
  return {
    async enroll(identity?: { agentId: string; credential: string }): Promise<{ agentId: string; credential: string }> {
      const res = await call('POST', '/api/v1/agent/enroll', { token: TOKEN, hostname: 'hand', capabilities: ['health_check', 'process_data'], metrics, ...identity });
      expect(res.status).toBe(200);
      auth = `Bearer ${res.body.agentId as string}:${res.body.credential as string}`;
      return { agentId: res.body.agentId as string, credential: res.body.credential as string };
    },
    heartbeat: (running: { taskId: string; attempt: number }[], ack?: number) => call('POST', '/api/v1/agent/heartbeat', { seq: ++seq, metrics, running, ...(ack === undefined ? {} : { ack }) }),
    poll: async (ack: number, waitMs = 2000) => (await call('GET', `/api/v1/agent/commands?ack=${ack}&waitMs=${waitMs}`)).body.commands as { id: number; type: string; taskId?: string; attempt?: number }[],
    results: (results: unknown[]) => call('POST', '/api/v1/agent/results', { results }),
  };
}

describe('assignments reach their agent or go back to the queue', () => {
  it('after a restart, a task given to an agent that has beaten but not polled yet waits in its command queue', async () => {
    const dataDir = tempDir();
    const env = { DATA_DIR: dataDir, DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '5s', LOG_LEVEL: 'error' };
    let server: ServerProcess = await startServer(env);
    const agent = handAgent(() => server.url);
    const identity = await agent.enroll();
    server.child.kill('SIGTERM');
    await server.exited;
    server = await startServer(env);
    const api = jsonClient(() => server.url);
    // The agent comes back: a heartbeat first (it is online now), its first poll later.
    expect((await agent.heartbeat([], 0)).status).toBe(200);
    const task = await api('POST', '/api/v1/tasks', { type: 'health_check', target: { agentId: identity.agentId } });
    expect(task.status).toBe(201);
    await waitFor(async () => ((await api('GET', `/api/v1/tasks/${task.body.id as string}`)).body.status === 'in_progress' ? true : undefined));
    const commands = await agent.poll(0);
    const assignment = commands.find((c) => c.type === 'task_assignment' && c.taskId === task.body.id);
    expect(assignment).toBeDefined();
    const done = await agent.results([{ taskId: task.body.id, attempt: assignment?.attempt, success: true, result: { ok: 1 } }]);
    expect(done.body.results).toEqual([{ taskId: task.body.id, attempt: 1, status: 'accepted' }]);
    expect((await api('GET', `/api/v1/tasks/${task.body.id as string}`)).body.status).toBe('completed');
  }, 60_000);

  it('a heartbeat renews only the attempts it lists; an assignment the agent handled but does not list is ended at once and requeued', async () => {
    const env = { DATA_DIR: tempDir(), DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '2s', TASK_TIMEOUT: '10m', AGENT_CONCURRENCY: '2', LOG_LEVEL: 'error' };
    const server = await startServer(env);
    const api = jsonClient(() => server.url);
    const agent = handAgent(() => server.url);
    const { agentId } = await agent.enroll();
    const kept = await api('POST', '/api/v1/tasks', { type: 'health_check', target: { agentId } });
    const dropped = await api('POST', '/api/v1/tasks', { type: 'process_data', target: { agentId }, params: { data: [1] } });
    const first = await agent.poll(0);
    const a = first.find((c) => c.taskId === kept.body.id);
    const b = first.find((c) => c.taskId === dropped.body.id);
    if (!a || !b) throw new Error(`both assignments expected, got ${JSON.stringify(first)}`);
    const handled = Math.max(a.id, b.id);
    // The agent says it handled both commands and runs only the first: the second is not running anywhere.
    const started = Date.now();
    for (let i = 0; i < 10; i++) {
      expect((await agent.heartbeat([{ taskId: a.taskId as string, attempt: 1 }], handled)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 400));
    }
    const droppedView = (await api('GET', `/api/v1/tasks/${dropped.body.id as string}`)).body as { attemptHistory: { outcome: string | null; startedAt: string; endedAt: string | null }[] };
    const firstAttempt = droppedView.attemptHistory[0];
    expect(firstAttempt?.outcome).toBe('not_running');
    // Ended by the first heartbeat after the agent handled it, not by a lease (2 s) or the timeout (10 min).
    expect(Date.parse(firstAttempt?.endedAt ?? '') - Date.parse(firstAttempt?.startedAt ?? '')).toBeLessThan(1500);
    // The listed one keeps its lease for twice AGENT_TIMEOUT and more: still in progress on its first attempt.
    expect(Date.now() - started).toBeGreaterThan(4000);
    const keptView = (await api('GET', `/api/v1/tasks/${kept.body.id as string}`)).body as { status: string; attemptHistory: unknown[] };
    expect(keptView.status).toBe('in_progress');
    expect(keptView.attemptHistory).toHaveLength(1);
    // The requeued task came back to the agent: a cancel of the old attempt first, then the new attempt.
    const next = await agent.poll(handled);
    const order = next.filter((c) => c.taskId === dropped.body.id).map((c) => `${c.type}:${c.attempt ?? '?'}`);
    expect(order.slice(0, 2)).toEqual(['cancel:1', 'task_assignment:2']);
  }, 60_000);

  it('a task for an agent that does not exist is refused with 404, not left waiting forever', async () => {
    const server = await startServer({ DATA_DIR: tempDir(), DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, LOG_LEVEL: 'error' });
    const api = jsonClient(() => server.url);
    const res = await api('POST', '/api/v1/tasks', { type: 'health_check', target: { agentId: 'no-such-agent' } });
    expect(res).toMatchObject({ status: 404, body: { code: 'ORCH_AGENT_NOT_FOUND' } });
    expect((await getJson(`${server.url}/cluster_status`)).body.total_tasks).toBe(0);
  }, 30_000);
});
