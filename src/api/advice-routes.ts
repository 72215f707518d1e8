import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Advisor } from '../advisor/advisor.js';
import type { AdviceRecord, AdviceSubject } from '../domain/advice.js';
import { DEPLOYMENT_DECISIONS, RISK_LEVELS } from '../domain/advice.js';
import { OrchestratorError } from '../domain/errors.js';
import { actorName } from '../security/guard.js';
import { errors } from './openapi.js';
import { DateTime, Nullable, NullableEnum, ref, StringEnum } from './schema-helpers.js';
import { Id } from './schemas.js';
import { iso } from './views.js';

/** What the API asks of the advisor. */
export type AdvisorApi = Pick<Advisor, 'advise' | 'get' | 'list' | 'apply' | 'haltExplanation' | 'parseGate'>;

const TAGS = ['advisor'];
const RingName = Type.String({ minLength: 1, maxLength: 32 });

const Subject = Type.Object(
  {
    deployment: Type.Optional(Id),
    ring: Type.Optional(RingName),
    fleet: Type.Optional(Type.Literal(true)),
  },
  { additionalProperties: false, description: 'exactly one of `{"deployment": id}`, `{"ring": name}`, `{"fleet": true}`' },
);

const AdviceBody = Type.Object({ subject: Subject }, { additionalProperties: false });

const RingRiskView = Type.Object({ ring: Type.String(), risk: StringEnum(RISK_LEVELS), reasons: Type.Array(Type.String()) }, { additionalProperties: false });
const Move = Type.Object({ deviceId: Type.String(), from: Type.String(), to: Type.String(), reason: Type.String() }, { additionalProperties: false });
const AppliedActionView = Type.Object(
  { action: StringEnum(['pause', 'halt', 'rollback', 'move'] as const), target: Type.String(), ok: Type.Boolean(), detail: Type.String() },
  { additionalProperties: false },
);

export const Advice = Type.Object(
  {
    id: Type.String(),
    subject: Subject,
    trigger: StringEnum(['request', 'halt', 'watch'] as const, { description: '`request`: asked for; `halt`: written when the deployment halted; `watch`: the advisor\'s own watch (ADVISOR_AUTO=halt)' }),
    createdAt: DateTime,
    decision: NullableEnum(DEPLOYMENT_DECISIONS, { description: 'for a deployment: continue, pause, halt or rollback; null for a ring or the fleet' }),
    risk: StringEnum(RISK_LEVELS),
    confidence: Type.Number({ minimum: 0, maximum: 1 }),
    rings: Type.Array(RingRiskView),
    moves: Type.Array(Move, { description: 'proposed ring moves; applied (as pinned overrides) only by `POST /api/v1/advice/{id}/apply`' }),
    summary: Type.String(),
    evidence: Type.Object({}, { additionalProperties: true, description: "the analyser's figures the advice rests on" }),
    provider: Type.Object(
      {
        name: StringEnum(['analyser', 'bedrock', 'openai'] as const),
        model: Nullable(Type.String()),
        fallback: Nullable(Type.String({ description: "why the analyser's advice stands instead of the model's" })),
      },
      { additionalProperties: false },
    ),
    cost: Type.Object({ inputTokens: Type.Integer({ minimum: 0 }), outputTokens: Type.Integer({ minimum: 0 }), ms: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
    applied: Type.Union([Type.Object({ at: DateTime, by: Type.String(), actions: Type.Array(AppliedActionView) }, { additionalProperties: false }), Type.Null()]),
  },
  { $id: 'Advice', additionalProperties: false },
);

const ListQuery = Type.Object(
  {
    subject: Type.Optional(Type.String({ pattern: '^(deployment:.{1,200}|ring:.{1,32}|fleet)$', description: '`deployment:<id>`, `ring:<name>` or `fleet`' })),
    trigger: Type.Optional(StringEnum(['request', 'halt', 'watch'] as const)),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })),
    cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,16}$' })),
  },
  { additionalProperties: false },
);

/** The advice as the API shows it: times as ISO dates. */
export function adviceJson(a: AdviceRecord) {
  return {
    id: a.id,
    subject: a.subject,
    trigger: a.trigger,
    createdAt: iso(a.createdAt),
    decision: a.decision,
    risk: a.risk,
    confidence: a.confidence,
    rings: a.rings,
    moves: a.moves,
    summary: a.summary,
    evidence: a.evidence,
    provider: a.provider,
    cost: a.cost,
    applied: a.applied === null ? null : { at: iso(a.applied.at), by: a.applied.by, actions: a.applied.actions },
  };
}

function subjectOf(s: { deployment?: string; ring?: string; fleet?: true }): AdviceSubject {
  const given = [s.deployment !== undefined, s.ring !== undefined, s.fleet !== undefined].filter(Boolean).length;
  if (given !== 1) throw new OrchestratorError('ORCH_VALIDATION', 'subject: give exactly one of {"deployment": id}, {"ring": name}, {"fleet": true}');
  return s.deployment !== undefined ? { deployment: s.deployment } : s.ring !== undefined ? { ring: s.ring } : { fleet: true };
}

