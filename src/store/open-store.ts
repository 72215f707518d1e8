import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PostgresStore } from './postgres/postgres-store.js';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/**
 * Where the orchestrator's state is kept: the SQLite file of a data directory, a PostgreSQL database (in a
 * schema of its own when `schema` is given), or memory (the simulator).
 */
export type StoreTarget = { adapter: 'sqlite'; dataDir: string } | { adapter: 'postgres'; url: string; schema?: string } | { adapter: 'memory' };

export interface OpenStoreOptions {
  /**
   * SQLite: `thread` commits on a writer thread, so that the event loop never waits for an fsync (the server);
   * `inline` commits on the event loop at the end of each turn (tools, and tests that drive a fake clock).
   * @default 'inline'
   */
  writer?: 'inline' | 'thread';
}

/** The SQLite file of a data directory. */
export function sqliteFile(dataDir: string): string {
  return join(resolve(dataDir), 'orchestrator.db');
}

/** Where the state of a configuration is: PostgreSQL when DATABASE_URL is set, else SQLite in DATA_DIR. */
export function storeTarget(config: { dataDir: string; databaseUrl: string }): StoreTarget {
  return config.databaseUrl !== '' ? { adapter: 'postgres', url: config.databaseUrl } : { adapter: 'sqlite', dataDir: config.dataDir };
}

/**
 * The one place that chooses and opens a store adapter (the server, the CLI and the simulator open theirs
 * here). Rejects with a StoreOpenError saying in one line what is wrong when the store cannot be opened (a
 * file that is unusable, a database that cannot be reached or is of a newer version).
 */
export async function openStore(target: StoreTarget, options: OpenStoreOptions = {}): Promise<Store> {
  switch (target.adapter) {
    case 'sqlite':
      return new SqliteStore(sqliteFile(target.dataDir), { writer: options.writer ?? 'inline' });
    case 'postgres':
      return PostgresStore.open(target.url, target.schema === undefined ? {} : { schema: target.schema });
    case 'memory':
      return new SqliteStore(':memory:');
  }
}

/**
 * Whether the state of `target` exists already (the SQLite file, or the orchestrator's schema in PostgreSQL),
 * without creating anything: the command line's local commands refuse to make a new database by mistake.
 */
export async function storeExists(target: StoreTarget): Promise<boolean> {
  switch (target.adapter) {
    case 'sqlite':
      return existsSync(sqliteFile(target.dataDir));
    case 'postgres':
      return PostgresStore.exists(target.url, target.schema === undefined ? {} : { schema: target.schema });
    case 'memory':
      return true;
  }
}
