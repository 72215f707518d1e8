import swagger from '@fastify/swagger';
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply } from 'fastify';
import { BODY_LIMIT, parseJsonBody } from './body.js';
import { installBodyTimeout } from './body-timeout.js';
import type { Services } from '../core/services.js';
import { OrchestratorError } from '../domain/errors.js';
import { errorHandler } from './errors.js';
import { dualProtocolServer } from './listener.js';
import { AgentStreamRoutes } from './agent-streams.js';
import { documentRoute, swaggerOptions } from './openapi.js';
import { COMPONENTS } from './response-schemas.js';
import { clientAddress, countAgentFailure, installSecurity } from './security-hooks.js';
import { securityRoutes } from './security-routes.js';
import type { Guard } from '../security/guard.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import { agentRoutes } from './agent-routes.js';
import { deploymentRoutes } from './deployment-routes.js';
import type { AdvisorApi } from './advice-routes.js';
import { adviceRoutes } from './advice-routes.js';
import { fleetRoutes } from './fleet-routes.js';
import { seedRoutes } from './seed-routes.js';
import { taskRoutes } from './task-routes.js';
import { v1Routes } from './v1-routes.js';
import { EventJournal } from './event-journal.js';
import { eventRoutes } from './event-routes.js';
import { overviewRoutes } from './overview-routes.js';
import { metricsRoutes, orchestratorMetrics } from './metrics-routes.js';
import { dashboardRoutes } from './dashboard.js';
import type { ReplicaStatus } from './replica.js';
import { soleLeader } from './replica.js';

const MAX_PARAM_LENGTH = 256;

/** Changing routes that are served while the store cannot commit (see the hook below). */
const WRITES_NOT_NEEDED = new Set(['/api/v1/agent/heartbeat', '/api/v1/agent/progress']);

export interface AppOptions {
  services: Services;
  /** Advice on deployments, rings and the fleet (src/advisor/). */
  advisor: AdvisorApi;
  logger: FastifyBaseLogger;
  guard: Guard;
  store: Store;
  clock: Clock;
  /** Certificate and key (PEM): HTTPS with HTTP/1.1 and HTTP/2 by ALPN instead of plain HTTP. */
  tls?: { cert: Buffer; key: Buffer };
  /** How long a client may take to send a request's headers, and then its body (REQUEST_TIMEOUT). */
  requestTimeoutMs: number;
  /** Streams one HTTP/2 connection may have open at once (HTTP2_MAX_STREAMS). */
  http2MaxStreams: number;
  /** The event stream's journal: how many events it keeps and how often it pings (tests shorten them). */
  events?: { capacity?: number; retainMs?: number; pingMs?: number };
  /** An offline device silent for longer than this is missing (MISSING_AFTER). @default 24 h */
  missingAfterMs?: number;
  /** Where the built dashboard is. @default dist/web under the package */
  dashboardDir?: string;
  /** This process's role among replicas (/healthz, /readyz). @default the sole leader of an SQLite store */
  replica?: () => ReplicaStatus;
  /** The replicas' shared key, with which followers sign the client of a request they forward (none on SQLite). */
  replicaKey?: Buffer | null;
}

function parseJson(_req: unknown, body: string, done: (err: Error | null, value?: unknown) => void): void {
  let value: unknown;
  try {
    value = parseJsonBody(body);
  } catch (err) {
    done(err as Error);
    return;
  }
  done(null, value);
}

/** Request lines are logged at debug level and below. */
function logsRequests(logger: FastifyBaseLogger): boolean {
  return logger.level === 'debug' || logger.level === 'trace';
}

