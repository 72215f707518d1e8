import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Orchestrator } from '../core/orchestrator.js';
import { AgentParams } from './schemas.js';
import { agentJson, iso } from './views.js';

/** The versioned REST API. It grows issue by issue; the seed's routes stay as they are. */
export function v1Routes(orchestrator: Orchestrator): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();

    r.get('/healthz', () => ({ status: orchestrator.isRunning ? 'ok' : 'stopping', master_id: orchestrator.masterId }));

    // Ready to take changes: running, and the store commits. 503 while writes fail (the orchestrator recovers by itself).
    r.get('/readyz', (_request, reply) => {
      const storage = orchestrator.storage.status();
      const ready = orchestrator.isRunning && storage.writable;
      const body = {
        status: ready ? 'ready' : 'not_ready',
        master_id: orchestrator.masterId,
        storage: { writable: storage.writable, since: iso(storage.since), error: storage.writable ? null : storage.error, outages: storage.outages, recoveries: storage.recoveries },
      };
      if (ready) return body;
      const why = !orchestrator.isRunning ? 'the orchestrator is not running' : `the store cannot commit changes (${storage.error ?? 'writes are failing'})`;
      return reply.status(503).header('retry-after', '2').send({ ...body, error: why, code: orchestrator.isRunning ? 'ORCH_STORAGE_UNAVAILABLE' : 'ORCH_SHUTTING_DOWN' });
    });

    r.get('/api/v1/agents', async () => ({ agents: (await orchestrator.agentViews()).map(agentJson) }));

    r.get('/api/v1/agents/:id', { schema: { params: AgentParams } }, async (request) =>
      agentJson(await orchestrator.agentView(request.params.id)),
    );

    r.get('/api/v1/agents/:id/ring-history', { schema: { params: AgentParams } }, async (request) => {
      await orchestrator.agentView(request.params.id);
      const moves = await orchestrator.ringMoves(request.params.id);
      return { moves: moves.map((m) => ({ from: m.from, to: m.to, reason: m.reason, at: iso(m.at) })) };
    });

    r.delete('/api/v1/agents/:id', { schema: { params: AgentParams } }, async (request) => {
      await orchestrator.removeAgent(request.params.id);
      return { agent_id: request.params.id, status: 'decommissioned' };
    });
  };
}
