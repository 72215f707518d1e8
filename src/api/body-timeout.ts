import http2 from 'node:http2';
import type { IncomingMessage } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OrchestratorError } from '../domain/errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The timer that ends the wait for this request's body (body-timeout.ts); null once the body is in. */
    bodyTimer: NodeJS.Timeout | null;
  }
}

/** The error a request gets whose body did not arrive in time. */
export function bodyTimeoutError(ms: number): OrchestratorError {
  return new OrchestratorError('ORCH_REQUEST_TIMEOUT', `the request body did not arrive within ${ms / 1000} s (REQUEST_TIMEOUT)`);
}

/** Whether a body follows the headers: HTTP/1 says so by its headers, HTTP/2 by a HEADERS frame that did not end the stream. */
function expectsBody(raw: IncomingMessage): boolean {
  if (raw.httpVersionMajor === 2) return (raw as unknown as http2.Http2ServerRequest).stream.endAfterHeaders !== true;
  return raw.headers['transfer-encoding'] !== undefined || Number(raw.headers['content-length']) > 0;
}

/**
 * A request's body must be in within `ms` of its headers: a client that
 * sends it slowly, or stops half way, gets 408 `ORCH_REQUEST_TIMEOUT`, and
 * its connection (HTTP/1, which cannot go on mid-body) or stream (HTTP/2) is
 * closed. The timer runs from the end of the headers to the end of the body
 * (preParsing to preValidation): a handler that takes long is not timed, a
 * parked long-poll has no body. HTTP/1 headers have node's headersTimeout.
 */
export function installBodyTimeout(app: FastifyInstance, ms: number): void {
  app.decorateRequest('bodyTimer', null);
  app.addHook('preParsing', (request, reply, payload, done) => {
    if (expectsBody(request.raw)) request.bodyTimer = setTimeout(() => timedOut(request, reply, payload, ms), ms);
    done(null, payload);
  });
  // The body is in. (A request that never gets here, refused or aborted while its body was read, keeps its
  // timer until it fires, and then finds its answer sent: a hook on every request to spare that costs more.)
  app.addHook('preValidation', (request, _reply, done) => {
    if (request.bodyTimer !== null) {
      clearTimeout(request.bodyTimer);
      request.bodyTimer = null;
    }
    done();
  });
}

function timedOut(request: FastifyRequest, reply: FastifyReply, payload: NodeJS.ReadableStream, ms: number): void {
  request.bodyTimer = null;
  const raw = request.raw;
  if (reply.sent || raw.destroyed) return;
  // Fastify is reading the body: its reader takes the error and answers it (the error handler: 408 with our
  // code) and, on HTTP/1, closes the connection after the answer.
  if (payload.listenerCount('error') > 0) payload.emit('error', bodyTimeoutError(ms));
  else raw.destroy();
  if (raw.httpVersionMajor === 2) closeAfterAnswer((raw as unknown as http2.Http2ServerRequest).stream, reply);
}

/**
 * Once the answer has ended the server's side of the stream, closing the stream (RST_STREAM NO_ERROR, sent
 * after the answer) ends the client's side, so that it stops sending. The answer may wait for a commit (the
 * audit log), so this looks every 10 ms, for at most 5 s.
 */
function closeAfterAnswer(stream: http2.ServerHttp2Stream, reply: FastifyReply): void {
  let looks = 0;
  const timer = setInterval(() => {
    if (stream.closed || reply.raw.writableEnded || ++looks >= 500) {
      clearInterval(timer);
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
    }
  }, 10);
}
