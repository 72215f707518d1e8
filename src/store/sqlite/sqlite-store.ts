import Database from 'better-sqlite3';
import type { AdviceStore } from '../advice-store.js';
import type { AgentStore } from '../agent-store.js';
import type { DeploymentStore } from '../deployment-store.js';
import type { FleetStore } from '../fleet-store.js';
import type { SecurityStore } from '../security-store.js';
import type { Store, StoreConnection } from '../store.js';
import type { TaskStore } from '../task-store.js';
import { sqlAggregates } from '../sql/aggregates.js';
import { META_SQL } from '../sql/write-op.js';
import { run, sqliteContext } from './context.js';
import { MIGRATIONS } from './migrations.js';
import { DatabaseFileError, explainSqliteError, openDatabaseFile } from './open.js';
import type { Writer } from './writer.js';
import { InlineWriter, ThreadWriter } from './writer.js';

export interface SqliteStoreOptions {
  /**
   * `FULL` (the default) fsyncs the WAL on every commit: an acknowledged change
   * survives a process crash and a power loss. `NORMAL` survives a process
   * crash but may lose the last commits on power loss.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /**
   * `inline` (the default) commits on the event-loop thread at the end of each
   * turn; `thread` commits on a writer thread, so the event loop never waits
   * for an fsync and batches grow with the load.
   */
  writer?: 'inline' | 'thread';
}


// The verbs of every aggregate are put on the instance by the constructor (each aggregate's file makes them).
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface SqliteStore extends TaskStore, FleetStore, DeploymentStore, SecurityStore, AgentStore, AdviceStore {}

/**
 * The embedded store: one SQLite file in WAL mode. This file opens it (checks, pragmas, migrations) and holds
 * the connection's own verbs; the aggregates' verbs and SQL are shared with the PostgreSQL adapter (../sql/:
 * a file per aggregate, rows and mappers in rows.ts).
 * Reads run on this connection; every write goes through the writer, in order, grouped into commits, and its
 * promise resolves once committed (synchronous=FULL: durably).
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class SqliteStore implements Store, StoreConnection {
  readonly kind = 'sqlite';
  /** One process per file (a lock on DATA_DIR keeps a second one off); `orchestrator backup` copies it online. */
  readonly capabilities = { sharedByProcesses: false, onlineBackup: true } as const;
  /** One process per file: it always leads. */
  readonly leadership = null;
  readonly path: string;
  private readonly db: Database.Database;
  /** Every write goes through here, in order, grouped into commits. */
  readonly writer: Writer;
  private readonly getMetaStmt: Database.Statement<[string], { value: string }>;

  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path;
    // A file is checked before use (see open.ts): each way it can be unusable is a DatabaseFileError.
    this.db = path === ':memory:' ? new Database(path) : openDatabaseFile(path);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
      this.db.pragma('busy_timeout = 5000');
      this.db.pragma('foreign_keys = ON');
      this.migrate();
    } catch (err) {
      this.db.close();
      throw explainSqliteError(path, err) ?? err;
    }
    // Migrations ran above on this connection; from here on it only reads, and the writer writes.
    this.writer = options.writer === 'thread' && path !== ':memory:' ? new ThreadWriter(path, options.synchronous ?? 'FULL') : new InlineWriter(this.db);
    this.getMetaStmt = this.db.prepare<[string], { value: string }>('SELECT value FROM meta WHERE key = ?');
    const ctx = sqliteContext(this.db, (steps, row) => this.writer.submit(row ? { steps, ...row } : { steps }), (key) => this.getMeta(key));
    Object.assign(this, sqlAggregates(ctx));
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    const latest = MIGRATIONS.reduce((v, m) => Math.max(v, m.version), 0);
    if (current > latest) {
      throw new DatabaseFileError(
        this.path,
        `${this.path} has schema version ${current}, newer than this orchestrator knows (${latest}): run the newer version, or restore a backup this version made`,
      );
    }
    for (const m of MIGRATIONS) {
      if (m.version <= current) continue;
      this.db.transaction(() => {
        this.db.exec(m.sql);
        this.db.pragma(`user_version = ${m.version}`);
      })();
    }
  }

  probe(): Promise<void> {
    return this.writer.probe();
  }

  onWriteFailure(listener: (err: Error) => void): void {
    this.writer.onFailure = listener;
  }

  idle(): Promise<void> {
    return this.writer.idle();
  }

  async close(): Promise<void> {
    await this.writer.close();
    if (this.db.open) this.db.close();
  }

  getMeta(key: string): Promise<string | null> {
    return run(() => this.getMetaStmt.get(key)?.value ?? null);
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.writer
      .submit({ steps: [{ sql: META_SQL, params: [key, value] }] })
      .then(() => undefined);
  }
}
