import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorCode } from '../domain/errors.js';
import { OrchestratorError } from '../domain/errors.js';
import type { Logger } from '../util/logger.js';
import { SAFE_ID_PATTERN } from './schemas.js';

export interface ErrorBody {
  error: string;
  code: ErrorCode;
}

/** Fastify's own error codes that are the client's fault, mapped to ours. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'ORCH_PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'ORCH_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'ORCH_VALIDATION',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'ORCH_EMPTY_PAYLOAD',
  FST_ERR_CTP_INVALID_JSON_BODY: 'ORCH_INVALID_JSON',
  FST_ERR_INVALID_URL: 'ORCH_VALIDATION',
  FST_ERR_BAD_URL: 'ORCH_VALIDATION',
  FST_ERR_ASYNC_CONSTRAINT: 'ORCH_VALIDATION',
};

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
    const mapped = err.code ? FASTIFY_CODES[err.code] : undefined;
    if (mapped) {
      const status = mapped === 'ORCH_PAYLOAD_TOO_LARGE' ? 413 : mapped === 'ORCH_UNSUPPORTED_MEDIA_TYPE' ? 415 : 400;
      const message =
        mapped === 'ORCH_PAYLOAD_TOO_LARGE'
          ? 'request body is larger than the 1 MiB limit'
          : mapped === 'ORCH_INVALID_JSON'
            ? 'invalid json'
            : mapped === 'ORCH_EMPTY_PAYLOAD'
              ? 'empty payload'
              : err.message;
      return reply.status(status).send({ error: message, code: mapped } satisfies ErrorBody);
    }
    if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ error: err.message, code: 'ORCH_VALIDATION' } satisfies ErrorBody);
    }
    log.error({ err, reqId: request.id, method: request.method, url: request.url }, 'unhandled error');
    return reply.status(500).send({ error: 'internal error', code: 'ORCH_INTERNAL' } satisfies ErrorBody);
  };
}
