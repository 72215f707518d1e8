import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Id as SafeId } from './schemas.js';
import type { Orchestrator } from '../core/orchestrator.js';
import { RolloutController } from '../core/rollouts.js';
import type { DeploymentAction, DeploymentRecord, Execution, GateEvaluation } from '../domain/deployment.js';
import { DEPLOYMENT_ACTIONS, EXECUTION_STATES, outcomeOf, pauseReasonOf } from '../domain/deployment.js';
import { parseDeploymentSpec } from '../domain/deployment-spec.js';
import { OrchestratorError } from '../domain/errors.js';
import { iso } from './views.js';

const Id = Type.Object({ id: SafeId });
const ActionParams = Type.Object({ id: SafeId, action: Type.String({ minLength: 1, maxLength: 40 }) });
const ListQuery = Type.Object(
  { limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })), cursor: Type.Optional(Type.String({ pattern: '^[0-9]{1,16}$' })) },
  { additionalProperties: false },
);
const DetailQuery = Type.Object(
  {
    state: Type.Optional(Type.Union(EXECUTION_STATES.map((s) => Type.Literal(s)))),
    limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,6}$' })),
  },
  { additionalProperties: false },
);
const ImpactQuery = Type.Object({ limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,4}$' })) }, { additionalProperties: false });

/** Action names in URLs: `acknowledge` is also reachable as `acknowledge-and-resume`. */
const ACTION_ALIASES: Record<string, DeploymentAction> = { 'acknowledge-and-resume': 'acknowledge' };

function summary(d: DeploymentRecord) {
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

function executionJson(e: Execution, ring: string | null) {
  return {
    deviceId: e.deviceId,
    ring,
    state: e.state,
    reason: e.reason,
    taskId: e.taskId,
    rollbackTaskId: e.rollbackTaskId,
    baseline: e.baseline,
    observed: e.observed,
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
export function deploymentRoutes(orchestrator: Orchestrator): FastifyPluginAsync {
  const controller = orchestrator.deployments;
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/api/v1/deployments', async (request, reply) => {
      const out = parseDeploymentSpec(request.body, orchestrator.fleet.ringNames());
      if ('errors' in out) throw new OrchestratorError('ORCH_VALIDATION', `invalid deployment: ${out.errors.join('; ')}`, { errors: out.errors });
      const start = (request.body as { start?: boolean }).start === true;
      const d = await controller.create(out.spec, { start });
      return reply.status(201).send({ ...summary(d), plan: d.spec });
    });

    r.get('/api/v1/deployments', { schema: { querystring: ListQuery } }, async (request) => {
      const limit = request.query.limit === undefined ? 50 : Number(request.query.limit);
      if (limit < 1 || limit > 500) throw new OrchestratorError('ORCH_VALIDATION', 'limit must be from 1 to 500');
      const list = await controller.list(limit, request.query.cursor === undefined ? undefined : Number(request.query.cursor));
      const last = list.at(-1);
      return { deployments: list.map(summary), nextCursor: list.length === limit && last ? String(last.seq) : null };
    });

    r.get('/api/v1/deployments/:id', { schema: { params: Id, querystring: DetailQuery } }, async (request) => {
      const view = await controller.get(request.params.id);
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
        ...summary(d),
        plan: d.spec,
        progress: { rings, counts: RolloutController.countStates(view.executions) },
        executions: filtered.slice(0, limit).map((e) => executionJson(e, ringOf(e.stage))),
        executionsTotal: filtered.length,
        evaluations: view.evaluations.map(evaluationJson),
      };
    });

    r.get('/api/v1/deployments/:id/impact', { schema: { params: Id, querystring: ImpactQuery } }, async (request) => {
      const limit = request.query.limit === undefined ? 20 : Number(request.query.limit);
      if (limit < 1 || limit > 1000) throw new OrchestratorError('ORCH_VALIDATION', 'limit must be from 1 to 1000');
      return { devices: await controller.impact(request.params.id, limit) };
    });

    r.post('/api/v1/deployments/:id/:action', { schema: { params: ActionParams } }, async (request) => {
      const name = request.params.action;
      const action = (ACTION_ALIASES[name] ?? name) as DeploymentAction;
      if (!(DEPLOYMENT_ACTIONS as readonly string[]).includes(action)) {
        throw new OrchestratorError('ORCH_NOT_FOUND', `unknown action "${name}"; expected one of ${DEPLOYMENT_ACTIONS.join(', ')}`);
      }
      const d = await controller.act(request.params.id, action);
      return summary(d);
    });
  };
}
