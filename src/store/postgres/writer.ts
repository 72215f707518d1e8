import type pg from 'pg';
import type { Step, StepResult, WriteOp } from '../sql/write-op.js';
import { supersededWrites } from '../sql/write-op.js';
import { BULK_FORMS } from './bulk.js';
import { OwnConnection } from './connection.js';
import { fromPgError, isUnavailable } from './errors.js';
import { numbered } from './sql.js';

type Outcome = { ok: true; value: StepResult[] } | { ok: false; error: Error };

interface Pending {
  op: WriteOp;
  at: number;
  resolve: (v: StepResult[]) => void;
  reject: (e: Error) => void;
}

/**
 * A statement run first in every transaction: the leader's fence (its epoch still holds the lease). It fails
 * (raises) to refuse the whole batch, so that nothing of it commits, even with the rest already sent; `fenced`
 * turns its failure into the error every write of the batch rejects with.
 */
export interface Fence {
  step: Step;
  fenced: (err: unknown) => Error;
}

export interface PgWriterOptions {
  /** Opens the writer's connection (again after it was lost). */
  connect: () => Promise<pg.Client>;
  /** Writes per transaction at most. @default 5000 */
  maxBatch?: number;
}

/** Rows of one statement over arrays at most (see bulk.ts). */
const MAX_BULK_ROWS = 5000;

/**
 * Group commit through one connection: the writes made while a commit runs share the next transaction,
 * in the order they were made. The connection is in pipeline mode, so a transaction of many statements
 * costs about one round trip, and runs of the same hot statement go as one statement over arrays. A
 * write's promise resolves once COMMIT returned (durable: the connection keeps synchronous_commit on).
 * Should one write of a batch fail, the batch runs again with each write in a savepoint of its own, so
 * that the failing write does not undo the others; should the database fail (connection lost, disk
 * full, shutting down), every write of the batch rejects with ORCH_STORAGE_UNAVAILABLE and the next
 * batch connects again. A connection lost during COMMIT leaves that batch's outcome unknown; it is
 * reported as failed.
 */
export class PgWriter {
  /** Transactions, writes, the largest batch, and the statements sent (a run over arrays counts once). */
  readonly stats = { commits: 0, writes: 0, maxBatch: 0, statements: 0, maxCommitMs: 0, slowCommits: 0, maxWaitMs: 0 };
  onFailure: ((err: Error) => void) | null = null;
  private readonly connection: OwnConnection;
  private queue: Pending[] = [];
  private running = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private readonly maxBatch: number;
  private fence: Fence | null = null;
  /** Set while every write is refused at once (a leader stepping down). */
  private refusal: Error | null = null;
  /** Batches the fence refused. */
  fencedBatches = 0;

  constructor(options: PgWriterOptions) {
    this.connection = new OwnConnection(options.connect);
    this.maxBatch = options.maxBatch ?? 5000;
  }

  /** Checks `fence` first in every transaction from now on (null: no check); see Fence. */
  setFence(fence: Fence | null): void {
    this.fence = fence;
  }

  /** Refuses every write from now on with `err`, without asking the database (null: accepts them again). */
  refuse(err: Error | null): void {
    this.refusal = err;
  }

