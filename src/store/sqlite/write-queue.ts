import type Database from 'better-sqlite3';

interface Op {
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * Group commit. Writes made in the same turn of the event loop run in one
 * transaction, so one fsync covers them all; each write runs in its own
 * savepoint, so one failing write does not undo the others. A write's promise
 * resolves only after the transaction holding it has committed.
 */
export class WriteQueue {
  private ops: Op[] = [];
  private scheduled = false;

  /** Largest number of writes in one commit so far (a measure of grouping). */
  maxBatch = 0;
  commits = 0;

  constructor(private readonly db: Database.Database) {}

  enqueue<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.ops.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Commits everything queued now. */
  flush(): void {
    this.scheduled = false;
    const ops = this.ops;
    if (ops.length === 0) return;
    this.ops = [];
    const outcomes: ({ ok: true; value: unknown } | { ok: false; err: Error })[] = [];
    try {
      this.db.transaction(() => {
        for (const op of ops) {
          try {
            outcomes.push({ ok: true, value: this.db.transaction(op.fn)() });
          } catch (err) {
            outcomes.push({ ok: false, err: err instanceof Error ? err : new Error(String(err)) });
          }
        }
      })();
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      for (const op of ops) op.reject(e);
      return;
    }
    this.commits++;
    this.maxBatch = Math.max(this.maxBatch, ops.length);
    ops.forEach((op, i) => {
      const o = outcomes[i];
      if (o?.ok) op.resolve(o.value);
      else op.reject(o?.err ?? new Error('write lost'));
    });
  }
}
