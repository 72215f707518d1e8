import type { SwaggerOptions } from '@fastify/swagger';
import type { FastifySchema, RouteOptions } from 'fastify';
import { Type } from 'typebox';
import type { Static, TSchema } from 'typebox';
import { ERROR_CODES, ERRORS } from '../domain/errors.js';
import type { ErrorCode } from '../domain/errors.js';
import type { Access } from '../security/access.js';
import { accessOf } from '../security/access.js';

import type { ErrorBody } from './response-schemas.js';

/**
 * How the OpenAPI document (GET /openapi.json) is made from the routes:
 * - each route's options give its summary, operationId, tag, request schemas, its
 *   success responses and the errors only it can give (`errors(...)`);
 * - `documentRoute` (an onRoute hook) adds what follows from facts every route has:
 *   its security requirement and the errors of its access rule (from the one access
 *   table, src/security/access.ts), of a body (400, 413), of path parameters (400, 414),
 *   and of a write (503), so that none of these can drift from the code that answers them;
 * - `documentedAs` marks a schema that is validated in code rather than by its schema
 *   (its own error codes and messages): the document shows the marked description instead.
 */

const DOCUMENTED_AS = Symbol('documented as');
const CODES = Symbol('error codes');

/** Options for a schema that is documented as `doc`: `Type.String({ minLength: 1, ...documentedAs(doc) })`. */
export function documentedAs(doc: TSchema): { [DOCUMENTED_AS]: TSchema } {
  return { [DOCUMENTED_AS]: doc };
}

/** A schema with every part marked by `documentedAs` replaced by its documented form (a copy; the schema is not changed). */
export function documentedSchema(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(documentedSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const doc = (schema as { [DOCUMENTED_AS]?: unknown })[DOCUMENTED_AS];
  if (doc !== undefined) return documentedSchema(doc);
  return Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, documentedSchema(v)]));
}

/** The retry-after header of 429 and 503 answers. */
const RETRY_AFTER = { 'retry-after': { type: 'integer', minimum: 1, description: 'seconds to wait before trying again (with ORCH_RATE_LIMITED, and ORCH_STORAGE_UNAVAILABLE)' } };

const ORDER = Object.keys(ERROR_CODES) as ErrorCode[];

/** An error answer with one of `codes`: the shared error body, its `code` one of these. */
function errorResponse(status: number, codes: readonly ErrorCode[]) {
  const sorted = ORDER.filter((c) => codes.includes(c));
  return Type.Unsafe<Static<typeof ErrorBody>>({
    description: sorted.map((c) => `${c}: ${ERRORS[c].meaning}`).join('. '),
    allOf: [{ $ref: 'Error' }, { type: 'object', properties: { code: { type: 'string', enum: sorted } } }],
    ...(status === 429 || status === 503 ? { headers: RETRY_AFTER } : {}),
    [CODES]: sorted,
  });
}

/** The errors only this route gives, by status: `response: { 200: X, ...errors({ 404: ['ORCH_TASK_NOT_FOUND'] }) }`. */
export function errors<S extends number>(byStatus: Record<S, readonly ErrorCode[]>): Record<S, ReturnType<typeof errorResponse>> {
  const out: Partial<Record<S, ReturnType<typeof errorResponse>>> = {};
  for (const status of Object.keys(byStatus).map(Number) as S[]) {
    const codes = byStatus[status];
    for (const code of codes) if (ERROR_CODES[code] !== status) throw new Error(`${code} is a ${ERROR_CODES[code]}, not a ${status}`);
    out[status] = errorResponse(status, codes);
  }
  return out as Record<S, ReturnType<typeof errorResponse>>;
}

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** The errors every route with these facts can give, whatever it does. */
function commonErrors(method: string, url: string, access: Access, schema: FastifySchema): Map<number, ErrorCode[]> {
  const out = new Map<number, ErrorCode[]>();
  const add = (code: ErrorCode): void => {
    const status = ERROR_CODES[code];
    out.set(status, [...(out.get(status) ?? []), code]);
  };
  if (access === 'agent') {
    // The agent's credential, checked before anything else; past the failed-authentication limit, a 429.
    add('ORCH_UNAUTHORIZED');
    add('ORCH_RATE_LIMITED');
    add('ORCH_SHUTTING_DOWN');
  } else if (access === 'enroll') {
    add('ORCH_RATE_LIMITED');
  } else if (access !== 'public') {
    add('ORCH_UNAUTHORIZED');
    add('ORCH_FORBIDDEN');
    add('ORCH_RATE_LIMITED');
  }
  if (BODY_METHODS.has(method)) {
    // A body is parsed whatever the route: not JSON, a key that could reach a prototype, or too large.
    add('ORCH_INVALID_JSON');
    add('ORCH_VALIDATION');
    add('ORCH_PAYLOAD_TOO_LARGE');
    add('ORCH_REQUEST_TIMEOUT');
  }
  if (schema.body !== undefined || schema.querystring !== undefined || schema.params !== undefined) add('ORCH_VALIDATION');
  if (url.includes(':')) add('ORCH_URI_TOO_LONG');
  if (method !== 'GET') {
    if (access !== 'agent') add('ORCH_SHUTTING_DOWN');
    add('ORCH_STORAGE_UNAVAILABLE');
  }
  return out;
}

