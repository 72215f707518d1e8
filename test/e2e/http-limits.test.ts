import http2 from 'node:http2';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { Received } from '../support/h2-frames.js';
import { ERROR, FRAME, headers, rawConnection, requestBlock, rstStream } from '../support/h2-frames.js';
import { H2Client } from '../support/h2-client.js';
import { serverPerFile } from '../support/in-process.js';

const TOKEN = 'test-enroll-token-0123456789';
const MAX_STREAMS = 8;
const srv = serverPerFile({ DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, REQUEST_TIMEOUT: '1s', HTTP2_MAX_STREAMS: String(MAX_STREAMS) });
const metrics = { battery: 70, charging: false, cpu: 12.5, memory: 40, disk: 55 };
const TASK = JSON.stringify({ type: 'health_check', params: {} });

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const port = (): number => Number(new URL(srv.base()).port);

/** A raw HTTP/1.1 connection: what it was sent, and when the server closed it. */
function http1(): { socket: Socket; text: () => string; closed: Promise<number> } {
  const socket = connect(port(), '127.0.0.1');
  let text = '';
  socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
  socket.on('error', () => undefined);
  const opened = Date.now();
  const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now() - opened)));
  return { socket, text: () => text, closed };
}

function jsonBodyOf(response: string): unknown {
  return JSON.parse(response.slice(response.indexOf('\r\n\r\n') + 4));
}

async function enroll(h2: H2Client, hostname: string): Promise<string> {
  const r = await h2.request('POST', '/api/v1/agent/enroll', { body: { token: TOKEN, hostname, capabilities: ['health_check'], metrics } });
  expect(r.status).toBe(200);
  return `Bearer ${String(r.body.agentId)}:${String(r.body.credential)}`;
}

/** An HTTP/2 request whose body is sent in part and never finished: its status, body, and whether the server closed the stream. */
function halfBody(session: http2.ClientHttp2Session, path: string, part: string, auth?: string): Promise<{ status: number; body: Record<string, unknown>; closedMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/json', ...(auth === undefined ? {} : { authorization: auth }) });
    let status = 0;
    let text = '';
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (d: Buffer) => (text += d.toString()));
    stream.on('error', () => undefined);
    // Closed by the server: we never end our side.
    stream.on('close', () => {
      try {
        resolve({ status, body: JSON.parse(text) as Record<string, unknown>, closedMs: Date.now() - started });
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
    stream.write(part);
  });
}

describe('request and body timeouts (REQUEST_TIMEOUT=1s)', () => {
  it('HTTP/1.1: a body that stops half way is answered 408 ORCH_REQUEST_TIMEOUT after the timeout, and the connection closed', async () => {
    const c = http1();
    c.socket.write(`POST /api/v1/tasks HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${TASK.length}\r\n\r\n${TASK.slice(0, 10)}`);
    const closedMs = await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 408 /);
    expect(jsonBodyOf(c.text())).toEqual({ error: 'the request body did not arrive within 1 s (REQUEST_TIMEOUT)', code: 'ORCH_REQUEST_TIMEOUT' });
    expect(closedMs).toBeGreaterThanOrEqual(950);
    expect(closedMs).toBeLessThan(5000);
    // Nothing of it was taken.
    expect((await srv.call('GET', '/api/v1/tasks')).body.tasks).toEqual([]);
  });

  it('HTTP/1.1: a body that arrives in parts within the timeout is taken', async () => {
    const c = http1();
    c.socket.write(`POST /api/v1/tasks HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${TASK.length}\r\nConnection: close\r\n\r\n${TASK.slice(0, 10)}`);
    await sleep(400);
    c.socket.write(TASK.slice(10, 20));
    await sleep(400);
    c.socket.write(TASK.slice(20));
    await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 201 /);
  });

  it('HTTP/1.1: headers that never end get a 408 and the connection closed', async () => {
    const c = http1();
    c.socket.write('POST /api/v1/tasks HTTP/1.1\r\nHost: a\r\n');
    const closedMs = await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 408 /);
    expect(closedMs).toBeLessThan(5000);
  });

  it('HTTP/2: a body that stops half way is answered 408 with the code, on the API and on the agent routes, and the stream is closed', async () => {
    const h2 = new H2Client(srv.base());
    const auth = await enroll(h2, 'slow-body');
    const session = http2.connect(srv.base());
    session.on('error', () => undefined);
    try {
      const [task, beat] = await Promise.all([halfBody(session, '/api/v1/tasks', TASK.slice(0, 10)), halfBody(session, '/api/v1/agent/heartbeat', '{"seq":1,', auth)]);
      for (const r of [task, beat]) {
        expect(r).toMatchObject({ status: 408, body: { code: 'ORCH_REQUEST_TIMEOUT' } });
        expect(r.closedMs).toBeGreaterThanOrEqual(950);
        expect(r.closedMs).toBeLessThan(5000);
      }
      // The connection itself goes on.
      expect((await h2.request('GET', '/healthz')).status).toBe(200);
      expect(session.closed).toBe(false);
    } finally {
      session.destroy();
      await h2.close();
    }
  });
});

