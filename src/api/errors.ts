import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorCode } from '../domain/errors.js';
import { ERRORS, OrchestratorError } from '../domain/errors.js';
import type { Logger } from '../util/logger.js';
import { SAFE_ID_PATTERN } from './schemas.js';

export interface ErrorBody {
  error: string;
  code: ErrorCode;
}

/** Fastify's own error codes that are the client's fault, mapped to ours (the table's `fastify` lists). */
const FASTIFY_CODES: ReadonlyMap<string, ErrorCode> = new Map(
  (Object.entries(ERRORS) as [ErrorCode, { fastify?: readonly string[] }][]).flatMap(([code, spec]) => (spec.fastify ?? []).map((f) => [f, code] as const)),
);

/** One schema violation as Ajv reports it. */
export interface ValidationIssue {
  instancePath: string;
  keyword: string;
  params: unknown;
  message?: string | undefined;
}

/** The first violation of a request part's schema (`context`: body, querystring, params), in words. */
export function validationMessage(first: ValidationIssue, context: string): string {
  const where = `${context}${first.instancePath.replace(/\//g, '.')}`;
  if (first.keyword === 'additionalProperties') {
    const extra = (first.params as { additionalProperty?: string }).additionalProperty;
    return `${where} has an unknown field "${extra ?? '?'}"`;
  }
  if (first.keyword === 'required') {
    const missing = (first.params as { missingProperty?: string }).missingProperty;
    return `${where} is missing the required field "${missing ?? '?'}"`;
  }
  if (first.keyword === 'minProperties' || first.keyword === 'maxProperties') {
    return where.endsWith('.target') ? `${where} must have exactly one of agentId, ring or selector` : `${where} ${first.message ?? 'is invalid'}`;
  }
  if (first.keyword === 'pattern' && (first.params as { pattern?: string }).pattern === SAFE_ID_PATTERN) {
    return `${where} must not contain a slash, a backslash or a control character`;
  }
  if (first.keyword === 'enum' || first.keyword === 'const' || first.keyword === 'anyOf') {
    return `${where} is not one of the allowed values`;
  }
  return `${where} ${first.message ?? 'is invalid'}`;
}

/** The body of one of our errors; a rate limit also says, in `retry-after`, when to come back. */
export function orchestratorErrorReply(err: OrchestratorError): { status: number; body: ErrorBody & Record<string, unknown>; headers: Record<string, string> } {
  const retry = err.details?.retryAfterSeconds;
  return {
    status: err.status,
    body: { ...err.details, error: err.message, code: err.code },
    headers: typeof retry === 'number' ? { 'retry-after': String(retry) } : {},
  };
}

/**
 * The one place errors become responses. Anything unplanned is a 500 without internals, and is logged.
 * `rewrite` may turn an error into another first (an agent's 401 into a 429 past the failure limit).
 */
export function errorHandler(log: Logger, rewrite: (err: FastifyError, request: FastifyRequest) => unknown = (err) => err) {
  return (original: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const err = rewrite(original, request) as FastifyError;
    // A body that failed to parse closes an HTTP/1 connection; HTTP/2 has no such header (its streams end alone).
    if (request.raw.httpVersionMajor === 2) reply.removeHeader('connection');
    if (err instanceof OrchestratorError) {
      const out = orchestratorErrorReply(err);
      return reply.status(out.status).headers(out.headers).send(out.body);
    }
    if (err.validation) {
      const first = err.validation[0];
      const message = first ? validationMessage(first, err.validationContext ?? 'request') : err.message;
      return reply.status(400).send({ error: message, code: 'ORCH_VALIDATION' } satisfies ErrorBody);
    }
    const mapped = err.code ? FASTIFY_CODES.get(err.code) : undefined;
    if (mapped) {
      // The table's message where it writes one (a body too large, not JSON, empty), else Fastify's words.
      // (The codes Fastify's errors map to write their messages without arguments.)
      const spec = ERRORS[mapped] as { status: number; message?: () => string };
      return reply.status(spec.status).send({ error: spec.message?.() ?? err.message, code: mapped } satisfies ErrorBody);
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ error: err.message, code: 'ORCH_VALIDATION' } satisfies ErrorBody);
    }
    log.error({ err, reqId: request.id, method: request.method, url: request.url }, 'unhandled error');
    return reply.status(500).send({ error: 'internal error', code: 'ORCH_INTERNAL' } satisfies ErrorBody);
  };
}
