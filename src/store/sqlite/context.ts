import type Database from 'better-sqlite3';
import { fromSqliteError } from './errors.js';
import type { Step, StepResult } from './writer.js';

/** What the aggregates of the SQLite adapter share: the reading connection, the writer, the meta table. */
export interface SqliteContext {
  /** The reading connection (writes go through `write`). */
  readonly db: Database.Database;
  /**
   * Queues a write (its steps run in one transaction) to the writer; resolves once it is committed. `row`
   * names the row it rewrites, so that the writer may skip a queued write a later one supersedes.
   */
  write(steps: Step[], row?: { key: string; supersedable: boolean; full: boolean }): Promise<StepResult[]>;
  getMeta(key: string): Promise<string | null>;
}

/** Runs a synchronous read and hands its outcome over as a promise (a failure as the store's error). */
export function run<T>(body: () => T): Promise<T> {
  try {
    return Promise.resolve(body());
  } catch (err) {
    return Promise.reject(fromSqliteError(err));
  }
}
