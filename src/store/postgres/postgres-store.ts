import pg from 'pg';
import { sqlAggregates } from '../sql/aggregates.js';
import type { SqlContext } from '../sql/context.js';
import { META_SQL, PROBE_SQL } from '../sql/write-op.js';
import type { AdviceStore } from '../advice-store.js';
import type { AgentStore } from '../agent-store.js';
import type { DeploymentStore } from '../deployment-store.js';
import type { FleetStore } from '../fleet-store.js';
import type { SecurityStore } from '../security-store.js';
import type { Store, StoreConnection } from '../store.js';
import type { TaskStore } from '../task-store.js';
import { StoreOpenError } from '../store.js';
import { redactUrl } from '../../util/redact-url.js';
import { fromPgError } from './errors.js';
import { PG_MIGRATIONS, PG_SCHEMA_VERSION } from './migrations.js';
import { PgLeadership } from './lease.js';
import { numbered } from './sql.js';
import { PgWriter, statementName } from './writer.js';

export interface PostgresStoreOptions {
  /** The schema to keep the tables in (created when missing). @default the connection's search_path (public) */
  schema?: string;
  /** Connections for reads. @default 4 */
  readConnections?: number;
  /** How this process is named in pg_stat_activity. @default 'orchestrator' */
  applicationName?: string;
}

/** PostgreSQL cannot be reached, refused us, or holds a schema this version cannot use: said in one line. */
export class PostgresOpenError extends StoreOpenError {
  constructor(message: string) {
    super(message);
    this.name = 'PostgresOpenError';
  }
}

/** Times, sequence numbers and counts come back as numbers (int8 and numeric are strings in node-postgres). */
const builtInParser = pg.types.getTypeParser.bind(pg.types) as (oid: number, format?: 'text' | 'binary') => (value: string) => unknown;
const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20 || oid === 1700 ? (v: string) => Number(v) : builtInParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/** Every replica takes this advisory lock to migrate: one migrates, the others wait and find it done. */
const MIGRATION_LOCK = 0x6f726368; // 'orch'

// The verbs of every aggregate are put on the instance by the constructor (shared with SQLite: ../sql/).
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface PostgresStore extends TaskStore, FleetStore, DeploymentStore, SecurityStore, AgentStore, AdviceStore {}

/**
 * The shared store: tables in a PostgreSQL schema, for replicas (see docs/operations.md). Reads run on a
 * small pool; every write goes through one connection (PgWriter: group commit, in order, pipelined), and
 * its promise resolves once committed. Open it with `PostgresStore.open`, which migrates the schema.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class PostgresStore implements Store, StoreConnection {
  readonly kind = 'postgres';
  /** Several processes share it (one leads, see core/leadership); backups are PostgreSQL's own (pg_dump, base backups). */
  readonly capabilities = { sharedByProcesses: true, onlineBackup: false } as const;
  readonly url: string;
  readonly schema: string | undefined;
  private readonly pool: pg.Pool;
  readonly writer: PgWriter;
  readonly leadership: PgLeadership;

  private constructor(url: string, pool: pg.Pool, writer: PgWriter, leadership: PgLeadership, schema: string | undefined) {
    this.url = url;
    this.pool = pool;
    this.writer = writer;
    this.leadership = leadership;
    this.schema = schema;
    const ctx: SqlContext = {
      all: async <R>(sql: string, params: readonly unknown[] = []) => (await this.query(sql, params)).rows as R[],
      one: async <R>(sql: string, params: readonly unknown[] = []) => (await this.query(sql, params)).rows[0] as R | undefined,
      write: (steps, row) => this.writer.submit(row ? { steps, ...row } : { steps }),
      getMeta: (key) => this.getMeta(key),
    };
    Object.assign(this, sqlAggregates(ctx));
  }

  /** Connects, creates the schema when missing and migrates it; throws PostgresOpenError saying what is wrong. */
  /**
   * Whether the orchestrator's schema is in the database at `url` (in `schema`, or the URL's search_path), without
   * creating anything: for the commands that must not make a new database by mistake.
   */
  static async exists(url: string, options: Pick<PostgresStoreOptions, 'schema'> = {}): Promise<boolean> {
    const client = new pg.Client(connectionConfig(url, options).client);
    try {
      await client.connect();
    } catch (err) {
      throw new PostgresOpenError(`cannot connect to PostgreSQL at ${redactUrl(url)} (DATABASE_URL): ${(err as Error).message}`);
    }
    try {
      const row = (await client.query<{ t: string | null }>("SELECT to_regclass('schema_version')::text AS t")).rows[0];
      return row?.t !== null && row?.t !== undefined;
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const config = connectionConfig(url, options);
    const first = new pg.Client(config.client);
    try {
      await first.connect();
    } catch (err) {
      throw new PostgresOpenError(`cannot connect to PostgreSQL at ${redactUrl(url)} (DATABASE_URL): ${(err as Error).message}`);
    }
    try {
      await migrate(first, url, options.schema);
    } finally {
      await first.end().catch(() => undefined);
    }
    const pool = new pg.Pool({ ...config.client, max: options.readConnections ?? 4, idleTimeoutMillis: 30_000 });
    // An idle connection that fails is dropped by the pool; the next read opens another.
    pool.on('error', () => undefined);
    const writer = new PgWriter({
      connect: async () => {
        // A transaction left open by a paused process would hold the lease row (its fence) and block a take-over:
        // the server ends it. A commit that does not answer in time counts as the database being unreachable.
        const c = new pg.Client({ ...config.client, pipeline: true, idle_in_transaction_session_timeout: 5000, query_timeout: 20_000 });
        await c.connect();
        return c;
      },
    });
    const leadership = new PgLeadership(async () => {
      // Renewals must fail fast when the database cannot be reached, so that a cut-off leader steps down in time.
      const c = new pg.Client({ ...config.client, query_timeout: 2000, application_name: `${config.client.application_name ?? 'orchestrator'} lease` });
      await c.connect();
      return c;
    }, writer);
    return new PostgresStore(url, pool, writer, leadership, options.schema);
  }

  private async query(sql: string, params: readonly unknown[]): Promise<pg.QueryResult> {
    const text = numbered(sql);
    try {
      return await this.pool.query({ name: statementName(text), text, values: params as unknown[] });
    } catch (err) {
      throw fromPgError(err);
    }
  }

  probe(): Promise<void> {
    return this.writer.submit({ steps: [{ sql: PROBE_SQL, params: [String(Date.now())] }] }).then(() => undefined);
  }

  onWriteFailure(listener: (err: Error) => void): void {
    this.writer.onFailure = listener;
  }

  idle(): Promise<void> {
    return this.writer.idle();
  }

  async close(): Promise<void> {
    await this.writer.close();
    await this.leadership.close();
    await this.pool.end().catch(() => undefined);
  }

  async getMeta(key: string): Promise<string | null> {
    return ((await this.query('SELECT value FROM meta WHERE key = ?', [key])).rows[0] as { value: string } | undefined)?.value ?? null;
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.writer.submit({ steps: [{ sql: META_SQL, params: [key, value] }] }).then(() => undefined);
  }
}

