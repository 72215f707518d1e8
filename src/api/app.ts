import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { OrchestratorError } from '../domain/errors.js';
import type { Orchestrator } from '../core/orchestrator.js';
import { errorHandler } from './errors.js';
import { seedRoutes } from './seed-routes.js';
import { v1Routes } from './v1-routes.js';

export const BODY_LIMIT = 1024 * 1024;

export interface AppOptions {
  orchestrator: Orchestrator;
  logger: FastifyBaseLogger;
}

/**
 * Parses every body as JSON whatever its content type, as the seed's server
 * did (curl without `-H 'Content-Type: application/json'` still works). An
 * empty body is no body.
 */
function parseJson(_req: unknown, body: string, done: (err: Error | null, value?: unknown) => void): void {
  if (body.trim().length === 0) {
    done(null, undefined);
    return;
  }
  try {
    done(null, JSON.parse(body) as unknown);
  } catch {
    done(new OrchestratorError('ORCH_INVALID_JSON', 'invalid json'));
  }
}

export async function buildApp({ orchestrator, logger }: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: logger,
    // Request lines are logged at debug level by the hook below, not at info by Fastify.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT,
    return503OnClosing: true,
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
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: BODY_LIMIT }, parseJson);
  app.setErrorHandler(errorHandler(logger));
  app.addHook('onResponse', (request, reply, done) => {
    request.log.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime }, 'request');
    done();
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: `no route for ${request.method} ${request.url.split('?')[0] ?? ''}`, code: 'ORCH_NOT_FOUND' }),
  );
  await app.register(seedRoutes(orchestrator));
  await app.register(v1Routes(orchestrator));
  return app;
}
