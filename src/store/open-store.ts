import { join, resolve } from 'node:path';
import { SqliteStore } from './sqlite/sqlite-store.js';
import type { Store } from './store.js';

/** Where the orchestrator's state is kept: the SQLite file of a data directory, or memory (the simulator). */
export type StoreTarget = { adapter: 'sqlite'; dataDir: string } | { adapter: 'memory' };

export interface OpenStoreOptions {
  /**
   * `thread` commits on a writer thread, so that the event loop never waits for an fsync (the server);
   * `inline` commits on the event loop at the end of each turn (tools, and tests that drive a fake clock).
   * @default 'inline'
   */
  writer?: 'inline' | 'thread';
}

/** The SQLite file of a data directory. */
export function sqliteFile(dataDir: string): string {
  return join(resolve(dataDir), 'orchestrator.db');
}

/** Where the state of a configuration is. */
export function storeTarget(config: { dataDir: string }): StoreTarget {
  return { adapter: 'sqlite', dataDir: config.dataDir };
}

/**
 * The one place that chooses and opens a store adapter (the server, the CLI and the simulator open theirs
 * here). Throws what the adapter throws when the store cannot be opened (for SQLite, a DatabaseFileError
 * that names the file and what is wrong with it).
 */
export function openStore(target: StoreTarget, options: OpenStoreOptions = {}): Store {
  switch (target.adapter) {
    case 'sqlite':
      return new SqliteStore(sqliteFile(target.dataDir), { writer: options.writer ?? 'inline' });
    case 'memory':
      return new SqliteStore(':memory:');
  }
}
