import { randomBytes } from 'node:crypto';
import { createServer, request } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FORWARDED_HEADER, LeaderForwarder, requestClient } from '../../src/api/forwarder.js';

/*
 * The forwarder against a real HTTP/2 server on loopback (the leader's part played by a small server that
 * holds every request until told): it carries more requests at once than one connection may, by opening more.
 */

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

describe('the forwarder to the leader', () => {
  it("opens more connections when every one carries as many requests as the leader allows (HTTP2_MAX_STREAMS), so that long-polls never crowd out other requests", async () => {
    const key = randomBytes(32);
    // The leader: at most 4 streams per connection; it holds each request until `release`.
    const held: http2.ServerHttp2Stream[] = [];
    const sessions = new Set<http2.ServerHttp2Session>();
    const leader = http2.createServer({ settings: { maxConcurrentStreams: 4 } });
    leader.on('session', (s) => sessions.add(s));
    leader.on('stream', (stream, headers) => {
      if (headers[':path'] === '/hold') held.push(stream);
      else {
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ client: requestClient(headers[FORWARDED_HEADER], '', key) }));
      }
    });
    await new Promise<void>((resolve) => leader.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => {
      for (const s of sessions) s.destroy();
      leader.close(() => resolve());
    }));
    const leaderUrl = `http://127.0.0.1:${(leader.address() as AddressInfo).port}`;
    const forwarder = new LeaderForwarder({ replicaId: 'follower-1', key, local: false, tls: false });
    closers.push(() => Promise.resolve(forwarder.close()));
    // The follower's side: a plain HTTP/1.1 server whose every request is forwarded.
    const follower = createServer((req: IncomingMessage, res: ServerResponse) => void forwarder.forward(leaderUrl, req, res, req.socket.remoteAddress ?? '').catch(() => res.writeHead(503).end()));
    await new Promise<void>((resolve) => follower.listen(0, '127.0.0.1', resolve));
    closers.push(() => new Promise((resolve) => {
      follower.closeAllConnections();
      follower.close(() => resolve());
    }));
    const followerPort = (follower.address() as AddressInfo).port;
    const get = (path: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: followerPort, path, agent: false }, (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });

    // Ten requests held at once: more than two connections of four may carry.
    const holding = Array.from({ length: 10 }, () => get('/hold'));
    await expect.poll(() => held.length, { timeout: 5000 }).toBe(10);
    expect(forwarder.open).toBeGreaterThanOrEqual(3);
    // With every one of them held, another request still goes through at once, with the client signed for.
    const other = await get('/quick');
    expect(other.status).toBe(200);
    expect(JSON.parse(other.body)).toEqual({ client: { address: '127.0.0.1', remote: true } });
    for (const s of held) {
      s.respond({ ':status': 204 });
      s.end();
    }
    expect((await Promise.all(holding)).map((r) => r.status)).toEqual(Array.from({ length: 10 }, () => 204));
  });
});
