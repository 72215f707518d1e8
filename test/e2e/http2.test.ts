import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { H2Client } from '../support/h2-client.js';
import { serverPerFile } from '../support/in-process.js';

const TOKEN = 'test-enroll-token-0123456789';
const srv = serverPerFile({ HEARTBEAT_INTERVAL: '1s', AGENT_TIMEOUT: '5s', DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN });
const metrics = { battery: 70, charging: false, cpu: 12.5, memory: 40, disk: 55 };

describe('clear-text HTTP/2 on the API port, beside HTTP/1.1', () => {
  it('serves the prototype endpoints and the agent protocol over one HTTP/2 connection, and HTTP/1.1 on the same port', async () => {
    const h2 = new H2Client(srv.base());
    try {
      const status = await h2.request('GET', '/cluster_status');
      expect(status.status).toBe(200);
      expect(status.body).toHaveProperty('total_slaves', 0);
      const h1 = await srv.call('GET', '/cluster_status');
      expect(h1.body).toEqual(status.body);

      // Many agents on the same connection: each enrolls, long-polls and beats at once, as streams of it.
      const agents = await Promise.all(
        Array.from({ length: 20 }, async (_, i) => {
          const r = await h2.request('POST', '/api/v1/agent/enroll', { body: { token: TOKEN, hostname: `h2-${i}`, capabilities: ['health_check'], metrics } });
          expect(r.status).toBe(200);
          return { id: r.body.agentId as string, auth: `Bearer ${String(r.body.agentId)}:${String(r.body.credential)}` };
        }),
      );
      // Drain what enrollment queued (ring assignments), then park every agent's long-poll on the one connection.
      const acks = await Promise.all(agents.map(async (a) => ((await h2.request('GET', '/api/v1/agent/commands?waitMs=0', { headers: { authorization: a.auth } })).body.commands as { id: number }[]).at(-1)?.id ?? 0));
      const polls = agents.map((a, i) => h2.request('GET', `/api/v1/agent/commands?waitMs=3000&ack=${acks[i] ?? 0}`, { headers: { authorization: a.auth } }));
      const beats = await Promise.all(agents.map((a) => h2.request('POST', '/api/v1/agent/heartbeat', { body: { seq: 1, metrics, running: [] }, headers: { authorization: a.auth } })));
      expect(beats.map((b) => b.status)).toEqual(agents.map(() => 200));
      // A task for one agent reaches its parked poll on the shared connection.
      const target = agents[7] as { id: string; auth: string };
      const submitted = Date.now();
      const task = await h2.request('POST', '/api/v1/tasks', { body: { type: 'health_check', target: { agentId: target.id } } });
      expect(task.status).toBe(201);
      const commands = (await polls[7])?.body.commands as { type: string; taskId: string }[];
      expect(Date.now() - submitted).toBeLessThan(1000);
      expect(commands).toEqual([expect.objectContaining({ type: 'task_assignment', taskId: task.body.id })]);

      // Errors are the same JSON over HTTP/2, including the ones that close an HTTP/1 connection.
      const bad = await h2.request('POST', '/api/v1/agent/heartbeat', { rawBody: '{"seq":', headers: { authorization: target.auth } });
      expect(bad).toMatchObject({ status: 400, body: { code: 'ORCH_INVALID_JSON' } });
      expect((await h2.request('POST', '/api/v1/agent/heartbeat', { body: { seq: 2, metrics, running: [] } })).status).toBe(401);
      expect((await h2.request('GET', '/cluster_status')).status).toBe(200);
    } finally {
      await h2.close();
    }
  });

  it('a connection that sends only part of the HTTP/2 preface, or HTTP/1 bytes that look like it, is not mistaken for the other', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(srv.base()).port), '127.0.0.1');
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
      // "PRI" then not the preface: an HTTP/1 request with an unknown method, answered by HTTP/1.
      socket.write('PR');
      setTimeout(() => socket.write('I /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'), 50);
    });
    expect(reply.startsWith('HTTP/1.1 4')).toBe(true);
  });

  it('closing the server answers long-polls parked on HTTP/2 at once', async () => {
    const h2 = new H2Client(srv.base());
    const r = await h2.request('POST', '/api/v1/agent/enroll', { body: { token: TOKEN, hostname: 'closing', capabilities: ['health_check'], metrics } });
    const auth = `Bearer ${String(r.body.agentId)}:${String(r.body.credential)}`;
    const first = (await h2.request('GET', '/api/v1/agent/commands?waitMs=0', { headers: { authorization: auth } })).body.commands as { id: number }[];
    const parked = h2.request('GET', `/api/v1/agent/commands?waitMs=30000&ack=${first.at(-1)?.id ?? 0}`, { headers: { authorization: auth } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await srv.restart();
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await parked).toMatchObject({ status: 200, body: { commands: [] } });
    await h2.close();
    // After the restart the same agent goes on over a new connection.
    const again = new H2Client(srv.base());
    expect((await again.request('POST', '/api/v1/agent/heartbeat', { body: { seq: 1, metrics, running: [] }, headers: { authorization: auth } })).status).toBe(200);
    await again.close();
  });
  it('the agent routes served on raw HTTP/2 streams answer every request exactly as Fastify answers it over HTTP/1.1', async () => {
    const h2 = new H2Client(srv.base());
    try {
      const r = await h2.request('POST', '/api/v1/agent/enroll', { body: { token: TOKEN, hostname: 'parity', capabilities: ['health_check'], metrics } });
      const auth = `Bearer ${String(r.body.agentId)}:${String(r.body.credential)}`;
      const beat = { seq: 3, metrics, running: [] };
      const cases: { method: string; path: string; body?: string; auth?: string }[] = [
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: JSON.stringify(beat), auth },
        { method: 'POST', path: '/api/v1/agent/heartbeat?x=1', body: JSON.stringify(beat), auth },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: JSON.stringify(beat) },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: JSON.stringify(beat), auth: 'Bearer nobody:0123456789abcdefghijkl' },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: '{"seq":', auth },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: '', auth },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: '[]', auth },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: JSON.stringify({ seq: 1, running: [] }), auth },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: JSON.stringify({ ...beat, ring: 'ring_0' }), auth },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: JSON.stringify({ ...beat, metrics: { ...metrics, cpu: '5' } }), auth },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: JSON.stringify({ ...beat, seq: -1 }), auth },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: '{"seq":1,"metrics":{"__proto__":{"x":1}},"running":[]}', auth },
        { method: 'POST', path: '/api/v1/agent/heartbeat', body: JSON.stringify({ ...beat, pad: 'x'.repeat(1024 * 1024) }), auth },
        { method: 'GET', path: '/api/v1/agent/heartbeat', auth },
        { method: 'GET', path: '/api/v1/agent/commands?waitMs=0', auth },
        { method: 'GET', path: '/api/v1/agent/commands?waitMs=0&ack=0', auth },
        { method: 'GET', path: '/api/v1/agent/commands?waitMs=0' },
        { method: 'GET', path: '/api/v1/agent/commands?waitMs=abc', auth },
        { method: 'GET', path: '/api/v1/agent/commands?waitMs=0&waitMs=1', auth },
        { method: 'GET', path: '/api/v1/agent/commands?waitMs=0&other=1', auth },
        { method: 'POST', path: '/api/v1/agent/commands', body: '{}', auth },
        { method: 'POST', path: '/api/v1/agent/results', body: JSON.stringify({ results: [{ taskId: 'no-such-task', attempt: 1, success: true }] }), auth },
        { method: 'POST', path: '/api/v1/agent/results', body: JSON.stringify({ results: [] }), auth },
        { method: 'POST', path: '/api/v1/agent/results', body: JSON.stringify({ results: [{ taskId: 'x', attempt: 0, success: true }] }), auth },
        { method: 'POST', path: '/api/v1/agent/results', body: JSON.stringify({ results: [{ taskId: 'x', attempt: 1 }] }), auth },
        { method: 'POST', path: '/api/v1/agent/results', body: JSON.stringify({ results: [{ taskId: 'x', attempt: 1, success: true }] }) },
        { method: 'POST', path: '/api/v1/agent/heartbeat/', body: JSON.stringify(beat), auth },
      ];
      for (const c of cases) {
        const headers: Record<string, string> = { 'content-type': 'application/json', ...(c.auth === undefined ? {} : { authorization: c.auth }) };
        const res = await fetch(`${srv.base()}${c.path}`, { method: c.method, headers, ...(c.body === undefined ? {} : { body: c.body }) });
        const viaH1 = { status: res.status, body: (await res.json()) };
        const viaH2 = await h2.request(c.method, c.path, { ...(c.body === undefined ? {} : { rawBody: c.body }), headers });
        expect({ case: `${c.method} ${c.path} ${c.body?.slice(0, 60) ?? ''}`, status: viaH2.status, body: viaH2.body }).toEqual({ case: `${c.method} ${c.path} ${c.body?.slice(0, 60) ?? ''}`, ...viaH1 });
        expect(viaH2.headers['content-type']).toBe('application/json; charset=utf-8');
      }
      // Both answered: a heartbeat is 200 and a bad one a 4xx with our code (not two identical 500s).
      expect((await h2.request('POST', '/api/v1/agent/heartbeat', { body: beat, headers: { authorization: auth } })).body).toEqual({ ok: true, seq: 3 });
      expect((await h2.request('POST', '/api/v1/agent/heartbeat', { rawBody: '[]', headers: { authorization: auth } })).body).toEqual({ error: 'body must be object', code: 'ORCH_VALIDATION' });
    } finally {
      await h2.close();
    }
  });
});