  submit(op: WriteOp): Promise<StepResult[]> {
    if (this.refusal) {
      this.onFailure?.(this.refusal);
      return Promise.reject(this.refusal);
    }
    if (this.closed) return Promise.reject(fromPgError(new Error('Client was closed and is not queryable')));
    return new Promise((resolve, reject) => {
      this.queue.push({ op, resolve, reject, at: performance.now() });
      if (!this.running) {
        this.running = true;
        // The writes made in this turn of the event loop go together.
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      const t0 = performance.now();
      this.stats.maxWaitMs = Math.max(this.stats.maxWaitMs, t0 - (batch[0] as Pending).at);
      const outcomes = await this.commit(batch.map((p) => p.op));
      const took = performance.now() - t0;
      this.stats.maxCommitMs = Math.max(this.stats.maxCommitMs, took);
      if (took > 250) this.stats.slowCommits++;
      this.stats.commits++;
      this.stats.writes += batch.length;
      this.stats.maxBatch = Math.max(this.stats.maxBatch, batch.length);
      outcomes.forEach((o, i) => {
        const p = batch[i] as Pending;
        if (o.ok) p.resolve(o.value);
        else {
          this.onFailure?.(o.error);
          p.reject(o.error);
        }
      });
    }
    this.running = false;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async commit(ops: WriteOp[]): Promise<Outcome[]> {
    let client: pg.Client;
    try {
      client = await this.connection.get();
    } catch (err) {
      return this.allFailed(ops, err);
    }
    if (this.refusal) {
      const refusal = this.refusal;
      return ops.map(() => ({ ok: false, error: refusal }));
    }
    const superseded = supersededWrites(ops);
    try {
      return await this.together(client, ops, superseded);
    } catch (err) {
      if (err instanceof FenceFailed) return this.fencedOff(ops, err);
      if (isUnavailable(err)) {
        this.connection.discard(client);
        return this.allFailed(ops, err);
      }
    }
    try {
      return await this.oneByOne(client, ops, superseded);
    } catch (err) {
      if (err instanceof FenceFailed) return this.fencedOff(ops, err);
      this.connection.discard(client);
      return this.allFailed(ops, err);
    }
  }

  private allFailed(ops: readonly WriteOp[], err: unknown): Outcome[] {
    const error = fromPgError(err);
    return ops.map(() => ({ ok: false, error }));
  }

  private fencedOff(ops: readonly WriteOp[], err: FenceFailed): Outcome[] {
    this.fencedBatches++;
    return ops.map(() => ({ ok: false, error: err.error }));
  }

  /** The fence's statement, its failure as FenceFailed. */
  private fenceStep(client: pg.Client): Promise<unknown> | null {
    const fence = this.fence;
    if (!fence) return null;
    return runStep(client, fence.step).catch((err: unknown) => {
      throw isUnavailable(err) ? err : new FenceFailed(fence.fenced(err));
    });
  }

  /** The whole batch in one transaction, pipelined: every statement is sent before the first answer. */
  private async together(client: pg.Client, ops: readonly WriteOp[], superseded: ReadonlySet<number>): Promise<Outcome[]> {
    // Where each write's step results are in `sent` (-1: a row of a statement over arrays, which returns nothing).
    const out: number[][] = ops.map(() => []);
    const sent: Promise<unknown>[] = [client.query('BEGIN')];
    const fence = this.fenceStep(client);
    if (fence) sent.push(fence);
    const items: { op: number; step: Step }[] = [];
    ops.forEach((op, i) => {
      if (!superseded.has(i)) for (const step of op.steps) items.push({ op: i, step });
    });
    for (let k = 0; k < items.length; ) {
      const { step } = items[k] as { step: Step };
      const bulk = step.want === undefined ? BULK_FORMS.get(step.sql) : undefined;
      let end = k + 1;
      if (bulk) {
        const keys = bulk.key ? new Set([bulk.key(step.params ?? [])]) : null;
        while (end < items.length && end - k < MAX_BULK_ROWS) {
          const next = (items[end] as { step: Step }).step;
          if (next.sql !== step.sql || next.want !== undefined) break;
          if (keys && bulk.key) {
            const key = bulk.key(next.params ?? []);
            if (keys.has(key)) break;
            keys.add(key);
          }
          end++;
        }
      }
      if (bulk && end - k > 1) {
        const width = (step.params ?? []).length;
        const columns: unknown[][] = Array.from({ length: width }, () => []);
        for (let j = k; j < end; j++) {
          const params = (items[j] as { step: Step }).step.params ?? [];
          for (let c = 0; c < width; c++) (columns[c] as unknown[]).push(params[c] ?? null);
        }
        sent.push(client.query({ name: statementName(bulk.sql), text: bulk.sql, values: columns }));
        for (let j = k; j < end; j++) out[(items[j] as { op: number }).op]?.push(-1);
      } else {
        out[(items[k] as { op: number }).op]?.push(sent.length);
        sent.push(runStep(client, step));
      }
      k = end;
    }
    this.stats.statements += sent.length - 1;
    const commit = client.query('COMMIT');
    sent.push(commit);
    const settled = await Promise.allSettled(sent);
    const failures = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    // The fence's refusal first: the statements after it failed only because it aborted the transaction.
    const failed = failures.find((f) => f.reason instanceof FenceFailed) ?? failures[0];
    if (failed) {
      // COMMIT of a transaction a statement aborted answers ROLLBACK; a pipelined COMMIT may not have run at all.
      if (client.getTransactionStatus?.() !== 'I') await client.query('ROLLBACK').catch(() => undefined);
      throw failed.reason;
    }
    return out.map((steps) => ({ ok: true as const, value: steps.map((i) => (i < 0 ? undefined : ((settled[i] as PromiseFulfilledResult<StepResult>).value))) }));
  }

  /** The batch again, each write in a savepoint of its own: a write that fails is refused alone. */
  private async oneByOne(client: pg.Client, ops: readonly WriteOp[], superseded: ReadonlySet<number>): Promise<Outcome[]> {
    await client.query('BEGIN');
    try {
      await this.fenceStep(client);
      const outcomes: Outcome[] = [];
      for (const [i, op] of ops.entries()) {
        if (superseded.has(i)) {
          outcomes.push({ ok: true, value: [] });
          continue;
        }
        await client.query('SAVEPOINT w');
        try {
          const value: StepResult[] = [];
          for (const step of op.steps) value.push(await runStep(client, step));
          await client.query('RELEASE SAVEPOINT w');
          outcomes.push({ ok: true, value });
        } catch (err) {
          if (isUnavailable(err)) throw err;
          await client.query('ROLLBACK TO SAVEPOINT w');
          outcomes.push({ ok: false, error: fromPgError(err) });
        }
      }
      await client.query('COMMIT');
      return outcomes;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }

  /** Resolves once every write submitted so far has committed or failed. */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.idle();
    await this.connection.close();
  }
}

/** The fence refused a batch: it carries the error every write of the batch rejects with. */
class FenceFailed extends Error {
  constructor(readonly error: Error) {
    super(error.message);
  }
}

const names = new Map<string, string>();

/** A name per statement, so that each connection parses and plans it once. */
export function statementName(sql: string): string {
  let name = names.get(sql);
  if (name === undefined) {
    name = `o${names.size}`;
    names.set(sql, name);
  }
  return name;
}

async function runStep(client: pg.Client, step: Step): Promise<StepResult> {
  const text = numbered(step.sql);
  const r = await client.query({ name: statementName(text), text, values: step.params ?? [] });
  if (step.want === 'changes') return r.rowCount ?? 0;
  if (step.want === 'row') return (r.rows[0] as Record<string, unknown> | undefined) ?? null;
  return undefined;
}
