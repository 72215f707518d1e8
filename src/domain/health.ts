import type { DeviceMetrics } from './types.js';

/**
 * The seed's yes/no health rule, kept exactly for the seed API:
 * `battery > 20 && cpu < 80 && memory < 85` (disk is not considered).
 */
export function isHealthy(m: DeviceMetrics): boolean {
  return m.battery_level > 20 && m.cpu_usage < 80 && m.memory_usage < 85;
}

/** Names the failing parts of the seed rule, for ring-move reasons and logs. */
export function unhealthyReasons(m: DeviceMetrics): string[] {
  const reasons: string[] = [];
  if (!(m.battery_level > 20)) reasons.push(`battery ${round1(m.battery_level)}% <= 20%`);
  if (!(m.cpu_usage < 80)) reasons.push(`cpu ${round1(m.cpu_usage)}% >= 80%`);
  if (!(m.memory_usage < 85)) reasons.push(`memory ${round1(m.memory_usage)}% >= 85%`);
  return reasons;
}

export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
