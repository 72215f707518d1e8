import type { Step, StepResult } from './write-op.js';

/**
 * What the aggregates of an SQL adapter (SQLite, PostgreSQL) are written against. Their SQL is the
 * dialect both understand, with `?` placeholders (the PostgreSQL adapter numbers them); reads see
 * committed data; writes go to the adapter's writer, in order, and resolve once committed.
 */
export interface SqlContext {
  /** Every row a read returns. */
  all<R>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** The first row a read returns, or undefined. */
  one<R>(sql: string, params?: readonly unknown[]): Promise<R | undefined>;
  /**
   * Queues a write (its steps run in one transaction) to the writer; resolves once it is committed. `row`
   * names the row it rewrites, so that the writer may skip a queued write a later one supersedes.
   */
  write(steps: Step[], row?: { key: string; supersedable: boolean; full: boolean }): Promise<StepResult[]>;
  getMeta(key: string): Promise<string | null>;
}

/** A list filter as SQL: the conditions that apply, joined, and their parameters. */
export function whereOf(conditions: readonly (readonly [sql: string, value: unknown] | null)[]): { where: string; params: unknown[] } {
  const applied = conditions.filter((c): c is readonly [string, unknown] => c !== null);
  return { where: applied.length === 0 ? '' : `WHERE ${applied.map(([sql]) => sql).join(' AND ')}`, params: applied.map(([, v]) => v) };
}