/** The OpenAPI security requirement of an access rule: none, an operator's API token, or an agent's credential. */
export function securityOf(access: Access): { [scheme: string]: string[] }[] {
  if (access === 'public' || access === 'enroll') return [];
  return access === 'agent' ? [{ agent: [] }] : [{ token: [] }];
}

const WHO: Record<Access, string> = {
  public: 'Public: no credential.',
  enroll: 'Public: the enrollment token is in the body.',
  agent: "An enrolled agent's credential (`Authorization: Bearer <agentId>:<credential>`); an agent reaches only its own work.",
  viewer: 'An API token with the viewer role or higher (no token while the API is open).',
  operator: 'An API token with the operator role or higher (no token while the API is open).',
  admin: 'An API token with the admin role (no token while the API is open).',
};

/**
 * onRoute hook: the route's security requirement, a description of every success
 * answer, and its common errors, from its access rule and its shape. HEAD routes
 * (beside every GET) are not documented.
 */
export function documentRoute(route: RouteOptions): void {
  const methods = (Array.isArray(route.method) ? route.method : [route.method]).filter((m) => m !== 'HEAD');
  const first = methods[0];
  if (first === undefined) return;
  // One rule for all the route's methods (installSecurity refuses a route whose methods differ).
  const access = accessOf(first, route.url);
  if (access === undefined) return; // refused by installSecurity's own hook
  const schema: FastifySchema = route.schema ?? {};
  const response: Record<string, unknown> = {};
  for (const [status, answer] of Object.entries((schema.response ?? {}) as Record<string, { description?: string }>)) {
    response[status] = status.startsWith('2') && answer.description === undefined ? { ...answer, description: status === '201' ? 'Created' : 'OK' } : answer;
  }
  for (const method of methods) {
    for (const [status, codes] of commonErrors(method, route.url, access, schema)) {
      const declared = (response[status] as { [CODES]?: ErrorCode[] } | undefined)?.[CODES] ?? [];
      response[status] = errorResponse(status, [...new Set([...declared, ...codes])]);
    }
  }
  route.schema = {
    ...schema,
    security: securityOf(access),
    description: [schema.description, WHO[access]].filter((s) => s !== undefined).join('\n\n'),
    response,
  };
}

/** The operation groups, in the order of the README. */
const TAGS = [
  { name: 'prototype', description: "The hackathon prototype's endpoints, kept for its clients." },
  { name: 'agents', description: 'Agents as operators see them.' },
  { name: 'tasks', description: "The task engine's own API." },
  { name: 'devices', description: 'Devices, their health and their ring.' },
  { name: 'rings', description: 'Deployment rings: configuration, sizes, moves.' },
  { name: 'deployments', description: 'Staged deployments with health gates.' },
  { name: 'agent protocol', description: 'What an agent on a real machine calls (docs/agent-protocol.md).' },
  { name: 'security', description: 'API tokens, enrollment tokens and the audit log (docs/security.md).' },
  { name: 'health', description: 'Liveness.' },
];

/** The @fastify/swagger options: the document's frame, components named by their `$id`, and `documentedAs` applied. */
export function swaggerOptions(version: string): SwaggerOptions {
  return {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'AWS Orchestrator',
        version,
        description:
          'A fleet orchestrator: the prototype endpoints, /api/v1 and the agent protocol (docs/agent-protocol.md). ' +
          'Errors are a 4xx (or a 503 while stopping or when the store cannot commit) with `{"error", "code"}`.',
        license: { name: 'MIT', url: 'https://opensource.org/license/mit' },
      },
      servers: [{ url: '/', description: 'the orchestrator serving this document' }],
      tags: TAGS,
      components: {
        securitySchemes: {
          token: { type: 'http', scheme: 'bearer', description: 'an operator API token (orchestrator token create, or POST /api/v1/tokens); not needed while the API is open (docs/security.md)' },
          agent: { type: 'http', scheme: 'bearer', description: '`<agentId>:<credential>`, from POST /api/v1/agent/enroll' },
        },
      },
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
    transform: ({ schema, url }) => ({ schema: documentedSchema(schema) as FastifySchema, url }),
  };
}
