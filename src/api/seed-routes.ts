import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { OrchestratorError } from '../domain/errors.js';
import type { Services } from '../core/services.js';
import { Type } from 'typebox';
import { errors } from './openapi.js';
import { AGENT_STATUSES, Asset, ClusterStatus, SeedDeployment, SeedDeploymentStatus, SeedTask } from './response-schemas.js';
import { DocumentedEnum, Nullable, NullableEnum, ref } from './schema-helpers.js';
import { AssetBody, AssetQuery, DeploymentBody, DeploymentQuery, SubmitTaskBody, TaskParams } from './schemas.js';
import { clusterJson, deploymentJson, metricsSummary, taskJson } from './views.js';

function isEmptyBody(body: unknown): boolean {
  return body === undefined || body === null || (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0);
}

/** The seed's "empty payload" answer, checked before schema validation as the seed did. */
function requireBody(request: FastifyRequest): Promise<void> {
  if (isEmptyBody(request.body)) return Promise.reject(OrchestratorError.of('ORCH_EMPTY_PAYLOAD'));
  return Promise.resolve();
}

function requireDeploymentId(request: FastifyRequest): Promise<void> {
  const body = request.body as { deployment_id?: unknown } | null | undefined;
  if (body === null || typeof body !== 'object' || body.deployment_id === undefined || body.deployment_id === '') {
    return Promise.reject(new OrchestratorError('ORCH_VALIDATION', 'deployment_id required'));
  }
  return Promise.resolve();
}

const TAGS = ['prototype'];
const AssetDetails = Type.Object(
  { asset: ref(Asset), agent_id: Type.Union([Type.String(), Type.Null()]), agent_status: Type.Unsafe<string | null>(NullableEnum(AGENT_STATUSES, { description: 'null: the asset has no agent' })) },
  { additionalProperties: false },
);
const MetricsSummary = Type.Record(Type.String(), Type.Object({ cpu: Type.Number(), battery: Nullable(Type.Number()), memory: Type.Number() }, { additionalProperties: false }), {
  description: 'by agent id',
});

