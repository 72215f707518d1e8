/**
 * A device's metrics, one type from the agent protocol through the core, the fleet's registry and the store
 * to the deployment gates: what the device's agent reads (a `Reading`) and the trends the fleet derives
 * from successive readings. The seed's names (`battery_level`, `cpu_usage`, …) exist only at the edges
 * that keep the seed's shapes: the API's views (src/api/views.ts), the results of the seed's task types
 * (builtin-tasks.ts) and the `modify_metrics` instruction below.
 */
export interface Reading {
  /** Battery level, 0–100; null on a machine without a battery (a desktop, a kiosk): no made-up level. */
  battery: number | null;
  /** Whether the battery charges; null exactly when `battery` is. */
  charging: boolean | null;
  /** CPU, memory and disk in use, % (0–100). */
  cpu: number;
  memory: number;
  disk: number;
}

/** What the fleet derives from a device's successive readings, smoothed over about ten minutes. */
export interface Trends {
  /** Battery drain, % per hour, positive when draining; 0 on mains power. */
  drain: number;
  /** CPU points per hour, positive when rising. */
  cpuTrend: number;
}

/** A device's metrics: its latest reading and its trends. */
export interface DeviceMetrics extends Reading, Trends {}

/**
 * Exactly a reading's fields, whatever else the object carries, with `charging` made consistent: null
 * without a battery, false when an agent left it out.
 */
export function readingOf(m: Reading): Reading {
  return { battery: m.battery, charging: m.battery === null ? null : (m.charging ?? false), cpu: m.cpu, memory: m.memory, disk: m.disk };
}

/**
 * Whether the device runs on mains power: charging, or without a battery at all. Such a device's battery
 * level and drain say nothing (the health score, the pre-flight checks and the drain comparison skip them).
 */
export function onMains(m: Reading): boolean {
  return m.battery === null || m.charging === true;
}

/** A metric as `modify_metrics` names it: the seed's names, which agents of every version understand. */
export type MetricName = 'cpu_usage' | 'memory_usage' | 'battery_level' | 'disk_usage';

/** The reading's field each name of `modify_metrics` changes. */
const FIELD = { cpu_usage: 'cpu', memory_usage: 'memory', battery_level: 'battery', disk_usage: 'disk' } as const satisfies Record<MetricName, keyof Reading>;

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

/** The reading after the adjustments, in order: only a reading's fields, whatever else `m` carries. */
export function applyAdjustments(m: Reading, adjustments: readonly MetricAdjustment[]): Reading {
  const next = readingOf(m);
  for (const a of adjustments) {
    if (a.unlessCharging && next.charging) continue;
    const field = FIELD[a.metric];
    const current = next[field];
    // A machine without a battery has no level to change.
    if (current === null) continue;
    if (a.onlyBelow !== undefined && !(current < a.onlyBelow)) continue;
    const raw = a.op === 'add' ? current + a.value : current * a.value;
    next[field] = Math.round(clamp(raw, a.min ?? 0, a.max ?? 100) * 100) / 100;
  }
  return next;
}
