import type { Reading } from './metrics.js';

/**
 * The seed's yes/no health rule, kept exactly for the seed API:
 * `battery > 20 && cpu < 80 && memory < 85` (disk is not considered). A machine without a battery
 * (battery null) passes the battery check: it runs on mains power.
 */
export function isHealthy(m: Reading): boolean {
  return passesSeedRule(m.battery, m.cpu, m.memory);
}

/** The rule itself, on plain numbers (the fleet keeps metrics in columns). */
export function passesSeedRule(battery: number | null, cpu: number, memory: number): boolean {
  return (battery === null || battery > 20) && cpu < 80 && memory < 85;
}

/** Names the failing parts of the rule, each value written by `show`. */
export function seedRuleFailures(battery: number | null, cpu: number, memory: number, show: (x: number) => string = (x) => String(round1(x))): string[] {
  const reasons: string[] = [];
  if (battery !== null && !(battery > 20)) reasons.push(`battery ${show(battery)}% <= 20%`);
  if (!(cpu < 80)) reasons.push(`cpu ${show(cpu)}% >= 80%`);
  if (!(memory < 85)) reasons.push(`memory ${show(memory)}% >= 85%`);
  return reasons;
}

/** Names the failing parts of the seed rule, for task results and logs. */
export function unhealthyReasons(m: Reading): string[] {
  return seedRuleFailures(m.battery, m.cpu, m.memory);
}

export function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
