import { join } from 'node:path';
import { afterEach } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';
import { storeContract } from './contract.js';

afterEach(cleanupTempDirs);

/** A SQLite file in a temporary folder; reopened from the same file once closed. */
function sqliteFactory(writer: 'inline' | 'thread') {
  return {
    open: (): Promise<Store> => Promise.resolve(new SqliteStore(join(tempDir(), 'contract.db'), { writer })),
    reopen: async (store: Store): Promise<Store> => {
      const path = (store as SqliteStore).path;
      await store.close();
      return new SqliteStore(path, { writer });
    },
  };
}

storeContract('sqlite, commits on the event loop', sqliteFactory('inline'));
storeContract('sqlite, commits on a writer thread', sqliteFactory('thread'));
