import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { OrchestratorError } from '../domain/errors.js';
import { errorHandler, orchestratorErrorReply } from './errors.js';
import { dualProtocolServer } from './listener.js';
import type { LeaderForwarder } from './forwarder.js';
import { FORWARDED_HEADER } from './forwarder.js';
import type { ReplicaStatus } from './replica.js';


/** The follower's own listener (a replica's port): HTTP/1.1 and HTTP/2, with TLS when given. */
export interface FollowerListenerOptions {
  listener?: true;
  tls?: { cert: Buffer; key: Buffer };
  requestTimeoutMs: number;
  http2MaxStreams: number;
}

export type FollowerAppOptions = {
  logger: FastifyBaseLogger;
  replica: () => ReplicaStatus;
  /** Sends what this replica does not answer itself to the leader. */
  forwarder: Pick<LeaderForwarder, 'forward'>;
} & (FollowerListenerOptions | { /** No listener of its own: driven by `app.inject` alone (the Lambda function, lambda.ts). */ listener: false });

/** What a follower answers itself; everything else goes to the leader. */
const OWN = new Set(['/healthz', '/readyz']);

/**
 * What a replica that does not lead serves: `/healthz` (alive) and `/readyz` (its role and the leader) itself,
 * and everything else forwarded to the leader with the caller's credentials (forwarder.ts). While no leader is
 * known, or it cannot be reached, the answer is 503 ORCH_NOT_LEADER with `retry-after`, never a 5xx of
 * another kind.
 */
export async function buildFollowerApp(options: FollowerAppOptions): Promise<FastifyInstance> {
  const { logger, replica, forwarder } = options;
  const listener = options.listener === false ? null : options;
  const common = {
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: false,
    // Closed when this replica begins to lead: requests still being forwarded (event streams, long-polls) end,
    // and their clients come back to the new leader.
    forceCloseConnections: true,
  };
  const app: FastifyInstance =
    listener === null
      ? Fastify(common)
      : Fastify({
          ...common,
          serverFactory: (handler) =>
            dualProtocolServer(handler, { keepAliveTimeout: 72_000, headersTimeout: listener.requestTimeoutMs, connectionTimeout: 0, http2SessionTimeout: 72_000, http2MaxStreams: listener.http2MaxStreams, ...(listener.tls !== undefined ? { tls: listener.tls } : {}) }),
        });
  app.removeAllContentTypeParsers();
  // Bodies are not read: nothing here acts on them.
  app.addContentTypeParser('*', (_request, payload, done) => {
    payload.resume();
    done(null, undefined);
  });
  app.setErrorHandler(errorHandler(logger));
  const notLeader = (why?: string): OrchestratorError => {
    const r = replica();
    return new OrchestratorError(
      'ORCH_NOT_LEADER',
      why ?? (r.leader === null ? 'no replica leads now (one takes over within the lease); retry shortly' : `this replica does not lead, and does not forward a request another replica forwarded; the leader is ${r.leader}`),
      { retryAfterSeconds: 1, replica: r },
    );
  };
  app.addHook('onRequest', async (request, reply) => {
    if (OWN.has(request.url.split('?')[0] ?? '')) return;
    const { leader, role } = replica();
    // Elected, loading the state: the leader is this replica, not serving yet.
    if (role === 'leader') throw notLeader('this replica is beginning to lead (loading the state); retry shortly');
    // A request another replica forwarded is not sent on again: the two would forward it in a circle.
    if (leader === null || request.headers[FORWARDED_HEADER] !== undefined) throw notLeader();
    reply.hijack();
    try {
      await forwarder.forward(leader, request.raw, reply.raw, request.ip);
    } catch (err) {
      if (reply.raw.headersSent) return;
      logger.warn({ err, leader }, 'could not forward to the leader');
      // Hijacked: the answer is written here, as the error handler would write it.
      const { status, body, headers } = orchestratorErrorReply(notLeader(`the leader at ${leader} cannot be reached now`));
      reply.raw.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
      reply.raw.end(JSON.stringify(body));
    }
  });
  app.get('/healthz', () => ({ status: 'ok', replica: replica() }));
  // Ready while it knows a leader to forward to (not while it is itself beginning to lead).
  app.get('/readyz', (_request, reply) => {
    const r = replica();
    if (r.leader !== null && r.role === 'follower') return { status: 'ready', replica: r };
    void reply.status(503).header('retry-after', '1');
    const err = r.role === 'leader' ? notLeader('this replica is beginning to lead (loading the state); retry shortly') : notLeader();
    return { status: 'not_ready', replica: r, error: err.message, code: err.code };
  });
  app.setNotFoundHandler(() => {
    throw notLeader();
  });
  await app.ready();
  return app;
}
