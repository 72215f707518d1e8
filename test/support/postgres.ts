import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The PostgreSQL the tests use: the local one (trust authentication), or TEST_DATABASE_URL. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const made: string[] = [];

/** A new schema name for one store of one test; `dropTestSchemas` removes them all. */
export function testSchema(prefix = 't'): string {
  const name = `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`;
  made.push(name);
  return name;
}

/** Drops the schemas this test file made (with everything in them). */
export async function dropTestSchemas(): Promise<void> {
  const names = made.splice(0);
  if (names.length === 0) return;
  const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await client.connect();
  try {
    for (const n of names) await client.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(n)} CASCADE`);
  } finally {
    await client.end();
  }
}
