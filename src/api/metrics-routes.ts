import type { FastifyPluginAsync } from 'fastify';
import type { Histogram as HistogramType } from 'prom-client';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Services } from '../core/services.js';
import { EXECUTION_STATES } from '../domain/deployment.js';

/**
 * What caused a ring move, from its reason's first words (the planner's and the fleet's wording): a small,
 * fixed set, so that `orchestrator_ring_moves_total` has no label per device or per score.
 */
export function moveCause(reason: string): string {
  if (reason.startsWith('first heartbeat')) return 'placement';
  if (reason.startsWith('health policy')) return 'rebalance';
  if (reason.startsWith('health changed')) return 'health';
  if (reason.startsWith('swapped with')) return 'swap';
  if (reason.startsWith('representative policy')) return 'representative';
  if (reason.startsWith('held')) return 'held';
  if (reason.startsWith('pinned to') && reason.includes('by rule')) return 'pin_rule';
  if (reason.includes('by an operator')) return 'operator';
  if (reason.startsWith('ring ') && reason.includes('was removed')) return 'configuration';
  return 'other';
}

let processRegistry: Registry | null = null;

/** prom-client's default metrics (CPU, memory, heap, event loop lag, GC): one set per process, however many apps it serves. */
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export interface MetricsOptions {
  services: Pick<Services, 'fleet' | 'tasks' | 'deployments' | 'status' | 'events'>;
  missingAfterMs: number;
  /** Open event streams now. */
  streams: () => number;
}

/**
 * The Prometheus registry of one orchestrator: the process' default metrics, and the fleet's, the queue's and
 * the deployments' computed at scrape time from the incremental aggregates (never by walking the fleet), plus
 * counters and a histogram fed by the event bus. No label names a device.
 */
