import type Database from 'better-sqlite3';
import type { SqlContext } from '../sql/context.js';
import type { Step, StepResult } from '../sql/write-op.js';
import { fromSqliteError } from './errors.js';

/**
 * The SQL context of the SQLite adapter: reads run at once on the reading connection (each statement
 * prepared once), writes go to the writer.
 */
export function sqliteContext(
  db: Database.Database,
  write: (steps: Step[], row?: { key: string; supersedable: boolean; full: boolean }) => Promise<StepResult[]>,
  getMeta: (key: string) => Promise<string | null>,
): SqlContext {
  const prepared = new Map<string, Database.Statement<unknown[], unknown>>();
  const statement = (sql: string): Database.Statement<unknown[], unknown> => {
    let s = prepared.get(sql);
    if (!s) {
      s = db.prepare<unknown[], unknown>(sql);
      prepared.set(sql, s);
    }
    return s;
  };
  return {
    all: <R>(sql: string, params: readonly unknown[] = []) => run(() => statement(sql).all(...params) as R[]),
    one: <R>(sql: string, params: readonly unknown[] = []) => run(() => statement(sql).get(...params) as R | undefined),
    write,
    getMeta,
  };
}

/** Runs a synchronous read and hands its outcome over as a promise (a failure as the store's error). */
export function run<T>(body: () => T): Promise<T> {
  try {
    return Promise.resolve(body());
  } catch (err) {
    return Promise.reject(fromSqliteError(err));
  }
}
