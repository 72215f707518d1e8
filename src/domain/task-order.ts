import type { Asset, AssetSelector, TaskTarget } from './types.js';

/**
 * The order of the queue. A ready task's place is its priority, aged by the
 * time it has been ready: every `agingMs` of waiting counts as one priority
 * level. Because every waiting task ages at the same rate, this is the fixed
 * key `priority − readyAt / agingMs` (higher first), ties broken by submission
 * order. So equal priorities are strictly FIFO, a higher priority always runs
 * first unless a lower one has waited `agingMs` longer per level of
 * difference, and no task waits forever. `agingMs = Infinity` turns aging off.
 */
export function orderKey(priority: number, readyAt: number, agingMs: number): number {
  return Number.isFinite(agingMs) ? priority - readyAt / agingMs : priority;
}

export interface Ordered {
  key: number;
  seq: number;
}

/** True when `a` should run before `b`. */
export function runsBefore(a: Ordered, b: Ordered): boolean {
  return a.key !== b.key ? a.key > b.key : a.seq < b.seq;
}

export const SELECTOR_FIELDS = ['site', 'department', 'manufacturer', 'model', 'osName'] as const;

export function selectorMatches(selector: AssetSelector, asset: Asset | null): boolean {
  for (const field of SELECTOR_FIELDS) {
    const want = selector[field];
    if (want !== undefined && (asset === null || asset[field] !== want)) return false;
  }
  return true;
}

/** A stable name for a target, used to group tasks that the same agents can run. */
export function targetKey(target: TaskTarget | null): string {
  if (target === null) return 'any';
  if ('agentId' in target) return `agent:${target.agentId}`;
  if ('ring' in target) return `ring:${target.ring}`;
  const parts = SELECTOR_FIELDS.filter((f) => target.selector[f] !== undefined).map((f) => `${f}=${target.selector[f] ?? ''}`);
  return `sel:${JSON.stringify(parts)}`;
}
