import type Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/** One SQL statement of a write. `want` says what to hand back from it. */
export interface Step {
  sql: string;
  params?: unknown[] | Record<string, unknown>;
  want?: 'changes' | 'rowid' | 'row';
}

/**
 * A write: its steps run in order, in one transaction with the writes committed beside it.
 * Writes of one row's state may carry its `key`: a write marked `supersedable` (it only sets state)
 * is skipped when a later write in the same batch with the same key is `full` (it sets all of that
 * state), since the later one leaves the row exactly as both together would.
 */
export interface WriteOp {
  steps: Step[];
  key?: string;
  supersedable?: boolean;
  full?: boolean;
}

export type StepResult = number | Record<string, unknown> | null | undefined;
type Outcome = { ok: true; value: StepResult[] } | { ok: false; error: string };

interface DbLike {
  prepare(sql: string): { run(...a: unknown[]): { changes: number; lastInsertRowid: number | bigint }; get(...a: unknown[]): unknown };
  transaction<T>(fn: () => T): () => T;
}

/**
 * Runs a batch of writes in one transaction. Should one write fail, the batch
 * is run again with each write in a savepoint of its own, so that the failing
 * write does not undo the others. Self-contained (no outside references): the
 * writer thread runs this very function from its source text.
 */
export function executeBatch(db: DbLike, cache: Map<string, ReturnType<DbLike['prepare']>>, ops: WriteOp[]): Outcome[] {
  const stmt = (sql: string) => {
    let s = cache.get(sql);
    if (!s) {
      s = db.prepare(sql);
      cache.set(sql, s);
    }
    return s;
  };
  const runOp = (op: WriteOp): StepResult[] =>
    op.steps.map((step) => {
      const s = stmt(step.sql);
      const args = step.params === undefined ? [] : Array.isArray(step.params) ? step.params : [step.params];
      if (step.want === 'row') return (s.get(...args) as Record<string, unknown> | undefined) ?? null;
      const info = s.run(...args);
      if (step.want === 'changes') return info.changes;
      if (step.want === 'rowid') return Number(info.lastInsertRowid);
      return undefined;
    });
  const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
  const superseded = new Set<number>();
  const fullLater = new Set<string>();
  for (let i = ops.length - 1; i >= 0; i--) {
    const op = ops[i] as WriteOp;
    if (op.key === undefined) continue;
    if (op.supersedable && fullLater.has(op.key)) superseded.add(i);
    if (op.full) fullLater.add(op.key);
  }
  const runOrSkip = (op: WriteOp, i: number): StepResult[] => (superseded.has(i) ? [] : runOp(op));
  try {
    return db.transaction(() => ops.map((op, i): Outcome => ({ ok: true, value: runOrSkip(op, i) })))();
  } catch {
    try {
      return db.transaction(() =>
        ops.map((op, i): Outcome => {
          try {
            return { ok: true, value: db.transaction(() => runOrSkip(op, i))() };
          } catch (err) {
            return { ok: false, error: message(err) };
          }
        }),
      )();
    } catch (err) {
      return ops.map(() => ({ ok: false, error: message(err) }));
    }
  }
}

export interface WriterStats {
  commits: number;
  writes: number;
  maxBatch: number;
}

/** Where writes go. Each write's promise resolves once the transaction holding it has committed. */
export interface Writer {
  readonly stats: WriterStats;
  submit(op: WriteOp): Promise<StepResult[]>;
  close(): Promise<void>;
}

interface Waiting {
  resolve: (v: StepResult[]) => void;
  reject: (e: Error) => void;
}

/**
 * Group commit on the event-loop thread: the writes made in one turn of the
 * event loop commit together at the start of the next. Deterministic, so the
 * tests that drive a fake clock use it.
 */
export class InlineWriter implements Writer {
  readonly stats: WriterStats = { commits: 0, writes: 0, maxBatch: 0 };
  private ops: WriteOp[] = [];
  private waiting: Waiting[] = [];
  private readonly cache = new Map<string, ReturnType<DbLike['prepare']>>();

  constructor(private readonly db: Database.Database) {}

  submit(op: WriteOp): Promise<StepResult[]> {
    return new Promise((resolve, reject) => {
      this.ops.push(op);
      this.waiting.push({ resolve, reject });
      if (this.ops.length === 1) setImmediate(() => this.flush());
    });
  }

  flush(): void {
    const ops = this.ops;
    const waiting = this.waiting;
    if (ops.length === 0) return;
    this.ops = [];
    this.waiting = [];
    const outcomes = executeBatch(this.db, this.cache, ops);
    this.stats.commits++;
    this.stats.writes += ops.length;
    this.stats.maxBatch = Math.max(this.stats.maxBatch, ops.length);
    outcomes.forEach((o, i) => {
      const w = waiting[i] as Waiting;
      if (o.ok) w.resolve(o.value);
      else w.reject(new Error(o.error));
    });
  }