/** The connection settings of a URL: the schema on the search path, numbers as numbers, commits durable. */
export function connectionConfig(url: string, options: Pick<PostgresStoreOptions, 'schema' | 'applicationName'> = {}): { client: pg.ClientConfig } {
  const settings = ['-c synchronous_commit=on'];
  if (options.schema !== undefined) settings.push(`-c search_path=${options.schema}`);
  return {
    client: {
      connectionString: url,
      types: TYPES,
      options: settings.join(' '),
      application_name: options.applicationName ?? 'orchestrator',
      connectionTimeoutMillis: 5000,
      keepAlive: true,
    },
  };
}

/**
 * A search_path given in the URL (`?options=-c search_path=name`) names a schema that may not exist yet: the
 * first one of the path is created, as the `schema` option's is.
 */
async function createSearchPathSchema(client: pg.Client): Promise<void> {
  const current = (await client.query<{ s: string | null }>('SELECT current_schema() AS s')).rows[0]?.s ?? null;
  if (current !== null) return;
  const path = (await client.query<{ p: string }>("SELECT current_setting('search_path') AS p")).rows[0]?.p ?? '';
  const first = path
    .split(',')
    .map((p) => p.trim().replace(/^"(.*)"$/, '$1'))
    .find((p) => p !== '' && p !== '$user');
  if (first !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(first)}`);
}

/** Brings the schema to PG_SCHEMA_VERSION, under an advisory lock, each migration in one transaction with its version. */
async function migrate(client: pg.Client, url: string, schema: string | undefined): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    if (schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS ${pg.escapeIdentifier(schema)}`);
    else await createSearchPathSchema(client);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)');
    const row = (await client.query<{ version: number }>('SELECT version FROM schema_version')).rows[0];
    const current = row?.version ?? 0;
    if (row === undefined) await client.query('INSERT INTO schema_version (version) VALUES (0)');
    if (current > PG_SCHEMA_VERSION) {
      throw new PostgresOpenError(
        `the database at ${redactUrl(url)} has schema version ${current}, newer than this orchestrator knows (${PG_SCHEMA_VERSION}): run the newer version`,
      );
    }
    for (const m of PG_MIGRATIONS) {
      if (m.version <= current) continue;
      await client.query(m.sql);
      await client.query('UPDATE schema_version SET version = $1', [m.version]);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (err instanceof PostgresOpenError) throw err;
    throw new PostgresOpenError(`cannot migrate the database at ${redactUrl(url)} (DATABASE_URL): ${(err as Error).message}`);
  }
}