export function adviceRoutes(advisor: AdvisorApi): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    app.addSchema(Advice);

    r.post('/api/v1/advice', {
      schema: {
        operationId: 'createAdvice',
        summary: 'Advice on a deployment (continue, pause, halt, rollback), a ring or the fleet (risk and proposed moves), with its evidence; stored',
        tags: TAGS,
        body: AdviceBody,
        response: { 201: ref(Advice), ...errors({ 400: ['ORCH_VALIDATION', 'ORCH_UNKNOWN_RING'], 404: ['ORCH_DEPLOYMENT_NOT_FOUND'] }) },
      },
    }, async (request, reply) => {
      const advice = await advisor.advise(subjectOf(request.body.subject));
      return reply.status(201).send(adviceJson(advice));
    });

    r.get('/api/v1/advice', {
      schema: {
        operationId: 'listAdvice',
        summary: 'Advice, newest first, by subject and trigger, paged',
        tags: TAGS,
        querystring: ListQuery,
        response: {
          200: Type.Object({ advice: Type.Array(ref(Advice)), nextCursor: Nullable(Type.String({ description: 'pass as `cursor` for the next page; null on the last page' })) }, { additionalProperties: false }),
          ...errors({ 400: ['ORCH_VALIDATION'] }),
        },
      },
    }, async (request) => {
      const q = request.query;
      const limit = q.limit === undefined ? 20 : Number(q.limit);
      if (limit < 1 || limit > 200) throw new OrchestratorError('ORCH_VALIDATION', 'limit must be from 1 to 200');
      const page = await advisor.list({ ...(q.subject ? { subject: q.subject } : {}), ...(q.trigger ? { trigger: q.trigger } : {}) }, limit + 1, q.cursor === undefined ? undefined : Number(q.cursor));
      const shown = page.slice(0, limit);
      return { advice: shown.map(adviceJson), nextCursor: page.length > limit ? String(shown.at(-1)?.seq) : null };
    });

    r.post('/api/v1/gating/parse', {
      schema: {
        operationId: 'parseGating',
        summary: "Gating factors in words, read into a stage gate in the plan's own schema, checked and clamped, with what was understood and what was not",
        tags: TAGS,
        body: Type.Object({ text: Type.String({ minLength: 1, maxLength: 2000 }) }, { additionalProperties: false }),
        response: {
          200: Type.Object(
            {
              gate: Type.Object({}, { additionalProperties: true, description: "the fields the text set: a stage's `gate` in POST /api/v1/deployments" }),
              effective: Type.Object({}, { additionalProperties: true, description: 'that gate over the defaults' }),
              understood: Type.Array(Type.Object({ phrase: Type.String(), as: Type.String() }, { additionalProperties: false })),
              notUnderstood: Type.Array(Type.Object({ phrase: Type.String(), why: Type.String() }, { additionalProperties: false })),
              clamped: Type.Array(Type.String()),
              provider: Type.Object({ name: StringEnum(['analyser', 'bedrock', 'openai'] as const), model: Nullable(Type.String()), fallback: Nullable(Type.String()) }, { additionalProperties: false }),
              cost: Type.Object({ inputTokens: Type.Integer({ minimum: 0 }), outputTokens: Type.Integer({ minimum: 0 }), ms: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
            },
            { additionalProperties: false },
          ),
          ...errors({ 400: ['ORCH_VALIDATION'] }),
        },
      },
    }, (request) => advisor.parseGate(request.body.text));

    r.get('/api/v1/advice/:id', {
      schema: {
        operationId: 'getAdvice',
        summary: 'One piece of advice',
        tags: TAGS,
        params: Type.Object({ id: Id }),
        response: { 200: ref(Advice), ...errors({ 404: ['ORCH_ADVICE_NOT_FOUND'] }) },
      },
    }, async (request) => adviceJson(await advisor.get(request.params.id)));

    r.post('/api/v1/advice/:id/apply', {
      schema: {
        operationId: 'applyAdvice',
        summary: "Applies advice through the API's own paths: its decision as the deployment's action, its moves as pinned ring overrides; once",
        tags: TAGS,
        params: Type.Object({ id: Id }),
        response: { 200: ref(Advice), ...errors({ 404: ['ORCH_ADVICE_NOT_FOUND'], 409: ['ORCH_ADVICE_APPLIED'] }) },
      },
    }, async (request) => {
      const by = request.identity === null ? 'anonymous' : actorName(request.identity);
      return adviceJson(await advisor.apply(request.params.id, by));
    });
  };
}

/** A deployment's link to the advice that explains its halt, for its view. */
export async function haltAdviceLink(advisor: AdvisorApi, deploymentId: string): Promise<{ id: string; url: string; summary: string } | null> {
  const a = await advisor.haltExplanation(deploymentId);
  return a === null ? null : { id: a.id, url: `/api/v1/advice/${a.id}`, summary: a.summary };
}
