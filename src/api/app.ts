import swagger from '@fastify/swagger';
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply } from 'fastify';
import { OrchestratorError } from '../domain/errors.js';
import type { Orchestrator } from '../core/orchestrator.js';
import { errorHandler } from './errors.js';
import { dualProtocolServer } from './listener.js';
import { agentRoutes } from './agent-routes.js';
import { deploymentRoutes } from './deployment-routes.js';
import { fleetRoutes } from './fleet-routes.js';
import { seedRoutes } from './seed-routes.js';
import { taskRoutes } from './task-routes.js';
import { v1Routes } from './v1-routes.js';

export const BODY_LIMIT = 1024 * 1024;
const MAX_PARAM_LENGTH = 256;

export interface AppOptions {
  orchestrator: Orchestrator;
  logger: FastifyBaseLogger;
}

/** Keys that could reach an object's prototype; a body holding one is refused. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** A body without any of these strings (escaped or not) cannot hold a forbidden key: no need to walk it. */
const SUSPECT_KEY = /__proto__|constructor|prototype|\\u/;
const NOT_BLANK = /\S/;

function hasForbiddenKey(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some(hasForbiddenKey);
  for (const [k, v] of Object.entries(value)) if (FORBIDDEN_KEYS.has(k) || hasForbiddenKey(v)) return true;
  return false;
}

/**
 * Parses every body as JSON whatever its content type, as the seed's server
 * did (curl without `-H 'Content-Type: application/json'` still works). An
 * empty body is no body.
 */
function parseJson(_req: unknown, body: string, done: (err: Error | null, value?: unknown) => void): void {
  if (!NOT_BLANK.test(body)) {
    done(null, undefined);
    return;
  }
  let value: unknown;
  try {
    value = JSON.parse(body) as unknown;
  } catch {
    done(new OrchestratorError('ORCH_INVALID_JSON', 'invalid json'));
    return;
  }
  if (SUSPECT_KEY.test(body) && hasForbiddenKey(value)) {
    done(new OrchestratorError('ORCH_VALIDATION', 'field names __proto__, constructor and prototype are not allowed'));
    return;
  }
  done(null, value);
}

/** Request lines are logged at debug level and below. */
function logsRequests(logger: FastifyBaseLogger): boolean {
  return logger.level === 'debug' || logger.level === 'trace';
}

export async function buildApp({ orchestrator, logger }: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger,
    // Request lines are logged at debug level by the hook below, not at info by Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    // A child logger per request only where request lines are logged (debug); errors carry the request id.
    childLoggerFactory: (parent, bindings, options) => (logsRequests(parent) ? parent.child(bindings, options) : parent),
    bodyLimit: BODY_LIMIT,
    return503OnClosing: true,
    // HTTP/1.1 and clear-text HTTP/2 on the same port (see listener.ts).
    serverFactory: (handler, options) => {
      const number = (v: unknown, fallback: number): number => (typeof v === 'number' ? v : fallback);
      return dualProtocolServer(handler, {
        keepAliveTimeout: number(options.keepAliveTimeout, 72_000),
        requestTimeout: number(options.requestTimeout, 0),
        connectionTimeout: number(options.connectionTimeout, 0),
        http2SessionTimeout: number(options.http2SessionTimeout, 72_000),
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
  app.removeAllContentTypeParsers();
  // application/json by name as well as '*': a named parser is found without a search.
  app.addContentTypeParser(['application/json', '*'], { parseAs: 'string', bodyLimit: BODY_LIMIT }, parseJson);
  app.setErrorHandler(errorHandler(logger));
  // Parked long-polls are answered at once on close, so that closing does not wait for them.
  app.addHook('preClose', (done) => {
    orchestrator.releasePolls();
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
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'AWS Orchestrator', version: '0.1.0', description: 'The prototype endpoints, /api/v1 and the agent protocol (docs/agent-protocol.md). Errors are 4xx with {"error", "code"}.' },
      components: { securitySchemes: { agent: { type: 'http', scheme: 'bearer', description: 'agentId:credential, from /api/v1/agent/enroll' } } },
    },
  });
  await app.register(seedRoutes(orchestrator));
  await app.register(v1Routes(orchestrator));
  await app.register(taskRoutes(orchestrator));
  await app.register(fleetRoutes(orchestrator));
  await app.register(deploymentRoutes(orchestrator));
  await app.register(agentRoutes(orchestrator));
  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  return app;
}
