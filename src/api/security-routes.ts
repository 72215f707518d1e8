import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Services } from '../core/services.js';
import { OrchestratorError } from '../domain/errors.js';
import type { ApiToken, EnrollmentToken } from '../domain/security.js';
import { ROLES } from '../domain/security.js';
import type { Store } from '../store/store.js';
import type { Guard } from '../security/guard.js';
import { actorName } from '../security/guard.js';
import { errors } from './openapi.js';
import { Agent, ApiToken as ApiTokenView, AuditEntry, EnrollmentToken as EnrollmentTokenView, NewApiToken, NewEnrollmentToken } from './response-schemas.js';
import { DocumentedEnum, Nullable, ref, StringEnum } from './schema-helpers.js';
import { AgentParams } from './schemas.js';
import { agentJson, iso } from './views.js';

const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9 ._@:/-]+$' });
const TokenParams = Type.Object({ id: Type.String({ pattern: '^[a-z0-9]{12}$' }) }, { additionalProperties: false });

const NewToken = Type.Object({ name: Name, role: StringEnum(ROLES) }, { additionalProperties: false });

const NewEnrollmentTokenBody = Type.Object(
  {
    name: Name,
    maxUses: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000_000 })),
    expiresInSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 * 365 * 86_400 })),
    requireApproval: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const AUDIT_LIMIT_MAX = 1000;
const AuditQuery = Type.Object(
  {
    actor: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    action: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
    since: Type.Optional(Type.String({ minLength: 1, maxLength: 40, description: 'ISO 8601 date-time or epoch milliseconds' })),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,15}$' })),
  },
  { additionalProperties: false },
);

const TAGS = ['security'];
const TOKEN_NOT_FOUND = errors({ 404: ['ORCH_TOKEN_NOT_FOUND'] });

function tokenJson(t: ApiToken) {
  return { id: t.id, name: t.name, role: t.role, createdAt: iso(t.createdAt), createdBy: t.createdBy, revokedAt: iso(t.revokedAt) };
}

function enrollmentTokenJson(t: EnrollmentToken) {
  return {
    id: t.id,
    name: t.name,
    maxUses: t.maxUses,
    uses: t.uses,
    expiresAt: iso(t.expiresAt),
    requireApproval: t.requireApproval,
    createdAt: iso(t.createdAt),
    createdBy: t.createdBy,
    revokedAt: iso(t.revokedAt),
  };
}

function actorOf(request: FastifyRequest): string {
  return request.identity === null ? 'anonymous' : actorName(request.identity);
}

function instant(raw: string): number {
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(n)) throw new OrchestratorError('ORCH_VALIDATION', 'querystring.since must be an ISO 8601 date-time or epoch milliseconds');
  return n;
}

/**
 * Operators' API tokens, enrollment tokens, agent approval and the audit log
 * (docs/security.md). Every route here but `whoami` is for admins.
 */
