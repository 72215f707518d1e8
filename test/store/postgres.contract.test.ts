import { afterAll } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import type { Store } from '../../src/store/store.js';
import { dropTestSchemas, TEST_DATABASE_URL, testSchema } from '../support/postgres.js';
import { storeContract } from './contract.js';

afterAll(dropTestSchemas);

/** A schema of its own on the local PostgreSQL for each store; reopened on the same schema once closed. */
storeContract('postgres', {
  open: (): Promise<Store> => PostgresStore.open(TEST_DATABASE_URL, { schema: testSchema('contract') }),
  reopen: async (store: Store): Promise<Store> => {
    const { url, schema } = store as PostgresStore;
    await store.close();
    return PostgresStore.open(url, schema === undefined ? {} : { schema });
  },
});
