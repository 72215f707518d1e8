import type { DeviceMetrics } from './types.js';

export type MetricName = 'cpu_usage' | 'memory_usage' | 'battery_level' | 'disk_usage';

/**
 * One change to one metric, as the master instructs an agent (`modify_metrics`).
 * `add` adds `value`; `scale` multiplies by `value`. The result is clamped to
 * [min, max]. `unlessCharging` skips the change while the device charges;
 * `onlyBelow` skips it unless the metric is currently below that level.
 */
export interface MetricAdjustment {
  metric: MetricName;
  op: 'add' | 'scale';
  value: number;
  min?: number;
  max?: number;
  unlessCharging?: boolean;
  onlyBelow?: number;
}

export function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

export function applyAdjustments(m: DeviceMetrics, adjustments: readonly MetricAdjustment[]): DeviceMetrics {
  const next: DeviceMetrics = { ...m };
  for (const a of adjustments) {
    if (a.unlessCharging && next.battery_charging) continue;
    const current = next[a.metric];
    // A machine without a battery has no level to change.
    if (current === null) continue;
    if (a.onlyBelow !== undefined && !(current < a.onlyBelow)) continue;
    const raw = a.op === 'add' ? current + a.value : current * a.value;
    next[a.metric] = Math.round(clamp(raw, a.min ?? 0, a.max ?? 100) * 100) / 100;
  }
  return next;
}

export function pickMetrics(m: DeviceMetrics): DeviceMetrics {
  return {
    battery_level: m.battery_level,
    battery_charging: m.battery_charging,
    cpu_usage: m.cpu_usage,
    memory_usage: m.memory_usage,
    disk_usage: m.disk_usage,
  };
}
