import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Orchestrator } from '../core/orchestrator.js';
import { OrchestratorError } from '../domain/errors.js';
import type { ApiToken, EnrollmentToken } from '../domain/security.js';
import { ROLES } from '../domain/security.js';
import type { Store } from '../store/store.js';
import type { Guard } from '../security/guard.js';
import { actorName } from '../security/guard.js';
import { AgentParams } from './schemas.js';
import { agentJson, iso } from './views.js';

const Name = Type.String({ minLength: 1, maxLength: 100, pattern: '^[A-Za-z0-9 ._@:/-]+$' });
const TokenParams = Type.Object({ id: Type.String({ pattern: '^[a-z0-9]{12}$' }) }, { additionalProperties: false });

const NewToken = Type.Object({ name: Name, role: Type.Union(ROLES.map((r) => Type.Literal(r))) }, { additionalProperties: false });

const NewEnrollmentToken = Type.Object(
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
export function securityRoutes(orchestrator: Orchestrator, guard: Guard, store: Store): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.get('/api/v1/whoami', (request) => {
      const id = request.identity;
      if (id === null || id.kind !== 'operator') return { actor: id?.kind ?? 'anonymous', role: 'admin', open: id?.kind === 'local' };
      return { actor: id.name, tokenId: id.tokenId, role: id.role, open: false };
    });

    r.post('/api/v1/tokens', { schema: { body: NewToken } }, async (request, reply) => {
      const { token, text } = await guard.createToken(request.body.name, request.body.role, actorOf(request));
      return reply.status(201).send({ ...tokenJson(token), token: text });
    });

    r.get('/api/v1/tokens', async () => ({ tokens: (await store.listApiTokens()).map(tokenJson) }));

    r.delete('/api/v1/tokens/:id', { schema: { params: TokenParams } }, async (request) => {
      const id = request.params.id;
      await store.revokeApiToken(id, orchestrator.now()); // revoking again changes nothing
      const found = await store.getApiToken(id);
      if (found === null) throw new OrchestratorError('ORCH_TOKEN_NOT_FOUND', `no API token ${id}`);
      return tokenJson(found.token);
    });

    r.post('/api/v1/enrollment-tokens', { schema: { body: NewEnrollmentToken } }, async (request, reply) => {
      const b = request.body;
      const { token, text } = await orchestrator.enrollmentTokens.create(
        {
          name: b.name,
          ...(b.maxUses !== undefined ? { maxUses: b.maxUses } : {}),
          ...(b.expiresInSeconds !== undefined ? { expiresAt: orchestrator.now() + b.expiresInSeconds * 1000 } : {}),
          ...(b.requireApproval !== undefined ? { requireApproval: b.requireApproval } : {}),
        },
        actorOf(request),
      );
      return reply.status(201).send({ ...enrollmentTokenJson(token), token: text });
    });

    r.get('/api/v1/enrollment-tokens', async () => ({ tokens: (await orchestrator.enrollmentTokens.list()).map(enrollmentTokenJson) }));

    r.delete('/api/v1/enrollment-tokens/:id', { schema: { params: TokenParams } }, async (request) =>
      enrollmentTokenJson(await orchestrator.enrollmentTokens.revoke(request.params.id)),
    );

    r.post('/api/v1/agents/:id/approve', { schema: { params: AgentParams } }, async (request) => {
      await orchestrator.approveAgent(request.params.id);
      return agentJson(await orchestrator.agentView(request.params.id));
    });

    r.get('/api/v1/audit', { schema: { querystring: AuditQuery } }, async (request) => {
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
