import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { OrchestratorError } from '../domain/errors.js';
import type { Orchestrator } from '../core/orchestrator.js';
import { AssetBody, AssetQuery, DeploymentBody, DeploymentQuery, SubmitTaskBody, TaskParams } from './schemas.js';
import { clusterJson, deploymentJson, metricsSummary, taskJson } from './views.js';

function isEmptyBody(body: unknown): boolean {
  return body === undefined || body === null || (typeof body === 'object' && !Array.isArray(body) && Object.keys(body).length === 0);
}

/** The seed's "empty payload" answer, checked before schema validation as the seed did. */
function requireBody(request: FastifyRequest): Promise<void> {
  if (isEmptyBody(request.body)) return Promise.reject(new OrchestratorError('ORCH_EMPTY_PAYLOAD', 'empty payload'));
  return Promise.resolve();
}

function requireDeploymentId(request: FastifyRequest): Promise<void> {
  const body = request.body as { deployment_id?: unknown } | null | undefined;
  if (body === null || typeof body !== 'object' || body.deployment_id === undefined || body.deployment_id === '') {
    return Promise.reject(new OrchestratorError('ORCH_VALIDATION', 'deployment_id required'));
  }
  return Promise.resolve();
}

/** The seed's eleven endpoints, with its request and response fields. */
export function seedRoutes(orchestrator: Orchestrator): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.post('/spawn_agent', async () => ({ agent_id: await orchestrator.spawnAgent() }));

    r.post('/add_asset', { preValidation: requireBody, schema: { body: AssetBody } }, async (request) => {
      const { agentId, created } = await orchestrator.addAsset(request.body);
      return {
        agent_id: agentId,
        message: created ? 'Asset added and agent created with metrics' : 'Asset updated; its agent is unchanged',
      };
    });

    r.post('/submit_task', { schema: { body: SubmitTaskBody } }, async (request) => {
      const { task_type, parameters, priority } = request.body;
      const task = await orchestrator.submitTask({
        type: task_type,
        ...(parameters !== undefined ? { parameters: parameters as Record<string, unknown> } : {}),
        ...(priority !== undefined ? { priority } : {}),
      });
      return { task_id: task.id };
    });

    r.get('/list_agents', () => ({ agents: orchestrator.listAgentIds() }));

    r.get('/cluster_status', async () => clusterJson(await orchestrator.cluster()));

    r.get('/status/:task_id', { schema: { params: TaskParams } }, async (request) => {
      const { task, attempts } = await orchestrator.getTask(request.params.task_id);
      return taskJson(task, attempts);
    });

    r.post('/start_deployment', { preValidation: requireDeploymentId, schema: { body: DeploymentBody } }, async (request) => {
      const d = await orchestrator.startDeployment(request.body.deployment_id);
      return { deployment_id: d.id, status: d.status, affected_agents: d.affectedAgents, agent_count: d.affectedAgents.length };
    });

    r.post('/complete_deployment', { preValidation: requireDeploymentId, schema: { body: DeploymentBody } }, async (request) => {
      const d = await orchestrator.completeDeployment(request.body.deployment_id);
      return deploymentJson(d, await orchestrator.cluster());
    });

    r.get('/deployment_status', { schema: { querystring: DeploymentQuery } }, async (request) => {
      const id = request.query.deployment_id;
      if (id === undefined || id === '') throw new OrchestratorError('ORCH_VALIDATION', 'deployment_id required');
      const d = await orchestrator.getDeployment(id);
      return deploymentJson(d, await orchestrator.cluster());
    });

    r.get('/asset_details', { schema: { querystring: AssetQuery } }, async (request) => {
      const all = (await orchestrator.assets()).map((a) => ({ asset: a.asset, agent_id: a.agentId, agent_status: a.agentStatus }));
      const id = request.query.asset_id;
      if (id === undefined) return { assets: all };
      const one = all.find((a) => a.asset.id === id);
      if (!one) throw new OrchestratorError('ORCH_ASSET_NOT_FOUND', 'asset not found');
      return one;
    });

    r.post('/simulate_activity', async () => {
      const { affected, before, after } = await orchestrator.simulateActivity();
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
