import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { TASK_TYPES } from '../domain/types.js';
import { documentedAs, errors } from './openapi.js';
import { DeploymentCreated, DeploymentDetail, DeploymentSummary } from './deployment-schemas.js';
import { Nullable, ref, StringEnum } from './schema-helpers.js';
import { Id as SafeId } from './schemas.js';
import type { Services } from '../core/services.js';
import { RolloutController } from '../core/rollouts.js';
import type { DeploymentAction, DeploymentRecord, Execution, GateEvaluation } from '../domain/deployment.js';
import { DEPLOYMENT_ACTIONS, EXECUTION_STATES, outcomeOf, pauseReasonOf } from '../domain/deployment.js';
import { parseDeploymentSpec } from '../domain/deployment-spec.js';
import { OrchestratorError } from '../domain/errors.js';
import { iso, metricsJson } from './views.js';
import type { AdvisorApi } from './advice-routes.js';
import { haltAdviceLink } from './advice-routes.js';

const Id = Type.Object({ id: SafeId });
/** Any action name passes the schema: an unknown one is a 404 ORCH_NOT_FOUND from the route, naming the actions. */
const ActionParams = Type.Object(
  { id: SafeId, action: Type.String({ minLength: 1, maxLength: 40 }) },
  { ...documentedAs(Type.Object({ id: SafeId, action: StringEnum([...DEPLOYMENT_ACTIONS, 'acknowledge-and-resume'], { description: '`acknowledge-and-resume` is `acknowledge`' }) })) },
);
const ListQuery = Type.Object(
  { limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })), cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,16}$' })) },
  { additionalProperties: false },
);
const DetailQuery = Type.Object(
  {
    state: Type.Optional(StringEnum(EXECUTION_STATES)),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,6}$' })),
  },
  { additionalProperties: false },
);
const ImpactQuery = Type.Object({ limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })) }, { additionalProperties: false });

const Percent = Type.Number({ minimum: 0, maximum: 100 });
const PayloadIn = Type.Object(
  { type: StringEnum(TASK_TYPES), params: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'default: {}' })) },
  { additionalProperties: false },
);
const Share = Type.Number({ minimum: 0, maximum: 1 });
const Millis = Type.Integer({ minimum: 0, maximum: 86_400_000 });
const PerMinute = Type.Number({ minimum: 0.01, maximum: 1_000_000 });

/** A stage as `POST /api/v1/deployments` takes it; every field but `ring` has a default. */
const StageIn = Type.Object(
  {
    ring: Type.String({ description: 'a configured ring, at most one stage each' }),
    rate: Type.Optional(
      Type.Union([
        Type.Object({ maxPerMinute: PerMinute }, { additionalProperties: false }),
        Type.Object(
          {
            exponential: Type.Object(
              { base: PerMinute, factor: Type.Number({ minimum: 1, maximum: 100 }), every: Type.Number({ minimum: 1, maximum: 1_000_000, description: 'successes between increases' }), max: Type.Optional(PerMinute) },
              { description: 'per minute, raised by `factor` after every `every` successes, up to `max`' },
            ),
          },
          { additionalProperties: false },
        ),
      ]),
    ),
    soakMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 30 * 86_400_000 })),
    gate: Type.Optional(
      Type.Object(
        {
          maxFailureShare: Type.Optional(Share),
          maxTimeoutShare: Type.Optional(Share),
          maxCpuRegression: Type.Optional(Percent),
          maxMemoryRegression: Type.Optional(Percent),
          maxBatteryDrainRegression: Type.Optional(Type.Number({ minimum: 0, maximum: 1000 })),
          maxRegressedShare: Type.Optional(Share),
          minDevices: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
          minJudged: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'devices the ring must judge before its soak may pass (default minDevices; a smaller ring needs all of them; 0: no minimum)' })),
          minModelDevices: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
          observeMs: Type.Optional(Millis),
          stalledMs: Type.Optional(Millis),
          confidence: Type.Optional(Type.Number({ minimum: 0, maximum: 0.999 })),
        },
        { additionalProperties: false },
      ),
    ),
    preflight: Type.Optional(
      Type.Object({ minBattery: Type.Optional(Percent), requireCharging: Type.Optional(Type.Boolean()), minFreeDisk: Type.Optional(Percent) }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);

const HHMM = Type.String({ pattern: '^([01]\\d|2[0-3]):[0-5]\\d$', description: '"HH:MM", UTC' });

/** A deployment as `POST /api/v1/deployments` takes it: validated by `parseDeploymentSpec`, which names every problem with its place. */
const DeploymentBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 200, pattern: '\\S' }),
    payload: PayloadIn,
    plan: Type.Optional(
      Type.Object({ stages: Type.Array(StageIn, { minItems: 1, maxItems: 16 }) }, { description: 'default: a stage per configured ring, in ring order' }),
    ),
    maintenanceWindows: Type.Optional(
      Type.Array(
        Type.Object({ days: Type.Array(Type.Integer({ minimum: 0, maximum: 6 }), { minItems: 1, description: '0 (Sunday) to 6' }), start: HHMM, end: HHMM }, { description: 'weekly; an end before the start runs past midnight; start and end differ' }),
        { maxItems: 50, description: 'none: any time' },
      ),
    ),
    autoRollback: Type.Optional(Type.Boolean()),
    rollbackPayload: Type.Optional(PayloadIn),
    start: Type.Optional(Type.Boolean({ description: 'start at once; otherwise the deployment is `scheduled`' })),
  },
  { additionalProperties: false },
);