export function securityRoutes(services: Services, guard: Guard, store: Store): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.get('/api/v1/whoami', {
      schema: {
        operationId: 'whoami',
        summary: 'Who the token is, and its role',
        tags: TAGS,
        response: {
          200: Type.Object(
            {
              actor: Type.String({ description: "the token's name; `local` while the API is open" }),
              tokenId: Type.Optional(Type.String()),
              role: DocumentedEnum(ROLES),
              open: Type.Boolean({ description: 'whether the API is open (no token needed)' }),
            },
            { additionalProperties: false },
          ),
        },
      },
    }, (request) => {
      const id = request.identity;
      if (id === null || id.kind !== 'operator') return { actor: id?.kind ?? 'anonymous', role: 'admin', open: id?.kind === 'local' };
      return { actor: id.name, tokenId: id.tokenId, role: id.role, open: false };
    });

    r.post('/api/v1/tokens', {
      schema: { operationId: 'createToken', summary: 'Create an API token (shown once)', tags: TAGS, body: NewToken, response: { 201: ref(NewApiToken) } },
    }, async (request, reply) => {
      const { token, text } = await guard.createToken(request.body.name, request.body.role, actorOf(request));
      return reply.status(201).send({ ...tokenJson(token), token: text });
    });

    r.get('/api/v1/tokens', {
      schema: {
        operationId: 'listTokens',
        summary: 'List API tokens, without their secrets',
        tags: TAGS,
        response: { 200: Type.Object({ tokens: Type.Array(ref(ApiTokenView)) }, { additionalProperties: false }) },
      },
    }, async () => ({ tokens: (await store.listApiTokens()).map(tokenJson) }));

    r.delete('/api/v1/tokens/:id', {
      schema: {
        operationId: 'revokeToken',
        summary: 'Revoke an API token at once',
        description: 'Revoking a revoked token changes nothing.',
        tags: TAGS,
        params: TokenParams,
        response: { 200: ref(ApiTokenView), ...TOKEN_NOT_FOUND },
      },
    }, async (request) => {
      const id = request.params.id;
      await store.revokeApiToken(id, services.status.now()); // revoking again changes nothing
      const found = await store.getApiToken(id);
      if (found === null) throw new OrchestratorError('ORCH_TOKEN_NOT_FOUND', `no API token ${id}`);
      return tokenJson(found.token);
    });

    r.post('/api/v1/enrollment-tokens', {
      schema: {
        operationId: 'createEnrollmentToken',
        summary: 'Create an enrollment token (shown once)',
        tags: TAGS,
        body: NewEnrollmentTokenBody,
        response: { 201: ref(NewEnrollmentToken) },
      },
    }, async (request, reply) => {
      const b = request.body;
      const { token, text } = await services.enrollmentTokens.create(
        {
          name: b.name,
          ...(b.maxUses !== undefined ? { maxUses: b.maxUses } : {}),
          ...(b.expiresInSeconds !== undefined ? { expiresAt: services.status.now() + b.expiresInSeconds * 1000 } : {}),
          ...(b.requireApproval !== undefined ? { requireApproval: b.requireApproval } : {}),
        },
        actorOf(request),
      );
      return reply.status(201).send({ ...enrollmentTokenJson(token), token: text });
    });

    r.get('/api/v1/enrollment-tokens', {
      schema: {
        operationId: 'listEnrollmentTokens',
        summary: 'List enrollment tokens with their uses',
        tags: TAGS,
        response: { 200: Type.Object({ tokens: Type.Array(ref(EnrollmentTokenView)) }, { additionalProperties: false }) },
      },
    }, async () => ({ tokens: (await services.enrollmentTokens.list()).map(enrollmentTokenJson) }));

    r.delete('/api/v1/enrollment-tokens/:id', {
      schema: { operationId: 'revokeEnrollmentToken', summary: 'Revoke an enrollment token', tags: TAGS, params: TokenParams, response: { 200: ref(EnrollmentTokenView), ...TOKEN_NOT_FOUND } },
    }, async (request) =>
      enrollmentTokenJson(await services.enrollmentTokens.revoke(request.params.id)),
    );

    r.post('/api/v1/agents/:id/approve', {
      schema: {
        operationId: 'approveAgent',
        summary: 'Let a pending agent take tasks',
        tags: ['agents'],
        params: AgentParams,
        response: { 200: ref(Agent), ...errors({ 404: ['ORCH_AGENT_NOT_FOUND'] }) },
      },
    }, async (request) => {
      await services.agents.approve(request.params.id);
      return agentJson(await services.agents.view(request.params.id));
    });

    r.get('/api/v1/audit', {
      schema: {
        operationId: 'auditLog',
        summary: 'The audit log, oldest first, in pages',
        tags: TAGS,
        querystring: AuditQuery,
        response: { 200: Type.Object({ entries: Type.Array(ref(AuditEntry)), nextCursor: Nullable(Type.String()) }, { additionalProperties: false }) },
      },
    }, async (request) => {
      const q = request.query;
      const limit = Math.min(AUDIT_LIMIT_MAX, Math.max(1, q.limit === undefined ? 100 : Number(q.limit)));
      const entries = await store.listAudit({
        ...(q.actor !== undefined ? { actor: q.actor } : {}),
        ...(q.action !== undefined ? { action: q.action } : {}),
        ...(q.since !== undefined ? { since: instant(q.since) } : {}),
        ...(q.cursor !== undefined ? { afterId: Number(q.cursor) } : {}),
        limit,
      });
      const last = entries.at(-1);
      return {
        entries: entries.map((e) => ({ ...e, at: iso(e.at) })),
        nextCursor: entries.length === limit && last !== undefined ? String(last.id) : null,
      };
    });
  };
}