export async function buildApp({ services, advisor, logger, guard, store, clock, tls, requestTimeoutMs, http2MaxStreams, events, missingAfterMs, dashboardDir, replica, replicaKey }: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger,
    // Request lines are logged at debug level by the hook below, not at info by Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    // A child logger per request only where request lines are logged (debug); errors carry the request id.
    childLoggerFactory: (parent, bindings, options) => (logsRequests(parent) ? parent.child(bindings, options) : parent),
    bodyLimit: BODY_LIMIT,
    // While closing, requests are refused by the hook below, with our error body (Fastify's own has no code).
    return503OnClosing: false,
    // HTTP/1.1 and clear-text HTTP/2 on the same port (see listener.ts).
    serverFactory: (handler, options) => {
      const number = (v: unknown, fallback: number): number => (typeof v === 'number' ? v : fallback);
      return dualProtocolServer(handler, {
        keepAliveTimeout: number(options.keepAliveTimeout, 72_000),
        headersTimeout: requestTimeoutMs,
        connectionTimeout: number(options.connectionTimeout, 0),
        http2SessionTimeout: number(options.http2SessionTimeout, 72_000),
        http2MaxStreams,
        // The agent protocol's hot routes over HTTP/2 are served past Fastify (agent-streams.ts).
        streamRoutes: new AgentStreamRoutes(services.agentProtocol, logger, guard, tls !== undefined, requestTimeoutMs, replicaKey ?? null),
        ...(tls !== undefined ? { tls } : {}),
      });
    },
    routerOptions: {
      maxParamLength: MAX_PARAM_LENGTH,
      onMaxParamLength: (_path, _req, res) => {
        res.statusCode = 414;
        res.setHeader('content-type', 'application/json; charset=utf-8');
        res.end(JSON.stringify({ error: `a path segment is longer than ${MAX_PARAM_LENGTH} characters`, code: 'ORCH_URI_TOO_LONG' }));
      },
    },
    frameworkErrors: (_err, _request, reply) => {
      void (reply as FastifyReply).status(400).send({ error: 'the URL is not valid', code: 'ORCH_VALIDATION' });
    },
    ajv: {
      customOptions: {
        // Wrong types are errors, not something to coerce ("5" is not a priority).
        coerceTypes: false,
        removeAdditional: false,
        useDefaults: false,
        allErrors: false,
      },
    },
  });
  // Response schemas document the API (GET /openapi.json); they never shape what is sent: every answer is
  // JSON.stringify of what the route returns, as without a schema (fast-json-stringify would drop fields
  // a schema does not list and coerce types). test/e2e/openapi.test.ts checks real answers against them.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  for (const schema of COMPONENTS) app.addSchema(schema);
  app.removeAllContentTypeParsers();
  // application/json by name as well as '*': a named parser is found without a search.
  app.addContentTypeParser(['application/json', '*'], { parseAs: 'string', bodyLimit: BODY_LIMIT }, parseJson);
  installBodyTimeout(app, requestTimeoutMs);
  app.setErrorHandler(errorHandler(logger, (err, request) => (request.routeOptions.config.access === 'agent' ? countAgentFailure(guard, clientAddress(request), err) : err)));
  installSecurity(app, { agents: services.agentProtocol, guard, store, clock, tls: tls !== undefined, replicaKey: replicaKey ?? null });
  // Once closing has begun (SIGTERM), what arrives on connections still open is refused: the client retries
  // elsewhere or after the restart. HTTP/1 connections are closed after the answer (Fastify sets the header).
  let closing = false;
  // While the store cannot commit, a change is refused before any of it is made (the heartbeat and progress of
  // agents say they live and need no commit: their routes handle it themselves). One hook for both: every
  // request passes it.
  app.addHook('onRequest', (request, _reply, done) => {
    if (closing) {
      done(new OrchestratorError('ORCH_SHUTTING_DOWN', 'the orchestrator is stopping'));
      return;
    }
    const m = request.method;
    if (m === 'GET' || m === 'HEAD' || m === 'OPTIONS' || services.status.storage.writable || WRITES_NOT_NEEDED.has(request.routeOptions.url ?? '')) {
      done();
      return;
    }
    try {
      services.status.storage.assertWritable();
      done();
    } catch (err) {
      done(err as Error);
    }
  });
  // Each route's security requirement and common errors in the OpenAPI document, from its access rule and shape.
  app.addHook('onRoute', documentRoute);
  // Parked long-polls are answered and event streams ended at once on close, so that closing does not wait for them.
  const journal = new EventJournal({ events: services.events, now: () => clock.now(), ...events });
  const metrics = orchestratorMetrics({ services, missingAfterMs: missingAfterMs ?? 86_400_000, streams: () => journal.size });
  app.addHook('preClose', (done) => {
    closing = true;
    services.agentProtocol.releasePolls();
    journal.close();
    metrics.stop();
    done();
  });
  if (logsRequests(logger)) {
    app.addHook('onResponse', (request, reply, done) => {
      request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
      done();
    });
  }
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: `no route for ${request.method} ${request.url.split('?')[0] ?? ''}`, code: 'ORCH_NOT_FOUND' }),
  );
  // The OpenAPI document is generated from the routes' own schemas: GET /openapi.json.
  await app.register(swagger, swaggerOptions('0.1.0'));
  await app.register(seedRoutes(services));
  await app.register(v1Routes(services, replica ?? soleLeader(services.status.masterId)));
  await app.register(taskRoutes(services.tasks));
  await app.register(fleetRoutes(services));
  await app.register(deploymentRoutes(services, advisor));
  await app.register(adviceRoutes(advisor));
  await app.register(agentRoutes(services.agentProtocol));
  await app.register(securityRoutes(services, guard, store));
  await app.register(eventRoutes(journal, tls !== undefined));
  await app.register(overviewRoutes(services, missingAfterMs ?? 86_400_000));
  await app.register(metricsRoutes(metrics.registry));
  await app.register(dashboardRoutes(dashboardDir));
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  return app;
}
