import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Services } from '../core/services.js';
import { TASK_STATUSES } from '../domain/types.js';
import { deploymentSummary } from './deployment-routes.js';
import { DeploymentSummary, DeploymentSummaryProperties, ExecutionCounts } from './deployment-schemas.js';
import { Count, Nullable, ref } from './schema-helpers.js';
import { iso } from './views.js';

/** Recent deployments looked at for halts. */
const RECENT = 20;

const Census = Type.Object(
  {
    total: Count,
    online: Count,
    offline: Count,
    missing: Type.Integer({ minimum: 0, description: 'offline devices silent for longer than `missingAfterSeconds`' }),
    missingAfterSeconds: Count,
    decommissioned: Count,
    unscored: Type.Integer({ minimum: 0, description: 'devices without a health score yet' }),
    unhealthy: Type.Integer({ minimum: 0, description: "devices failing the seed's health rule" }),
    health: Type.Array(Count, { description: 'devices by health score in 20 bands of 5 points: 0–5, 5–10, … 95–100' }),
  },
  { additionalProperties: false },
);

const RingLine = Type.Object(
  {
    name: Type.String(),
    size: Count,
    target: Count,
    online: Count,
    p10: Nullable(Type.Number()),
    p50: Nullable(Type.Number()),
    p90: Nullable(Type.Number()),
    unhealthy: Count,
  },
  { additionalProperties: false },
);

const Counts = <T extends readonly string[]>(keys: T) => Type.Object(Object.fromEntries(keys.map((k) => [k, Count])), { additionalProperties: false });

const Overview = Type.Object(
  {
    at: Type.String({ format: 'date-time' }),
    devices: Census,
    rings: Type.Array(RingLine),
    unassigned: Count,
    tasks: Counts(TASK_STATUSES),
    deployments: Type.Array(
      Type.Object({ ...DeploymentSummaryProperties, progress: Type.Object({ devices: Count, counts: ref(ExecutionCounts) }, { additionalProperties: false }) }, { additionalProperties: false }),
      { description: 'every deployment not ended, with its executions by state' },
    ),
    halts: Type.Array(ref(DeploymentSummary), { description: `of the last ${RECENT} deployments, those halted (or paused by a gate or for lack of evidence), newest first` }),
  },
  { additionalProperties: false },
);

/** `GET /api/v1/overview`: the dashboard's first page in one answer, from the incremental aggregates (no request walks the fleet). */
export function overviewRoutes(services: Pick<Services, 'fleet' | 'tasks' | 'deployments' | 'status'>, missingAfterMs: number): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    const r = app.withTypeProvider<TypeBoxTypeProvider>();
    r.get('/api/v1/overview', {
      schema: {
        operationId: 'overview',
        summary: 'The fleet at a glance: devices online, offline and missing, health, rings, the queue, deployments and halts',
        tags: ['fleet'],
        response: { 200: Overview },
      },
    }, async () => {
      const now = services.status.now();
      const fleet = services.fleet;
      const rings = fleet.rings();
      const recent = await services.deployments.list(RECENT);
      return {
        at: iso(now),
        devices: { ...fleet.census(now - missingAfterMs), missingAfterSeconds: Math.round(missingAfterMs / 1000) },
        rings: rings.rings.map((g) => ({ name: g.name, size: g.size, target: g.target, online: g.online, p10: g.health.p10, p50: g.health.p50, p90: g.health.p90, unhealthy: g.health.unhealthy })),
        unassigned: rings.unassigned,
        tasks: services.tasks.countsByStatus(),
        deployments: services.deployments
          .activeProgress()
          .sort((a, b) => b.deployment.seq - a.deployment.seq)
          .map((p) => ({ ...deploymentSummary(p.deployment), progress: { devices: p.devices, counts: p.counts } })),
        halts: recent.filter((d) => d.haltReason !== null).map(deploymentSummary),
      };
    });
  };
}
