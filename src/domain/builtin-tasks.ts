import { passesSeedRule, round1, seedRuleFailures } from './health.js';
import type { Reading } from './metrics.js';

/**
 * The two task types every agent runs itself, `health_check` and `monitor`: one meaning of their
 * parameters and one shape of their results, for the simulated agent (src/sim) and the agent on a real
 * machine (src/agent) alike. Documented in docs/api.md (task types) and docs/agent-protocol.md.
 */

/**
 * A reading of a device's metrics in a task's result, named as the seed API names a device's metrics (the
 * domain's `Reading`, in the seed's names). A machine without a battery reads `battery_level: null` and
 * `battery_charging: null`: no made-up level.
 */
export interface MetricsReading {
  battery_level: number | null;
  battery_charging: boolean | null;
  cpu_usage: number;
  memory_usage: number;
  disk_usage: number;
}

export interface HealthCheckResult extends MetricsReading {
  hostname: string;
  os_version: string;
  /** The seed's rule: battery > 20, CPU < 80, memory < 85 (a machine without a battery runs on mains power). */
  is_healthy: boolean;
  /** The failing parts of that rule, empty when healthy. */
  issues: string[];
}

export interface MonitorParams {
  durationSec: number;
  intervalSec: number;
  /** How many readings: one at once, then one every `intervalSec` while within `durationSec`. */
  samples: number;
}

export interface MonitorResult {
  durationSec: number;
  intervalSec: number;
  samples: MetricsReading[];
  /** Means over the samples, to 0.1; `battery_level` is null when no sample had a battery. */
  average: { battery_level: number | null; cpu_usage: number; memory_usage: number; disk_usage: number };
}

/** Bounds of monitor's parameters: at most 5 minutes, and at most 601 readings (300 s every 0.5 s). */
export const MONITOR_LIMITS = {
  durationSec: { min: 0, max: 300, default: 5 },
  intervalSec: { min: 0.5, max: 60, default: 1 },
} as const;

/**
 * Names monitor took before its parameters were made one for every agent (the simulated agent read a
 * count and milliseconds). Refused rather than ignored: ignored, they would turn into a 5-second monitor
 * without a word.
 */
const FORMER_MONITOR_PARAMS = ['samples', 'interval_ms'];

export type Checked<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * Monitor's parameters: `durationSec` (0–300, default 5) and `intervalSec` (0.5–60, default 1), numbers
 * of seconds. Readings are taken at 0, intervalSec, 2 × intervalSec, … up to durationSec:
 * ⌊durationSec / intervalSec⌋ + 1 of them, so `durationSec: 0` is one reading at once. Other keys are
 * left alone (a deployment adds `_deployment`). A bad value is the caller's to report as a failure that
 * retrying cannot fix.
 */
export function parseMonitorParams(params: Record<string, unknown>): Checked<MonitorParams> {
  for (const key of FORMER_MONITOR_PARAMS) {
    if (key in params) return { ok: false, error: `parameters.${key} is not a monitor parameter: monitor takes durationSec and intervalSec (seconds)` };
  }
  const read = (key: 'durationSec' | 'intervalSec'): number | string => {
    const { min, max, default: fallback } = MONITOR_LIMITS[key];
    const v = params[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) return `parameters.${key} must be a number of seconds from ${min} to ${max}`;
    return v;
  };
  const durationSec = read('durationSec');
  if (typeof durationSec === 'string') return { ok: false, error: durationSec };
  const intervalSec = read('intervalSec');
  if (typeof intervalSec === 'string') return { ok: false, error: intervalSec };
  // The small epsilon keeps 0.3 / 0.1 (2.9999…) from losing the last reading to floating point.
  const samples = Math.floor(durationSec / intervalSec + 1e-9) + 1;
  return { ok: true, value: { durationSec, intervalSec, samples } };
}

export function healthCheckResult(m: Reading, about: { hostname: string; os_version: string }): HealthCheckResult {
  // As the orchestrator scores it: a machine without a battery is on mains power, so full.
  const battery = m.battery ?? 100;
  return {
    ...seedReading(m),
    hostname: about.hostname,
    os_version: about.os_version,
    is_healthy: passesSeedRule(battery, m.cpu, m.memory),
    issues: seedRuleFailures(battery, m.cpu, m.memory),
  };
}

export function monitorResult(p: MonitorParams, samples: readonly Reading[]): MonitorResult {
  const mean = (xs: number[]): number => (xs.length === 0 ? 0 : round1(xs.reduce((a, x) => a + x, 0) / xs.length));
  const batteries = samples.map((s) => s.battery).filter((b): b is number => b !== null);
  return {
    durationSec: p.durationSec,
    intervalSec: p.intervalSec,
    samples: samples.map(seedReading),
    average: {
      battery_level: batteries.length === 0 ? null : mean(batteries),
      cpu_usage: mean(samples.map((s) => s.cpu)),
      memory_usage: mean(samples.map((s) => s.memory)),
      disk_usage: mean(samples.map((s) => s.disk)),
    },
  };
}

/** A reading in the seed's names: exactly its fields, whatever else the object carries (a simulated device carries more). */
function seedReading(m: Reading): MetricsReading {
  return { battery_level: m.battery, battery_charging: m.charging, cpu_usage: m.cpu, memory_usage: m.memory, disk_usage: m.disk };
}
