import type Database from 'better-sqlite3';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Step, StepResult, WriteOp } from '../sql/write-op.js';
import { PROBE_SQL, supersededWrites } from '../sql/write-op.js';
import { storageError } from './errors.js';

type Outcome = { ok: true; value: StepResult[] } | { ok: false; error: string; code?: string | undefined };

interface DbLike {
  prepare(sql: string): { run(...a: unknown[]): { changes: number; lastInsertRowid: number | bigint }; get(...a: unknown[]): unknown };
  transaction<T>(fn: () => T): () => T;
}

/**
 * Runs a batch of writes in one transaction, but those `superseded` finds needless (supersededWrites). Should
 * one write fail, the batch is run again with each write in a savepoint of its own, so that the failing write
 * does not undo the others. Self-contained (no outside references, hence `superseded` as an argument): the
 * writer thread runs this very function, and supersededWrites, from their source text.
 */
export function executeBatch(db: DbLike, cache: Map<string, ReturnType<DbLike['prepare']>>, ops: WriteOp[], superseded: (ops: readonly WriteOp[]) => Set<number>): Outcome[] {
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
      const args = step.params ?? [];
      if (step.want === 'row') return (s.get(...args) as Record<string, unknown> | undefined) ?? null;
      const info = s.run(...args);
      if (step.want === 'changes') return info.changes;
      return undefined;
    });
  const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
  const codeOf = (err: unknown): string | undefined => {
    const code = (err as { code?: unknown } | null)?.code;
    return typeof code === 'string' ? code : undefined;
  };
  const skipped = superseded(ops);
  const runOrSkip = (op: WriteOp, i: number): StepResult[] => (skipped.has(i) ? [] : runOp(op));
  try {
    return db.transaction(() => ops.map((op, i): Outcome => ({ ok: true, value: runOrSkip(op, i) })))();
  } catch {
    try {
      return db.transaction(() =>
        ops.map((op, i): Outcome => {
          try {
            return { ok: true, value: db.transaction(() => runOrSkip(op, i))() };
          } catch (err) {
            return { ok: false, error: message(err), code: codeOf(err) };
          }
        }),
      )();
    } catch (err) {
      return ops.map(() => ({ ok: false, error: message(err), code: codeOf(err) }));
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
  /**
   * Rejects when the write did not commit: ORCH_STORAGE_UNAVAILABLE when the disk or file is at fault (see
   * errors.ts). `onFailure` hears of every such failure before the write's promise rejects.
   */
  submit(op: WriteOp): Promise<StepResult[]>;
  onFailure: ((err: Error) => void) | null;
  /**
   * After failed writes: checkpoints the WAL into the database file and truncates it (so that space freed on
   * the disk can be used), then commits one small write. Resolves once it committed, rejects if it did not.
   */
  probe(): Promise<void>;
  /** Resolves once every write submitted so far has committed or failed. */
  idle(): Promise<void>;
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
  onFailure: ((err: Error) => void) | null = null;
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
    const outcomes = executeBatch(this.db, this.cache, ops, supersededWrites);
    this.stats.commits++;
    this.stats.writes += ops.length;
    this.stats.maxBatch = Math.max(this.stats.maxBatch, ops.length);
    outcomes.forEach((o, i) => {
      const w = waiting[i] as Waiting;
      if (o.ok) w.resolve(o.value);
      else {
        const err = storageError(o.error, o.code);
        this.onFailure?.(err);
        w.reject(err);
      }
    });
  }

  probe(): Promise<void> {
    this.flush();
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
      this.db.prepare(PROBE_SQL).run(String(Date.now()));
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(storageError(err instanceof Error ? err.message : String(err), (err as { code?: string }).code));
    }
  }

  idle(): Promise<void> {
    this.flush();
    return Promise.resolve();
  }

  close(): Promise<void> {
    this.flush();
    return Promise.resolve();
  }
}

