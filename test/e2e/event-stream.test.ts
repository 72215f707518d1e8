import { describe, expect, it } from 'vitest';
import { serverPerFile } from '../support/in-process.js';
import { openEventStream } from '../support/sse-client.js';
import { waitFor } from '../support/server-process.js';

const srv = serverPerFile({ HEARTBEAT_INTERVAL: '200ms', AGENT_TIMEOUT: '5s', DEFAULT_AGENTS: '2', EVENT_STREAM_PING: '200ms' });
const url = (query = ''): string => `${srv.base()}/api/v1/events${query}`;

interface TaskData {
  at: number;
  task: { id: string; type: string; status: string; agentId: string | null; params?: unknown };
}

describe('GET /api/v1/events: the live event stream', () => {
  it("streams a task's life as it happens, each event with an id, its kind and a small JSON summary", async () => {
    const stream = await openEventStream(url());
    try {
      expect(stream.status).toBe(200);
      expect(stream.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
      expect(stream.headers.get('cache-control')).toBe('no-store');
      expect(stream.headers.get('x-accel-buffering')).toBe('no');
      const before = Date.now();
      const task = await srv.call('POST', '/api/v1/tasks', { type: 'health_check', params: { secret: 'not on the stream' } });
      expect(task.status).toBe(201);
      const id = task.body.id as string;
      const mine = (kind: string) => (e: { event: string; data: string }) => e.event === kind && (JSON.parse(e.data) as TaskData).task.id === id;
      const submitted = await stream.next(mine('task.submitted'));
      const completed = await stream.next(mine('task.completed'), 10_000);
      const started = await stream.next(mine('task.started'));
      const s = JSON.parse(submitted.data) as TaskData;
      expect(s.task).toMatchObject({ id, type: 'health_check', status: 'pending' });
      expect(s.at).toBeGreaterThanOrEqual(before - 1000);
      // The stream carries the task's state, never its parameters or result.
      expect(submitted.data).not.toContain('not on the stream');
      expect((JSON.parse(started.data) as TaskData).task.agentId).toEqual(expect.any(String));
      expect((JSON.parse(completed.data) as TaskData).task.status).toBe('completed');
      // Ids grow along the stream.
      const seq = (e: { id: string }): number => Number(e.id.slice(e.id.lastIndexOf('-') + 1));
      expect(seq(submitted)).toBeLessThan(seq(started));
      expect(seq(started)).toBeLessThan(seq(completed));
      // Comments keep it open while nothing happens.
      await waitFor(() => Promise.resolve(stream.text().includes(': ping\n\n') ? true : undefined), 3000);
    } finally {
      stream.close();
    }
  });

  it('sends only the kinds asked for (exact kinds or families), and refuses a kind that does not exist', async () => {
    const deployments = await openEventStream(url('?kinds=deployment,agent.offline'));
    const tasks = await openEventStream(url('?kinds=task.completed'));
    try {
      await srv.call('POST', '/api/v1/tasks', { type: 'health_check' });
      const started = await srv.call('POST', '/start_deployment', { deployment_id: 'stream-seed-1' });
      expect(started.status).toBe(200);
      const dep = await deployments.next((e) => e.event === 'deployment.started');
      expect(JSON.parse(dep.data)).toMatchObject({ deploymentId: 'stream-seed-1', affected: expect.any(Array) as unknown });
      await tasks.next((e) => e.event === 'task.completed', 10_000);
      expect(deployments.events.every((e) => e.event.startsWith('deployment.') || e.event === 'agent.offline')).toBe(true);
      expect(tasks.events.every((e) => e.event === 'task.completed')).toBe(true);
    } finally {
      deployments.close();
      tasks.close();
    }
    const bad = await fetch(url('?kinds=task,nonsense'));
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ error: expect.stringContaining('"nonsense"') as unknown, code: 'ORCH_VALIDATION' });
  });

  it('resumes after a lost connection from Last-Event-ID: what happened meanwhile is replayed, nothing twice', async () => {
    const first = await openEventStream(url('?kinds=task'));
    const a = await srv.call('POST', '/api/v1/tasks', { type: 'health_check', priority: 7 });
    const seen = await first.next((e) => e.event === 'task.submitted' && (JSON.parse(e.data) as TaskData).task.id === a.body.id);
    first.close();
    // While no stream is open, a task is submitted and runs.
    const b = await srv.call('POST', '/api/v1/tasks', { type: 'health_check' });
    await waitFor(async () => ((await srv.call('GET', `/api/v1/tasks/${String(b.body.id)}`)).body.status === 'completed' ? true : undefined));
    const again = await openEventStream(url('?kinds=task'), { 'last-event-id': seen.id });
    try {
      const missed = await again.next((e) => e.event === 'task.completed' && (JSON.parse(e.data) as TaskData).task.id === b.body.id);
      expect(again.events.some((e) => e.event === 'task.submitted' && (JSON.parse(e.data) as TaskData).task.id === b.body.id)).toBe(true);
      // Nothing at or before the id it resumed from comes again.
      expect(again.events.map((e) => e.id)).not.toContain(seen.id);
      expect(again.events.filter((e) => e.id === missed.id)).toHaveLength(1);
    } finally {
      again.close();
    }
    // A stream begins with the last id (no event): a client that saw no event at all still resumes from its start.
    const quiet = await openEventStream(url('?kinds=deployment'));
    await waitFor(() => Promise.resolve(/^id: \S+$/m.test(quiet.text()) ? true : undefined), 3000);
    const startId = (/^id: (\S+)$/m.exec(quiet.text()) as RegExpExecArray)[1] as string;
    expect(quiet.events).toEqual([]);
    quiet.close();
    expect((await srv.call('POST', '/start_deployment', { deployment_id: 'stream-seed-2' })).status).toBe(200);
    const back = await openEventStream(url('?kinds=deployment'), { 'last-event-id': startId });
    try {
      const replayed = await back.next((e) => e.event === 'deployment.started');
      expect(JSON.parse(replayed.data)).toMatchObject({ deploymentId: 'stream-seed-2' });
    } finally {
      back.close();
    }
    // An id this server never gave (another process, or one long dropped): a reset, so the client reloads.
    const stale = await openEventStream(url(), { 'last-event-id': 'zzzzzz-12' });
    try {
      const first = await stale.next(() => true);
      expect(first.event).toBe('reset');
      expect(JSON.parse(first.data)).toEqual({ reason: expect.any(String) as unknown });
    } finally {
      stale.close();
    }
  });

  it('ends every open stream when the server closes, without waiting for its clients', async () => {
    const streams = await Promise.all([openEventStream(url()), openEventStream(url('?kinds=task'))]);
    const t0 = Date.now();
    await srv.restart();
    await Promise.all(streams.map((s) => s.ended));
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});