  close(): Promise<void> {
    this.flush();
    return Promise.resolve();
  }
}

const THREAD_SOURCE = (executeBatchSource: string): string => `
// Transpilers that keep function names (esbuild, used by tsx and Vitest) call this helper.
const __name = (fn) => fn;
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.path);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = ' + workerData.synchronous);
db.pragma('busy_timeout = 5000');
db.pragma('wal_autocheckpoint = ' + workerData.checkpointPages);
const executeBatch = ${executeBatchSource};
const cache = new Map();
const sqlById = [];
let queue = [];
let scheduled = false;
function drain() {
  scheduled = false;
  const batch = queue;
  queue = [];
  if (batch.length === 0) return;
  const outcomes = executeBatch(db, cache, batch.map((b) => b.op));
  parentPort.postMessage({ results: batch.map((b, i) => ({ id: b.id, outcome: outcomes[i] })) });
}
parentPort.on('message', (msg) => {
  if (msg.close) {
    drain();
    db.close();
    parentPort.postMessage({ closed: true });
    return;
  }
  if (msg.defs) for (const [id, sql] of msg.defs) sqlById[id] = sql;
  // Steps arrive as [sqlId, params, want]: the SQL text crosses the thread boundary once, not per write.
  for (const [id, steps, key, flags] of msg.ops) {
    const op = { steps: steps.map(([sqlId, params, want]) => ({ sql: sqlById[sqlId], params, want })), key, supersedable: (flags & 1) !== 0, full: (flags & 2) !== 0 };
    queue.push({ id, op });
  }
  // Whatever arrives while a commit runs waits for the next one: the batch grows with the load.
  if (!scheduled) {
    scheduled = true;
    setImmediate(drain);
  }
});
`;

/**
 * Group commit on a thread of its own: the event loop hands writes over and
 * goes on working while the writer thread commits (and fsyncs). Writes that
 * arrive during a commit share the next one, so batches grow with the load.
 */
export class ThreadWriter implements Writer {
  readonly stats: WriterStats = { commits: 0, writes: 0, maxBatch: 0 };
  private readonly worker: Worker;
  private readonly waiting = new Map<number, Waiting>();
  private outbox: [number, [number, Step['params'], Step['want']][], string | undefined, number][] = [];
  private newDefs: [number, string][] = [];
  private readonly sqlIds = new Map<string, number>();
  private nextId = 1;
  private closed: Promise<void> | null = null;
  private failure: Error | null = null;

  constructor(path: string, synchronous: string) {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    // A larger WAL between checkpoints: each checkpoint copies pages and fsyncs the database file, on this thread.
    const checkpointPages = 10_000;
    this.worker = new Worker(THREAD_SOURCE(executeBatch.toString()), { eval: true, workerData: { path, synchronous, driver, checkpointPages } });
    this.worker.on('message', (msg: { results?: { id: number; outcome: Outcome }[] }) => {
      if (!msg.results) return;
      this.stats.commits++;
      this.stats.writes += msg.results.length;
      this.stats.maxBatch = Math.max(this.stats.maxBatch, msg.results.length);
      for (const { id, outcome } of msg.results) {
        const w = this.waiting.get(id);
        this.waiting.delete(id);
        if (!w) continue;
        if (outcome.ok) w.resolve(outcome.value);
        else w.reject(new Error(outcome.error));
      }
      // An idle writer does not keep the process alive.
      if (this.waiting.size === 0) this.worker.unref();
    });
    this.worker.on('error', (err) => {
      this.failure = err;
      for (const w of this.waiting.values()) w.reject(err);
      this.waiting.clear();
    });
    this.worker.unref();
  }

  submit(op: WriteOp): Promise<StepResult[]> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new Error('the store is closed'));
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.waiting.set(id, { resolve, reject });
      const flags = (op.supersedable ? 1 : 0) | (op.full ? 2 : 0);
      this.outbox.push([id, op.steps.map((step) => [this.sqlId(step.sql), step.params, step.want]), op.key, flags]);
      // One message per turn of the event loop carries every write made in it.
      if (this.outbox.length === 1) {
        this.worker.ref();
        setImmediate(() => this.post());
      }
    });
  }

  private sqlId(sql: string): number {
    let id = this.sqlIds.get(sql);
    if (id === undefined) {
      id = this.sqlIds.size;
      this.sqlIds.set(sql, id);
      this.newDefs.push([id, sql]);
    }
    return id;
  }

  private post(): void {
    const ops = this.outbox;
    const defs = this.newDefs;
    this.outbox = [];
    this.newDefs = [];
    if (ops.length > 0) this.worker.postMessage(defs.length > 0 ? { defs, ops } : { ops });
  }

  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.post();
      this.worker.ref();
      this.worker.on('message', (msg: { closed?: boolean }) => {
        if (msg.closed) void this.worker.terminate().then(() => resolve());
      });
      this.worker.postMessage({ close: true });
    });
    return this.closed;
  }
}