const THREAD_SOURCE = (executeBatchSource: string, supersededSource: string): string => `
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
const supersededWrites = ${supersededSource};
const cache = new Map();
const sqlById = [];
let queue = [];
let scheduled = false;
function drain() {
  scheduled = false;
  const batch = queue;
  queue = [];
  if (batch.length === 0) return;
  const outcomes = executeBatch(db, cache, batch.map((b) => b.op), supersededWrites);
  parentPort.postMessage({ results: batch.map((b, i) => ({ id: b.id, outcome: outcomes[i] })) });
}
parentPort.on('message', (msg) => {
  if (msg.probe !== undefined) {
    // Writes sent before the probe commit (or fail) before it.
    drain();
    try {
      db.pragma('wal_checkpoint(TRUNCATE)');
      db.prepare(workerData.probeSql).run(String(Date.now()));
      parentPort.postMessage({ probed: msg.probe, ok: true });
    } catch (err) {
      parentPort.postMessage({ probed: msg.probe, ok: false, error: err && err.message ? err.message : String(err), code: err && typeof err.code === 'string' ? err.code : undefined });
    }
    return;
  }
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
  onFailure: ((err: Error) => void) | null = null;
  private worker: Worker;
  private readonly waiting = new Map<number, Waiting>();
  private outbox: [number, [number, Step['params'], Step['want']][], string | undefined, number][] = [];
  private newDefs: [number, string][] = [];
  private readonly sqlIds = new Map<string, number>();
  private nextId = 1;
  private closed: Promise<void> | null = null;
  /** The thread died (it never should): writes fail until a probe starts a new one. */
  private failure: Error | null = null;
  private readonly probes = new Map<number, Waiting>();
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly path: string,
    private readonly synchronous: string,
  ) {
    this.worker = this.spawn();
  }

  private spawn(): Worker {
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    // A larger WAL between checkpoints: each checkpoint copies pages and fsyncs the database file, on this thread.
    const checkpointPages = 10_000;
    const worker = new Worker(THREAD_SOURCE(executeBatch.toString(), supersededWrites.toString()), {
      eval: true,
      workerData: { path: this.path, synchronous: this.synchronous, driver, checkpointPages, probeSql: PROBE_SQL },
    });
    worker.on('message', (msg: { results?: { id: number; outcome: Outcome }[]; probed?: number; ok?: boolean; error?: string; code?: string }) => {
      if (msg.probed !== undefined) {
        const w = this.probes.get(msg.probed);
        this.probes.delete(msg.probed);
        if (msg.ok) w?.resolve([]);
        else w?.reject(storageError(msg.error ?? 'the probe write failed', msg.code));
        this.settled();
        return;
      }
      if (!msg.results) return;
      this.stats.commits++;
      this.stats.writes += msg.results.length;
      this.stats.maxBatch = Math.max(this.stats.maxBatch, msg.results.length);
      for (const { id, outcome } of msg.results) {
        const w = this.waiting.get(id);
        this.waiting.delete(id);
        if (!w) continue;
        if (outcome.ok) w.resolve(outcome.value);
        else {
          const err = storageError(outcome.error, outcome.code);
          this.onFailure?.(err);
          w.reject(err);
        }
      }
      this.settled();
    });
    worker.on('error', (err) => {
      if (worker !== this.worker) return;
      this.failure = err;
      const failed = storageError(`the writer thread failed: ${err.message}`, 'SQLITE_IOERR');
      if (this.waiting.size > 0) this.onFailure?.(failed);
      for (const w of this.waiting.values()) w.reject(failed);
      for (const w of this.probes.values()) w.reject(failed);
      this.waiting.clear();
      this.probes.clear();
      this.settled();
    });
    worker.unref();
    return worker;
  }

  /** Wakes whoever waits for the writer to be idle; an idle writer does not keep the process alive. */
  private settled(): void {
    if (this.waiting.size > 0 || this.probes.size > 0 || this.outbox.length > 0) return;
    this.worker.unref();
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  submit(op: WriteOp): Promise<StepResult[]> {
    if (this.failure) return this.refuse(storageError(`the writer thread failed: ${this.failure.message}`, 'SQLITE_IOERR'));
    if (this.closed) return Promise.reject(storageError('the store is closed', undefined));
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

  private refuse(err: Error): Promise<never> {
    this.onFailure?.(err);
    return Promise.reject(err);
  }

  probe(): Promise<void> {
    if (this.closed) return Promise.reject(storageError('the store is closed', undefined));
    if (this.failure) {
      // A dead thread is replaced; the statements it knew by number are sent again.
      void this.worker.terminate();
      this.failure = null;
      this.sqlIds.clear();
      this.outbox = [];
      this.newDefs = [];
      this.worker = this.spawn();
    }
    this.post();
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.probes.set(id, { resolve: () => resolve(), reject });
      this.worker.ref();
      this.worker.postMessage({ probe: id });
    });
  }

  idle(): Promise<void> {
    if (this.waiting.size === 0 && this.probes.size === 0 && this.outbox.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
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