const TAGS = ['deployments'];
const NOT_FOUND = errors({ 404: ['ORCH_DEPLOYMENT_NOT_FOUND'] });

/** Action names in URLs: `acknowledge` is also reachable as `acknowledge-and-resume`. */
const ACTION_ALIASES: Record<string, DeploymentAction> = { 'acknowledge-and-resume': 'acknowledge' };

/** A deployment in one line (the list's rows). */
export function deploymentSummary(d: DeploymentRecord) {
  return {
    id: d.id,
    kind: d.kind,
    name: d.spec.name,
    status: d.status,
    stage: d.spec.stages.length === 0 ? null : { index: d.stage, ring: d.spec.stages[d.stage]?.ring ?? null, phase: d.phase, soakUntil: iso(d.soakUntil) },
    haltReason: d.haltReason,
    // `operator`, or `insufficient_evidence` (haltReason then says how many devices could be judged, and why not the rest); null unless paused.
    pauseReason: pauseReasonOf(d),
    // Once ended: how many devices run the release, and why the others do not.
    outcome: outcomeOf(d),
    createdAt: iso(d.createdAt),
    startedAt: iso(d.startedAt),
    endedAt: iso(d.endedAt),
  };
}

/** An execution as the API shows it (`ring`: its stage's ring, when known). */
export function executionJson(e: Execution, ring: string | null) {
  return {
    deviceId: e.deviceId,
    ring,
    state: e.state,
    reason: e.reason,
    taskId: e.taskId,
    rollbackTaskId: e.rollbackTaskId,
    baseline: metricsJson(e.baseline),
    observed: metricsJson(e.observed),
    impact: e.cpuDelta === null ? null : { cpu: e.cpuDelta, memory: e.memoryDelta, batteryDrainPerHour: e.drainDelta },
    queuedAt: iso(e.queuedAt),
    startedAt: iso(e.startedAt),
    endedAt: iso(e.endedAt),
    observedAt: iso(e.observedAt),
  };
}

function evaluationJson(e: GateEvaluation) {
  return { stage: e.stage, ring: e.ring, at: iso(e.at), verdict: e.verdict, reason: e.reason, figures: e.figures };
}