describe('HTTP/2 streams per connection', () => {
  it(`the server advertises HTTP2_MAX_STREAMS (${MAX_STREAMS}); a client that opens more at once has the excess refused`, async () => {
    const url = new URL(srv.base());
    const frames: Received[] = [];
    const settings: number[] = [];
    const socket = rawConnection(url, (f) => {
      frames.push(f);
      if (f.type === FRAME.SETTINGS && f.payload.length > 0) {
        for (let i = 0; i + 6 <= f.payload.length; i += 6) if (f.payload.readUInt16BE(i) === 0x3) settings.push(f.payload.readUInt32BE(i + 2));
      }
    });
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    // 20 POSTs whose bodies never come: each holds its stream open.
    const block = requestBlock('POST', '/api/v1/tasks', url.host);
    socket.write(Buffer.concat(Array.from({ length: 20 }, (_, i) => headers(1 + 2 * i, block, false))));
    await sleep(300);
    const refused = frames.filter((f) => f.type === FRAME.RST_STREAM && f.payload.readUInt32BE(0) === ERROR.REFUSED_STREAM).map((f) => f.stream);
    expect(settings).toEqual([MAX_STREAMS]);
    expect(refused).toHaveLength(20 - MAX_STREAMS);
    // The refused are the last ones opened.
    expect(Math.min(...refused)).toBe(1 + 2 * MAX_STREAMS);
    socket.destroy();
  });

  it('a connection that carries many more requests than its stream cap, one after another, is served to the end (agent routes and the rest)', async () => {
    const h2 = new H2Client(srv.base());
    try {
      const auth = await enroll(h2, 'steady');
      const answers: number[] = [];
      for (let seq = 1; seq <= 5 * MAX_STREAMS; seq++) {
        answers.push((await h2.request('POST', '/api/v1/agent/heartbeat', { body: { seq, metrics, running: [] }, headers: { authorization: auth } })).status);
        answers.push((await h2.request('GET', '/cluster_status')).status);
      }
      // In bursts too, each up to the cap.
      for (let burst = 0; burst < 5; burst++) {
        const statuses = await Promise.all(Array.from({ length: MAX_STREAMS }, (_, i) => (i % 2 === 0 ? h2.request('GET', '/cluster_status') : h2.request('POST', '/api/v1/agent/heartbeat', { body: { seq: 100 + burst * MAX_STREAMS + i, metrics, running: [] }, headers: { authorization: auth } }))));
        answers.push(...statuses.map((r) => r.status));
      }
      expect(answers).toEqual(answers.map(() => 200));
      expect(h2.closed).toBe(false);
    } finally {
      await h2.close();
    }
  });

  it('a client that resets streams as fast as it opens them (rapid reset) is disconnected with ENHANCE_YOUR_CALM; the server answers others meanwhile', async () => {
    const url = new URL(srv.base());
    const block = requestBlock('GET', '/cluster_status', url.host);
    const goaways: number[] = [];
    const socket = rawConnection(url, (f) => {
      if (f.type === FRAME.GOAWAY) goaways.push(f.payload.readUInt32BE(4));
    });
    socket.on('error', () => undefined);
    const closed = new Promise((resolve) => socket.on('close', resolve));
    await new Promise((resolve) => socket.once('connect', resolve));
    let id = 1;
    let sent = 0;
    const flood = (async () => {
      while (!socket.destroyed && sent < 200_000) {
        const batch: Buffer[] = [];
        for (let k = 0; k < 200; k++, id += 2, sent++) batch.push(headers(id, block, true), rstStream(id, ERROR.CANCEL));
        if (!socket.write(Buffer.concat(batch))) await new Promise((resolve) => socket.once('drain', resolve).once('close', resolve));
        // The server is in this process: it reads between the batches.
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const during = await srv.call('GET', '/healthz');
    await closed;
    await flood;
    expect(during.status).toBe(200);
    expect(goaways[0]).toBe(ERROR.ENHANCE_YOUR_CALM);
    expect(sent).toBeLessThan(200_000);
  });

  it('a client that cancels some of its requests, as clients do, is not disconnected', async () => {
    const url = new URL(srv.base());
    const block = requestBlock('GET', '/cluster_status', url.host);
    const answered = new Set<number>();
    let goaway = false;
    const socket = rawConnection(url, (f) => {
      if (f.type === FRAME.GOAWAY) goaway = true;
      if (f.type === FRAME.HEADERS) answered.add(f.stream);
    });
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    // 50 requests cancelled at once, in bursts of 5 (the stream cap holds 8).
    for (let i = 0; i < 10; i++) {
      socket.write(Buffer.concat(Array.from({ length: 5 }, (_, k) => [headers(1 + 2 * (5 * i + k), block, true), rstStream(1 + 2 * (5 * i + k), ERROR.CANCEL)]).flat()));
      await sleep(20);
    }
    socket.write(headers(1001, block, true));
    await sleep(300);
    expect(goaway).toBe(false);
    expect(answered.has(1001)).toBe(true);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
  });
});

describe('closing', () => {
  it('a connection that ends its side before saying anything is closed by the server', async () => {
    const c = http1();
    await new Promise((resolve) => c.socket.once('connect', resolve));
    c.socket.end();
    expect(await c.closed).toBeLessThan(2000);
    expect(c.text()).toBe('');
  });

  it('a connection that has not said anything yet does not hold closing back', async () => {
    const c = http1();
    await new Promise((resolve) => c.socket.once('connect', resolve));
    await sleep(50);
    const started = Date.now();
    await srv.restart();
    expect(Date.now() - started).toBeLessThan(5000);
    await c.closed;
  });

  it('a request that arrives on an open connection after closing began is refused 503 ORCH_SHUTTING_DOWN in JSON', async () => {
    const c = http1();
    const first = `POST /api/v1/tasks HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: ${TASK.length}\r\n\r\n`;
    // The first request is under way (its body not yet sent) when closing begins, so its connection stays open.
    c.socket.write(first + TASK.slice(0, 5));
    await sleep(100);
    const closing = srv.server().close();
    await sleep(100);
    // Its body, and a second request on the same connection.
    c.socket.write(`${TASK.slice(5)}GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n`);
    await c.closed;
    await closing;
    const responses = c.text().split(/(?=HTTP\/1\.1 )/);
    expect(responses).toHaveLength(2);
    const second = responses[1] as string;
    expect(second).toMatch(/^HTTP\/1\.1 503 /);
    expect(jsonBodyOf(second)).toEqual({ error: 'the orchestrator is stopping', code: 'ORCH_SHUTTING_DOWN' });
    await srv.restart();
    expect((await srv.call('GET', '/healthz')).status).toBe(200);
  });
});
