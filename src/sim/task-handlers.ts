import { createHash } from 'node:crypto';
import { healthCheckResult, monitorResult, parseMonitorParams } from '../domain/builtin-tasks.js';
import { readingOf, type Reading } from '../domain/metrics.js';
import { readingRisk } from '../domain/risk.js';
import type { Rng } from '../domain/random.js';
import { uniform } from '../domain/random.js';
import type { DeviceInfo, TaskType } from '../domain/types.js';
import type { Clock } from '../util/clock.js';

/** A failure the task reports on purpose. `retryable: false` means retrying cannot help. */
export class TaskFailure extends Error {
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean) {
    super(message);
    this.name = 'TaskFailure';
    this.retryable = retryable;
  }
}

export interface HandlerContext {
  clock: Clock;
  rng: Rng;
  signal: AbortSignal;
  device: () => DeviceInfo;
  agentId: string;
  /** Changes the simulated device's metrics (what a release may do to a device). */
  setMetrics: (change: Partial<Reading>) => void;
  /** The release a simulated device has installed, changed by `deploy`. */
  installed: { version: string | null };
}

export type TaskHandler = (params: Record<string, unknown>, ctx: HandlerContext) => Promise<unknown>;

function isNumberArray(x: unknown): x is number[] {
  return Array.isArray(x) && x.every((v) => typeof v === 'number' && Number.isFinite(v));
}

/** Canonical JSON (sorted keys), so the digest of equal parameters is equal. */
function canonical(x: unknown): string {
  if (Array.isArray(x)) return `[${x.map(canonical).join(',')}]`;
  if (x !== null && typeof x === 'object') {
    const entries = Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(x) ?? 'null';
}

/**
 * `process_data`: with `data` (an array of numbers), its statistics; with
 * anything else, the size and SHA-256 digest of the parameters in canonical
 * form. Bad `data` fails without retry.
 */
export function processData(params: Record<string, unknown>): unknown {
  if ('data' in params) {
    const data = params.data;
    if (!isNumberArray(data)) throw new TaskFailure('parameters.data must be an array of finite numbers', false);
    if (data.length === 0) return { count: 0, sum: 0, mean: null, min: null, max: null, median: null };
    const sorted = data.slice().sort((a, b) => a - b);
    const sum = data.reduce((s, v) => s + v, 0);
    const mid = Math.floor(sorted.length / 2);
    const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
    return {
      count: data.length,
      sum,
      mean: sum / data.length,
      min: sorted[0] as number,
      max: sorted[sorted.length - 1] as number,
      median,
    };
  }
  const text = canonical(params);
  return {
    fields: Object.keys(params).length,
    bytes: Buffer.byteLength(text),
    sha256: createHash('sha256').update(text).digest('hex'),
  };
}

/** Simulated work takes a little time, as real work would. */
async function work(ctx: HandlerContext, loMs: number, hiMs: number): Promise<void> {
  await ctx.clock.sleep(uniform(ctx.rng, loMs, hiMs), ctx.signal);
}

export const SIMULATED_HANDLERS: Record<TaskType, TaskHandler> = {
  async process_data(params, ctx) {
    await work(ctx, 50, 250);
    return processData(params);
  },
  async health_check(_params, ctx) {
    await work(ctx, 20, 100);
    const d = ctx.device();
    return healthCheckResult(d, { hostname: d.name, os_version: d.osVersion });
  },
  async deploy(params, ctx) {
    const version = params.version ?? params.package ?? 'latest';
    if (typeof version !== 'string' || version.length === 0 || version.length > 200) {
      throw new TaskFailure('parameters.version must be a non-empty string', false);
    }
    await work(ctx, 300, 800);
    const previous = ctx.installed.version;
    ctx.installed.version = version;
    return { installed: version, previous };
  },
  async analyze_risk(_params, ctx) {
    await work(ctx, 50, 200);
    return readingRisk(ctx.device());
  },
  /** Same parameters and result as the real agent's monitor (src/domain/builtin-tasks.ts), on the simulated device. */
  async monitor(params, ctx) {
    const parsed = parseMonitorParams(params);
    if (!parsed.ok) throw new TaskFailure(parsed.error, false);
    const p = parsed.value;
    const readings: Reading[] = [];
    for (let i = 0; i < p.samples; i++) {
      if (i > 0) await ctx.clock.sleep(p.intervalSec * 1000, ctx.signal);
      readings.push(readingOf(ctx.device()));
    }
    return monitorResult(p, readings);
  },
};