export function orchestratorMetrics({ services, missingAfterMs, streams }: MetricsOptions): { registry: Registry; stop: () => void } {
  const registry = new Registry();
  const registers = [registry];

  new Gauge({
    name: 'orchestrator_devices',
    help: 'Devices by ring (unassigned: in none) and connectivity; decommissioned ones have ring ""',
    labelNames: ['ring', 'connectivity'] as const,
    registers,
    collect() {
      this.reset();
      const rings = services.fleet.rings();
      for (const r of rings.rings) {
        this.set({ ring: r.name, connectivity: 'online' }, r.online);
        this.set({ ring: r.name, connectivity: 'offline' }, r.size - r.online);
      }
      const census = services.fleet.census(services.status.now() - missingAfterMs);
      const inRings = rings.rings.reduce((n, r) => n + r.online, 0);
      const offlineInRings = rings.rings.reduce((n, r) => n + r.size - r.online, 0);
      this.set({ ring: 'unassigned', connectivity: 'online' }, census.online - inRings);
      this.set({ ring: 'unassigned', connectivity: 'offline' }, census.offline - offlineInRings);
      this.set({ ring: '', connectivity: 'decommissioned' }, census.decommissioned);
    },
  });
  new Gauge({
    name: 'orchestrator_devices_missing',
    help: 'Offline devices silent for longer than MISSING_AFTER',
    registers,
    collect() {
      this.set(services.fleet.census(services.status.now() - missingAfterMs).missing);
    },
  });
  new Gauge({
    name: 'orchestrator_devices_unhealthy',
    help: "Devices failing the seed's health rule, by ring",
    labelNames: ['ring'] as const,
    registers,
    collect() {
      this.reset();
      for (const r of services.fleet.rings().rings) this.set({ ring: r.name }, r.health.unhealthy);
    },
  });
  new Gauge({
    name: 'orchestrator_ring_target_devices',
    help: "Each ring's target size under its configured share, min and max",
    labelNames: ['ring'] as const,
    registers,
    collect() {
      this.reset();
      for (const r of services.fleet.rings().rings) this.set({ ring: r.name }, r.target);
    },
  });
  new Gauge({
    name: 'orchestrator_ring_health_score',
    help: "Quantiles (0.1, 0.5, 0.9) of each ring's device health scores (0-100)",
    labelNames: ['ring', 'quantile'] as const,
    registers,
    collect() {
      this.reset();
      for (const r of services.fleet.rings().rings) {
        const { p10, p50, p90 } = r.health;
        if (p10 !== null) this.set({ ring: r.name, quantile: '0.1' }, p10);
        if (p50 !== null) this.set({ ring: r.name, quantile: '0.5' }, p50);
        if (p90 !== null) this.set({ ring: r.name, quantile: '0.9' }, p90);
      }
    },
  });
  let heartbeatsSeen = 0;
  new Counter({
    name: 'orchestrator_heartbeats_total',
    help: 'Agent heartbeats applied',
    registers,
    collect() {
      const n = services.status.heartbeats();
      if (n > heartbeatsSeen) this.inc(n - heartbeatsSeen);
      heartbeatsSeen = n;
    },
  });
  new Gauge({
    name: 'orchestrator_tasks',
    help: 'Tasks by status',
    labelNames: ['status'] as const,
    registers,
    collect() {
      for (const [status, n] of Object.entries(services.tasks.countsByStatus())) this.set({ status }, n);
    },
  });
  const durations = new Histogram({
    name: 'orchestrator_task_duration_seconds',
    help: "Time from a task's last start to its end, by type and outcome (completed, failed)",
    labelNames: ['type', 'outcome'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers,
  });
  new Gauge({
    name: 'orchestrator_deployment_info',
    help: 'Each deployment not ended (1), with its status, its current ring and its phase there',
    labelNames: ['deployment', 'status', 'ring', 'phase'] as const,
    registers,
    collect() {
      this.reset();
      for (const { deployment: d } of services.deployments.activeProgress()) {
        this.set({ deployment: d.id, status: d.status, ring: d.spec.stages[d.stage]?.ring ?? '', phase: d.spec.stages.length === 0 ? '' : d.phase }, 1);
      }
    },
  });
  new Gauge({
    name: 'orchestrator_deployment_executions',
    help: 'Executions of each deployment not ended, by state',
    labelNames: ['deployment', 'state'] as const,
    registers,
    collect() {
      this.reset();
      for (const p of services.deployments.activeProgress()) for (const state of EXECUTION_STATES) this.set({ deployment: p.deployment.id, state }, p.counts[state]);
    },
  });
  const gates = new Counter({ name: 'orchestrator_gate_evaluations_total', help: 'Gate evaluations by result (pass, fail, wait, override, skip, insufficient_evidence)', labelNames: ['result'] as const, registers });
  const moves = new Counter({ name: 'orchestrator_ring_moves_total', help: 'Devices moved between rings, by cause (placement, rebalance, health, swap, representative, held, pin_rule, operator, configuration, other)', labelNames: ['reason'] as const, registers });
  new Gauge({
    name: 'orchestrator_storage_writable',
    help: '1 while the store commits, 0 while writes fail',
    registers,
    collect() {
      this.set(services.status.storage.writable ? 1 : 0);
    },
  });
  new Gauge({
    name: 'orchestrator_event_streams',
    help: 'Open event streams (GET /api/v1/events)',
    registers,
    collect() {
      this.set(streams());
    },
  });

  // One child per (type, outcome), kept: a task's end costs a bucket search, not a label lookup.
  const children = new Map<string, HistogramType.Internal<'type' | 'outcome'>>();
  const observe = (type: string, outcome: string, startedAt: number | null, completedAt: number | null): void => {
    if (startedAt === null || completedAt === null) return;
    const key = `${type}\u0000${outcome}`;
    let child = children.get(key);
    if (child === undefined) {
      child = durations.labels(type, outcome);
      children.set(key, child);
    }
    child.observe(Math.max(0, completedAt - startedAt) / 1000);
  };
  const offs = [
    services.events.on('task.completed', ({ task }) => observe(task.type, 'completed', task.startedAt, task.completedAt)),
    services.events.on('task.failed', ({ task }) => observe(task.type, 'failed', task.startedAt, task.completedAt)),
    services.events.on('deployment.gate_evaluated', ({ evaluation }) => gates.inc({ result: evaluation.verdict })),
    services.events.on('ring.moved', ({ move }) => moves.inc({ reason: moveCause(move.reason) })),
  ];
  return {
    registry: Registry.merge([processMetrics(), registry]),
    stop: () => {
      for (const off of offs) off();
    },
  };
}

/** `GET /metrics`: the Prometheus exposition (access: viewer, or open on loopback as the API is). */
export function metricsRoutes(registry: Registry): FastifyPluginAsync {
  // eslint-disable-next-line @typescript-eslint/require-await
  return async (app) => {
    app.get('/metrics', {
      schema: {
        operationId: 'metrics',
        summary: "Prometheus' scrape: the process, the fleet, the queue and the deployments (text format 0.0.4)",
        description: 'The metrics and their labels are listed in docs/api.md. No label names a device.',
        tags: ['metrics'],
        response: { 200: { description: "Prometheus' text exposition format", content: { 'text/plain': { schema: { type: 'string' } } } } },
      },
    }, async (_request, reply) => {
      const text = await registry.metrics();
      return reply.type(registry.contentType).send(text);
    });
  };
}