/** `/api/v1/deployments`: staged rollouts with health gates. */
export function deploymentRoutes(services: Pick<Services, 'deployments' | 'fleet'>, advisor: AdvisorApi): FastifyPluginAsync {
  // services.deployments is read on each request, never kept: it is replaced when the state is rebuilt after a failed write.
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/api/v1/deployments', {
      schema: {
        operationId: 'createDeployment',
        summary: 'Create a staged deployment',
        description: 'An invalid request is a 400 whose `errors` lists every problem with its place.',
        tags: TAGS,
        body: Type.Unknown({ ...documentedAs(DeploymentBody) }),
        response: { 201: ref(DeploymentCreated) },
      },
    }, async (request, reply) => {
      const out = parseDeploymentSpec(request.body, services.fleet.ringNames());
      if ('errors' in out) throw new OrchestratorError('ORCH_VALIDATION', `invalid deployment: ${out.errors.join('; ')}`, { errors: out.errors });
      const start = (request.body as { start?: boolean }).start === true;
      const d = await services.deployments.create(out.spec, { start });
      return reply.status(201).send({ ...deploymentSummary(d), plan: d.spec });
    });

    r.get('/api/v1/deployments', {
      schema: {
        operationId: 'listDeployments',
        summary: 'Deployments, newest first',
        tags: TAGS,
        querystring: ListQuery,
        response: { 200: Type.Object({ deployments: Type.Array(ref(DeploymentSummary)), nextCursor: Nullable(Type.String()) }, { additionalProperties: false }) },
      },
    }, async (request) => {
      const limit = request.query.limit === undefined ? 50 : Number(request.query.limit);
      if (limit < 1 || limit > 500) throw new OrchestratorError('ORCH_VALIDATION', 'limit must be from 1 to 500');
      const list = await services.deployments.list(limit, request.query.cursor === undefined ? undefined : Number(request.query.cursor));
      const last = list.at(-1);
      return { deployments: list.map(deploymentSummary), nextCursor: list.length === limit && last ? String(last.seq) : null };
    });

    r.get('/api/v1/deployments/:id', {
      schema: {
        operationId: 'getDeployment',
        summary: "A deployment's progress per ring, executions and gate evaluations",
        tags: TAGS,
        params: Id,
        querystring: DetailQuery,
        response: { 200: ref(DeploymentDetail), ...NOT_FOUND },
      },
    }, async (request) => {
      const view = await services.deployments.get(request.params.id);
      const d = view.deployment;
      const ringOf = (stage: number): string | null => d.spec.stages[stage]?.ring ?? null;
      const rings = d.spec.stages.map((s, k) => {
        const mine = view.executions.filter((e) => e.stage === k);
        return {
          ring: s.ring,
          stage: k,
          reached: d.status !== 'scheduled' && k <= d.stage,
          devices: mine.length,
          counts: RolloutController.countStates(mine),
          gate: s.gate,
          lastEvaluation: view.evaluations.filter((e) => e.stage === k).map(evaluationJson).at(-1) ?? null,
        };
      });
      const limit = request.query.limit === undefined ? 1000 : Number(request.query.limit);
      const filtered = request.query.state === undefined ? view.executions : view.executions.filter((e) => e.state === request.query.state);
      return {
        ...deploymentSummary(d),
        plan: d.spec,
        progress: { rings, counts: RolloutController.countStates(view.executions) },
        executions: filtered.slice(0, limit).map((e) => executionJson(e, ringOf(e.stage))),
        executionsTotal: filtered.length,
        evaluations: view.evaluations.map(evaluationJson),
        haltAdvice: await haltAdviceLink(advisor, d.id),
      };
    });

    r.get('/api/v1/deployments/:id/impact', {
      schema: {
        operationId: 'deploymentImpact',
        summary: 'The most affected devices, worst first',
        tags: TAGS,
        params: Id,
        querystring: ImpactQuery,
        response: {
          200: Type.Object(
            {
              devices: Type.Array(
                Type.Object(
                  { deviceId: Type.String(), ring: Type.String(), cpuDelta: Type.Number(), memoryDelta: Type.Number(), drainDelta: Type.Number(), score: Type.Number({ minimum: 0, description: 'the worsening: CPU and memory points, drain counted twice' }) },
                  { additionalProperties: false },
                ),
              ),
            },
            { additionalProperties: false },
          ),
          ...NOT_FOUND,
        },
      },
    }, async (request) => {
      const limit = request.query.limit === undefined ? 20 : Number(request.query.limit);
      if (limit < 1 || limit > 1000) throw new OrchestratorError('ORCH_VALIDATION', 'limit must be from 1 to 1000');
      return { devices: await services.deployments.impact(request.params.id, limit) };
    });

    r.post('/api/v1/deployments/:id/:action', {
      schema: {
        operationId: 'actOnDeployment',
        summary: 'Start, pause, resume, promote, halt, abort, roll back or acknowledge a deployment',
        description: '`halt` takes an optional body `{"reason": "…"}` (at most 500 characters), kept in the halt reason.',
        tags: TAGS,
        params: ActionParams,
        response: { 200: ref(DeploymentSummary), ...errors({ 404: ['ORCH_NOT_FOUND', 'ORCH_DEPLOYMENT_NOT_FOUND'], 409: ['ORCH_DEPLOYMENT_STATE'] }) },
      },
    }, async (request) => {
      const name = request.params.action;
      const action = (ACTION_ALIASES[name] ?? name) as DeploymentAction;
      if (!(DEPLOYMENT_ACTIONS as readonly string[]).includes(action)) {
        throw new OrchestratorError('ORCH_NOT_FOUND', `unknown action "${name}"; expected one of ${DEPLOYMENT_ACTIONS.join(', ')}`);
      }
      const d = await services.deployments.act(request.params.id, action, action === 'halt' ? { reason: haltReason(request.body) } : {});
      return deploymentSummary(d);
    });
  };
}

/** The reason of an operator's halt: "an operator", or "an operator: <their words>" from an optional `{"reason"}` body. */
function haltReason(body: unknown): string {
  if (body === undefined || body === null) return 'an operator';
  const reason = typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>).reason : undefined;
  const keys = typeof body === 'object' ? Object.keys(body) : [];
  if (typeof reason !== 'string' || reason.trim() === '' || reason.length > 500 || keys.some((k) => k !== 'reason')) {
    throw new OrchestratorError('ORCH_VALIDATION', 'the body of halt is optional; when given it is {"reason": "…"}, a string of 1 to 500 characters');
  }
  return `an operator: ${reason.trim()}`;
}