/** The seed's eleven endpoints, with its request and response fields. */
export function seedRoutes(services: Services): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/spawn_agent', {
      schema: {
        operationId: 'spawnAgent',
        summary: 'Spawn a simulated agent',
        tags: TAGS,
        response: { 200: Type.Object({ agent_id: Type.String() }, { additionalProperties: false }) },
      },
    }, async () => ({ agent_id: await services.agents.spawn() }));

    r.post('/add_asset', {
      preValidation: requireBody,
      schema: {
        operationId: 'addAsset',
        summary: 'Store an asset and give it an agent',
        description: 'A new id gets a new agent; a known id replaces the asset and keeps its agent.',
        tags: TAGS,
        body: AssetBody,
        response: { 200: Type.Object({ agent_id: Type.String(), message: Type.String() }, { additionalProperties: false }), ...errors({ 400: ['ORCH_EMPTY_PAYLOAD'] }) },
      },
    }, async (request) => {
      const { agentId, created } = await services.agents.addAsset(request.body);
      return {
        agent_id: agentId,
        message: created ? 'Asset added and agent created with metrics' : 'Asset updated; its agent is unchanged',
      };
    });

    r.post('/submit_task', {
      schema: {
        operationId: 'submitTask',
        summary: 'Submit a task',
        description: 'Answered once the task is committed.',
        tags: TAGS,
        body: SubmitTaskBody,
        response: { 200: Type.Object({ task_id: Type.String() }, { additionalProperties: false }), ...errors({ 400: ['ORCH_UNKNOWN_TASK_TYPE'] }) },
      },
    }, async (request) => {
      const { task_type, parameters, priority } = request.body;
      const [out] = await services.tasks.submit([{
        type: task_type,
        ...(parameters !== undefined ? { parameters: parameters as Record<string, unknown> } : {}),
        ...(priority !== undefined ? { priority } : {}),
      }]);
      return { task_id: (out as { task: { id: string } }).task.id };
    });

    r.get('/list_agents', {
      schema: {
        operationId: 'listAgents',
        summary: 'List the agent ids',
        tags: TAGS,
        response: { 200: Type.Object({ agents: Type.Array(Type.String(), { description: 'every agent not decommissioned, in creation order' }) }, { additionalProperties: false }) },
      },
    }, () => ({ agents: services.agents.ids() }));

    r.get('/cluster_status', {
      schema: { operationId: 'clusterStatus', summary: 'Fleet, task and ring counts', tags: TAGS, response: { 200: ref(ClusterStatus) } },
    }, async () => clusterJson(await services.seed.cluster()));

    r.get('/status/:task_id', {
      schema: {
        operationId: 'taskStatus',
        summary: 'A task, with its result or last error and every attempt',
        tags: TAGS,
        params: TaskParams,
        response: { 200: ref(SeedTask), ...errors({ 404: ['ORCH_TASK_NOT_FOUND'] }) },
      },
    }, async (request) => {
      const { task, attempts } = await services.tasks.get(request.params.task_id);
      return taskJson(task, attempts);
    });

    r.post('/start_deployment', {
      preValidation: requireDeploymentId,
      schema: {
        operationId: 'startDeployment',
        summary: "Start a deployment: 30-50% of online agents take its load",
        tags: TAGS,
        body: DeploymentBody,
        response: {
          200: Type.Object(
            { deployment_id: Type.String(), status: SeedDeploymentStatus, affected_agents: Type.Array(Type.String()), agent_count: Type.Integer({ minimum: 0, description: 'the number affected' }) },
            { additionalProperties: false },
          ),
          ...errors({ 409: ['ORCH_DEPLOYMENT_EXISTS'] }),
        },
      },
    }, async (request) => {
      const d = await services.seed.startDeployment(request.body.deployment_id);
      return { deployment_id: d.id, status: d.status, affected_agents: d.affectedAgents, agent_count: d.affectedAgents.length };
    });

    r.post('/complete_deployment', {
      preValidation: requireDeploymentId,
      schema: {
        operationId: 'completeDeployment',
        summary: 'Complete a deployment: 40-80% of online agents recover',
        tags: TAGS,
        body: DeploymentBody,
        response: { 200: ref(SeedDeployment), ...errors({ 404: ['ORCH_DEPLOYMENT_NOT_FOUND'], 409: ['ORCH_DEPLOYMENT_NOT_ACTIVE', 'ORCH_DEPLOYMENT_STATE'] }) },
      },
    }, async (request) => {
      const d = await services.seed.completeDeployment(request.body.deployment_id);
      return deploymentJson(d, await services.seed.cluster());
    });

    r.get('/deployment_status', {
      schema: {
        operationId: 'deploymentStatus',
        summary: 'Any deployment, with every agent and asset',
        tags: TAGS,
        querystring: DeploymentQuery,
        response: { 200: ref(SeedDeployment), ...errors({ 400: ['ORCH_VALIDATION'], 404: ['ORCH_DEPLOYMENT_NOT_FOUND'] }) },
      },
    }, async (request) => {
      const id = request.query.deployment_id;
      if (id === undefined || id === '') throw new OrchestratorError('ORCH_VALIDATION', 'deployment_id required');
      const d = await services.seed.getDeployment(id);
      return deploymentJson(d, await services.seed.cluster());
    });

    r.get('/asset_details', {
      schema: {
        operationId: 'assetDetails',
        summary: 'Every asset with its agent, or one',
        tags: TAGS,
        querystring: AssetQuery,
        response: {
          200: Type.Union([Type.Object({ assets: Type.Array(AssetDetails) }, { additionalProperties: false }), AssetDetails], { description: 'every asset; with asset_id, that one' }),
          ...errors({ 404: ['ORCH_ASSET_NOT_FOUND'] }),
        },
      },
    }, async (request) => {
      const all = (await services.agents.assets()).map((a) => ({ asset: a.asset, agent_id: a.agentId, agent_status: a.agentStatus }));
      const id = request.query.asset_id;
      if (id === undefined) return { assets: all };
      const one = all.find((a) => a.asset.id === id);
      if (!one) throw OrchestratorError.of('ORCH_ASSET_NOT_FOUND');
      return one;
    });

    r.post('/simulate_activity', {
      schema: {
        operationId: 'simulateActivity',
        summary: 'A burst of use on every online agent',
        tags: TAGS,
        response: {
          200: Type.Object(
            { status: DocumentedEnum(['success']), affected_agents: Type.Array(Type.String()), message: Type.String(), before: MetricsSummary, after: MetricsSummary },
            { additionalProperties: false },
          ),
        },
      },
    }, async () => {
      const { affected, before, after } = await services.seed.simulateActivity();
      const render = (m: typeof before) => Object.fromEntries([...m].map(([id, d]) => [id, metricsSummary(d)]));
      return {
        status: 'success',
        affected_agents: affected,
        message: `Simulated activity on ${affected.length} agents`,
        before: render(before),
        after: render(after),
      };
    });
  };
}
