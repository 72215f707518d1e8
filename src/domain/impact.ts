import type { MetricAdjustment } from './metrics.js';
import type { Rng } from './random.js';
import { uniform } from './random.js';

/**
 * The seed's deployment dynamics, drawn by the master and sent to each agent as
 * a `modify_metrics` instruction. The agent applies them to its own metrics.
 */

/** Start of a deployment: CPU +U(10,50) capped at 95, memory +U(10,30) capped at 90, battery −U(5,15) floored at 5 unless charging. */
export function deploymentImpact(rng: Rng): MetricAdjustment[] {
  return [
    { metric: 'cpu_usage', op: 'add', value: uniform(rng, 10, 50), max: 95 },
    { metric: 'memory_usage', op: 'add', value: uniform(rng, 10, 30), max: 90 },
    { metric: 'battery_level', op: 'add', value: -uniform(rng, 5, 15), min: 5, unlessCharging: true },
  ];
}

/** Completion: CPU −cpu×U(0.3,0.7) floored at 5, memory −mem×U(0.1,0.3) floored at 20, battery +U(2,8) capped at 100 when not charging and below 50. */
export function deploymentRecovery(rng: Rng): MetricAdjustment[] {
  return [
    { metric: 'cpu_usage', op: 'scale', value: 1 - uniform(rng, 0.3, 0.7), min: 5 },
    { metric: 'memory_usage', op: 'scale', value: 1 - uniform(rng, 0.1, 0.3), min: 20 },
    { metric: 'battery_level', op: 'add', value: uniform(rng, 2, 8), max: 100, unlessCharging: true, onlyBelow: 50 },
  ];
}

/** `/simulate_activity`: one burst of ordinary use (CPU ±10, memory ±5, battery −0..3 unless charging). */
export function activityBurst(rng: Rng): MetricAdjustment[] {
  return [
    { metric: 'cpu_usage', op: 'add', value: uniform(rng, -10, 10), min: 5, max: 95 },
    { metric: 'memory_usage', op: 'add', value: uniform(rng, -5, 5), min: 20, max: 90 },
    { metric: 'battery_level', op: 'add', value: -uniform(rng, 0, 3), min: 0, unlessCharging: true },
  ];
}

/** How many of `n` agents a deployment start affects: max(1, floor(n × U(0.3, 0.5))). */
export function affectedCount(rng: Rng, n: number): number {
  return n === 0 ? 0 : Math.max(1, Math.floor(n * uniform(rng, 0.3, 0.5)));
}

/** How many of `n` agents recover on completion: max(1, floor(n × U(0.4, 0.8))). */
export function recoveredCount(rng: Rng, n: number): number {
  return n === 0 ? 0 : Math.max(1, Math.floor(n * uniform(rng, 0.4, 0.8)));
}
