/**
 * The 0–100 health score of a device. Every factor has a value, a `good` and a
 * `bad` threshold and a weight: its badness runs linearly from 0 at `good` to 1
 * at `bad` (either direction), and it takes `weight × badness` points off 100.
 * With the default weights (which sum to 100) a device bad in every way scores 0.
 *
 * Factors:
 * - battery: level in %, counted only while not charging (a device on power
 *   does not run flat; a machine without a battery is on mains power);
 * - charging: 0 when charging or on mains, 1 when not (on power is the safer place to roll out);
 * - cpu, memory, disk: usage in %;
 * - batteryDrain: % per hour lost while not charging, smoothed over heartbeats;
 * - cpuTrend: CPU points per hour gained, smoothed (a falling CPU counts as 0);
 * - impact: 0–1, how often deployments have hurt this device lately (a
 *   decaying average, see `IMPACT_DECAY`).
 */
import { onMains, type DeviceMetrics } from './metrics.js';

export const HEALTH_FACTORS = ['battery', 'charging', 'cpu', 'memory', 'disk', 'batteryDrain', 'cpuTrend', 'impact'] as const;
export type HealthFactor = (typeof HEALTH_FACTORS)[number];

export interface Threshold {
  good: number;
  bad: number;
}

export interface HealthScoreConfig {
  weights: Record<HealthFactor, number>;
  thresholds: Record<HealthFactor, Threshold>;
}

export const DEFAULT_HEALTH_SCORE_CONFIG: HealthScoreConfig = {
  weights: { battery: 25, charging: 5, cpu: 20, memory: 20, disk: 10, batteryDrain: 5, cpuTrend: 5, impact: 10 },
  thresholds: {
    battery: { good: 80, bad: 10 },
    charging: { good: 0, bad: 1 },
    cpu: { good: 30, bad: 95 },
    memory: { good: 50, bad: 95 },
    disk: { good: 60, bad: 98 },
    batteryDrain: { good: 5, bad: 40 },
    cpuTrend: { good: 0, bad: 60 },
    impact: { good: 0, bad: 1 },
  },
};

/** Each deployment outcome moves `impact` this far towards 1 (hurt) or 0 (unharmed). */
export const IMPACT_DECAY = 0.3;

/**
 * What the score is computed from: the device's metrics and how deployments have treated it. A device on
 * mains power (charging, or without a battery) is not scored on its battery level, charging or drain.
 */
export interface HealthInputs extends DeviceMetrics {
  /** 0–1: deployment outcomes, each moving it IMPACT_DECAY towards 1 (hurt) or 0 (unharmed). */
  impact: number;
}

export interface FactorScore {
  factor: HealthFactor;
  value: number;
  weight: number;
  /** 0 (at or better than `good`) to 1 (at or worse than `bad`). */
  badness: number;
  /** Points this factor takes off 100 (zero or negative). */
  contribution: number;
}

export interface HealthScore {
  score: number;
  factors: FactorScore[];
}

export function badness(value: number, t: Threshold): number {
  if (!Number.isFinite(value)) return 0;
  const b = (value - t.good) / (t.bad - t.good);
  return b <= 0 ? 0 : b >= 1 ? 1 : b;
}

function factorValue(f: HealthFactor, x: HealthInputs): number {
  switch (f) {
    case 'battery':
      // Without a battery, as full: on mains power.
      return x.battery ?? 100;
    case 'charging':
      return onMains(x) ? 0 : 1;
    case 'cpu':
      return x.cpu;
    case 'memory':
      return x.memory;
    case 'disk':
      return x.disk;
    case 'batteryDrain':
      return onMains(x) ? 0 : Math.max(0, x.drain);
    case 'cpuTrend':
      return Math.max(0, x.cpuTrend);
    case 'impact':
      return x.impact;
  }
}

/** The score rounded to 0.1, for the hot path (no per-factor objects). */
export function healthScore(x: HealthInputs, c: HealthScoreConfig): number {
  const w = c.weights;
  const t = c.thresholds;
  let penalty = 0;
  if (!onMains(x) && x.battery !== null) {
    penalty += w.battery * badness(x.battery, t.battery);
    penalty += w.charging * badness(1, t.charging);
    penalty += w.batteryDrain * badness(Math.max(0, x.drain), t.batteryDrain);
  } else {
    penalty += w.charging * badness(0, t.charging);
  }
  penalty += w.cpu * badness(x.cpu, t.cpu);
  penalty += w.memory * badness(x.memory, t.memory);
  penalty += w.disk * badness(x.disk, t.disk);
  penalty += w.cpuTrend * badness(Math.max(0, x.cpuTrend), t.cpuTrend);
  penalty += w.impact * badness(x.impact, t.impact);
  return clampScore(100 - penalty);
}

/** The score with every factor's value and contribution, for display. */
export function explainHealth(x: HealthInputs, c: HealthScoreConfig): HealthScore {
  const factors = HEALTH_FACTORS.map((factor): FactorScore => {
    const value = factorValue(factor, x);
    const weight = c.weights[factor];
    // A charging device's battery level does not count.
    const b = factor === 'battery' && onMains(x) ? 0 : badness(value, c.thresholds[factor]);
    return { factor, value: round2(value), weight, badness: round2(b), contribution: round2(b === 0 ? 0 : -weight * b) };
  });
  return { score: healthScore(x, c), factors };
}

function clampScore(s: number): number {
  const r = Math.round(s * 10) / 10;
  return r < 0 ? 0 : r > 100 ? 100 : r;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/**
 * Checks a partial configuration and merges it over the defaults. Returns the
 * problems found (empty when it is valid).
 */
export function mergeHealthScoreConfig(
  partial: { weights?: Partial<Record<string, unknown>>; thresholds?: Partial<Record<string, unknown>> },
  base: HealthScoreConfig = DEFAULT_HEALTH_SCORE_CONFIG,
): { config: HealthScoreConfig; errors: string[] } {
  const errors: string[] = [];
  const weights = { ...base.weights };
  const thresholds = { ...base.thresholds };
  const known = new Set<string>(HEALTH_FACTORS);
  for (const [k, v] of Object.entries(partial.weights ?? {})) {
    if (!known.has(k)) errors.push(`weights.${k}: unknown factor; expected one of ${HEALTH_FACTORS.join(', ')}`);
    else if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 100) errors.push(`weights.${k}: must be a number from 0 to 100`);
    else weights[k as HealthFactor] = v;
  }
  for (const [k, v] of Object.entries(partial.thresholds ?? {})) {
    if (!known.has(k)) {
      errors.push(`thresholds.${k}: unknown factor; expected one of ${HEALTH_FACTORS.join(', ')}`);
      continue;
    }
    const t = v as Partial<Threshold> | null;
    const merged = { ...thresholds[k as HealthFactor], ...(typeof t === 'object' && t !== null ? t : {}) };
    if (typeof t !== 'object' || t === null || !Number.isFinite(merged.good) || !Number.isFinite(merged.bad) || typeof merged.good !== 'number' || typeof merged.bad !== 'number') {
      errors.push(`thresholds.${k}: must be an object { good, bad } of finite numbers`);
    } else if (merged.good === merged.bad) {
      errors.push(`thresholds.${k}: good and bad must differ`);
    } else {
      thresholds[k as HealthFactor] = merged;
    }
  }
  return { config: { weights, thresholds }, errors };
}
