import type Database from 'better-sqlite3';

type Outcome = { ok: true; value: unknown } | { ok: false; err: Error };

interface Op {
  fn: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/**
 * Group commit. Writes made in the same turn of the event loop run in one
 * transaction, so one fsync covers them all. Should one write fail, the
 * batch is run again with each write in a savepoint of its own, so that the
 * failing write does not undo the others. A write's promise
 * resolves only after the transaction holding it has committed.
 */
export class WriteQueue {
  private ops: Op[] = [];
  private scheduled = false;

  /** Largest number of writes in one commit so far (a measure of grouping). */
  maxBatch = 0;
  commits = 0;
  writes = 0;

  private turns = 0;

  constructor(
    private readonly db: Database.Database,
    /**
     * How many turns of the event loop a write may wait for others to share
     * its commit. Waiting turns, not milliseconds, costs no idle time: a turn
     * with nothing else to do passes at once.
     */
    private readonly commitTurns = 1,
    /** A commit is made at once when this many writes are waiting. */
    private readonly maxBatch_ = 2000,
  ) {}

  private readonly tick = (): void => {
    if (++this.turns >= this.commitTurns || this.ops.length >= this.maxBatch_) this.flush();
    else setImmediate(this.tick);
  };

  enqueue<T>(fn: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.ops.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        this.turns = 0;
        setImmediate(this.tick);
      }
    });
  }

  /** Commits everything queued now. */
  flush(): void {
    this.scheduled = false;
    const ops = this.ops;
    if (ops.length === 0) return;
    this.ops = [];
    let outcomes: Outcome[];
    try {
      // The common case: every write succeeds, all in one transaction without savepoints.
      outcomes = this.db.transaction(() => ops.map((op) => ({ ok: true as const, value: op.fn() })))();
    } catch {
      // One write failed and the transaction rolled back: run them again, each in a savepoint of its own.
      try {
        outcomes = this.db.transaction(() =>
          ops.map((op): Outcome => {
            try {
              return { ok: true, value: this.db.transaction(op.fn)() };
            } catch (err) {
              return { ok: false, err: err instanceof Error ? err : new Error(String(err)) };
            }
          }),
        )();
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err));
        for (const op of ops) op.reject(e);
        return;
      }
    }
    this.commits++;
    this.writes += ops.length;
    this.maxBatch = Math.max(this.maxBatch, ops.length);
    ops.forEach((op, i) => {
      const o = outcomes[i];
      if (o?.ok) op.resolve(o.value);
      else op.reject(o?.err ?? new Error('write lost'));
    });
  }
}
