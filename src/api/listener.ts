import http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { StreamScheduler } from './stream-scheduler.js';

/** How every HTTP/2 connection begins (RFC 9113 §3.4). No HTTP/1 request line starts this way. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export interface ListenerOptions {
  keepAliveTimeout: number;
  /** How long an HTTP/1 client may take to send a request's headers (its body has its own timer: body-timeout.ts). */
  headersTimeout: number;
  connectionTimeout: number;
  /** Streams one HTTP/2 connection may have open at once. */
  http2MaxStreams: number;
  /** An HTTP/2 connection without streams for this long is closed. */
  http2SessionTimeout: number;
  /** Routes served on raw HTTP/2 streams before Fastify sees them: `handle` returns false for the rest. */
  streamRoutes?: { handle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean };
  /** Certificate and key (PEM): HTTPS instead, HTTP/1.1 and HTTP/2 chosen by ALPN. */
  tls?: { cert: Buffer; key: Buffer };
}

/**
 * New streams go through the scheduler (stream-scheduler.ts): the stream routes take theirs at once, the
 * others start in turn in node's compatibility layer (and so in Fastify).
 */
function scheduleStreams(h2: http2.Http2Server | http2.Http2SecureServer, streamRoutes: ListenerOptions['streamRoutes'], maxStreams: number): void {
  // node:http2 turns each stream into a compatibility request and response in a 'stream' listener of its own.
  const [compat] = h2.listeners('stream') as ((...args: unknown[]) => void)[];
  if (compat === undefined) throw new Error('node:http2 server without its compatibility stream listener');
  h2.removeListener('stream', compat);
  const scheduler = new StreamScheduler(
    (...args) => compat.apply(h2, args),
    maxStreams,
    streamRoutes === undefined ? undefined : (stream, headers) => streamRoutes.handle(stream, headers),
  );
  h2.on('stream', scheduler.accept);
}

/** Tracks a server's HTTP/2 sessions, closes idle ones, and closes them all on demand. */
function trackSessions(h2: http2.Http2Server | http2.Http2SecureServer, idleMs: number): () => void {
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
    session.setTimeout(idleMs, () => session.close());
  });
  return () => {
    for (const session of sessions) session.close();
    // A client that never ends its streams does not hold the server open for more than a few seconds.
    if (sessions.size > 0) setTimeout(() => sessions.forEach((session) => session.destroy()), 5000).unref();
  };
}

/**
 * HTTPS on one port: HTTP/1.1 and HTTP/2, chosen by ALPN in the TLS
 * handshake. Returned as Fastify's `serverFactory`, as the plain one is.
 */
function secureServer(handler: Handler, options: ListenerOptions & { tls: { cert: Buffer; key: Buffer } }): http.Server {
  const h2 = http2.createSecureServer({ cert: options.tls.cert, key: options.tls.key, allowHTTP1: true, settings: { maxConcurrentStreams: options.http2MaxStreams } }, handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  scheduleStreams(h2, options.streamRoutes, options.http2MaxStreams);
  const closeSessions = trackSessions(h2, options.http2SessionTimeout);
  h2.setTimeout(options.keepAliveTimeout);
  // HTTP/1.1 connections (ALPN http/1.1) are node:http's, inside the HTTP/2 server: on close, the idle ones are
  // ended now and the rest once their answer is out (at most a few seconds later), so that closing does not wait
  // for keep-alive clients to leave.
  const http1 = new Set<TLSSocket>();
  h2.on('secureConnection', (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') return;
    http1.add(socket);
    socket.once('close', () => http1.delete(socket));
  });
  const closeHttp1 = (): void => {
    for (const socket of http1) {
      if ((socket as TLSSocket & { _httpMessage?: unknown })._httpMessage == null) socket.destroy();
    }
    if (http1.size > 0) setTimeout(() => http1.forEach((socket) => socket.destroy()), 5000).unref();
  };
  return Object.assign(h2 as unknown as http.Server, {
    closeHttp2Sessions(): void {
      closeSessions();
      closeHttp1();
    },
  });
}

/** Fastify's request handler; it takes HTTP/2's compatibility request and response as well (it checks `httpVersionMajor`). */
type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/**
 * One port, two protocols: HTTP/1.1 for curl, browsers and the prototype's
 * clients, and HTTP/2 in clear text ("prior knowledge", h2c) for whatever
 * carries many agents at once: a reverse proxy in front of the orchestrator,
 * or the load tool, whose thousands of long-polls then share a few
 * connections. Each new connection's first bytes say which it speaks; the
 * connection is then handed to that protocol's server, bytes included.
 *
 * Returned as Fastify's `serverFactory`: the HTTP/1 server listens, and
 * `closeHttp2Sessions` (which Fastify calls on close) ends the HTTP/2 ones.
 */
export function dualProtocolServer(handler: Handler, options: ListenerOptions): http.Server {
  if (options.tls !== undefined) return secureServer(handler, { ...options, tls: options.tls });
  // Headers that take longer than headersTimeout get node's bare 408 (there is no request yet to answer in JSON);
  // it is checked every connectionsCheckingInterval. The body's own timer is the app's (body-timeout.ts).
  const h1 = http.createServer({ headersTimeout: options.headersTimeout, requestTimeout: 0, connectionsCheckingInterval: Math.min(5000, Math.max(250, options.headersTimeout / 4)) }, handler);
  h1.keepAliveTimeout = options.keepAliveTimeout;
  h1.setTimeout(options.connectionTimeout);
  const h2 = http2.createServer({ settings: { maxConcurrentStreams: options.http2MaxStreams } }, handler as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void);
  scheduleStreams(h2, options.streamRoutes, options.http2MaxStreams);
  const closeSessions = trackSessions(h2, options.http2SessionTimeout);

  const [http1Connection] = h1.listeners('connection') as ((socket: Socket) => void)[];
  if (http1Connection === undefined) throw new Error('node:http server without its connection listener');
  h1.removeListener('connection', http1Connection);
  // Connections that have not said yet which protocol they speak: neither server knows them, so closing ends them here.
  const sniffing = new Set<Socket>();
  h1.on('connection', (socket: Socket) => {
    sniffing.add(socket);
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, H2_PREFACE.length);
      const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (isH2 && head.length < H2_PREFACE.length) return; // a part of the preface: wait for the rest
      sniffing.delete(socket);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.removeListener('end', onError);
      socket.removeListener('timeout', onError);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(head);
      if (isH2) {
        h2.emit('connection', socket);
      } else {
        http1Connection.call(h1, socket);
        socket.resume();
      }
    };
    const onError = (): void => {
      sniffing.delete(socket);
      socket.destroy();
    };
    socket.on('data', onData);
    socket.on('error', onError);
    // A client that ends its side before saying anything is gone (the server allows half-open sockets).
    socket.on('end', onError);
    // Until the first bytes arrive neither server's timeouts apply: a connection that says nothing is closed here.
    socket.setTimeout(options.keepAliveTimeout);
    socket.on('timeout', onError);
  });

  return Object.assign(h1, {
    closeHttp2Sessions(): void {
      closeSessions();
      for (const socket of sniffing) socket.destroy();
      sniffing.clear();
    },
  });
}
