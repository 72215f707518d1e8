import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { OrchestratorError } from '../../domain/errors.js';
import type { LeaseHolder, Leadership } from '../leadership.js';
import { OwnConnection } from './connection.js';
import { fromPgError, isUnavailable } from './errors.js';
import type { PgWriter } from './writer.js';

/** How long a follower waits for a take-over blocked by the leader's transaction in flight (then: not now). */
const LOCK_WAIT_MS = 2000;

/**
 * The leader lease on PostgreSQL: one row of `leader_lease` (migration 2), on a connection of its own so that
 * renewals never wait behind the writer's batches. Expiry is the database's clock; a holder whose lease
 * connection is gone (its process was killed) loses the lease at once. The fence is `orchestrator_fence(epoch)`,
 * run first in each of the writer's transactions.
 */
export class PgLeadership implements Leadership {
  private readonly connection: OwnConnection;

  constructor(
    connect: () => Promise<pg.Client>,
    private readonly writer: PgWriter,
  ) {
    this.connection = new OwnConnection(async () => {
      const c = await connect();
      try {
        await c.query(`SET lock_timeout = ${LOCK_WAIT_MS}`);
      } catch (err) {
        await c.end().catch(() => undefined);
        throw err;
      }
      return c;
    });
  }

  async acquire(holder: string, url: string, leaseMs: number): Promise<number | null> {
    try {
      const r = await this.query<{ epoch: number }>(
        `INSERT INTO leader_lease (name, holder, url, epoch, expires_at, backend_pid)
         VALUES ('leader', $1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond', pg_backend_pid())
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, url = excluded.url, epoch = leader_lease.epoch + 1,
           expires_at = excluded.expires_at, backend_pid = excluded.backend_pid
         WHERE leader_lease.expires_at < clock_timestamp() OR leader_lease.backend_pid IS NULL
           OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = leader_lease.backend_pid)
         RETURNING epoch`,
        [holder, url, leaseMs],
      );
      return r.rows[0]?.epoch ?? null;
    } catch (err) {
      // The leader's commit in flight holds the row (its fence): it is alive; try again later.
      if ((err as { code?: string }).code === '55P03') return null;
      throw fromPgError(err);
    }
  }

  async renew(holder: string, epoch: number, leaseMs: number): Promise<boolean> {
    try {
      const r = await this.query(
        `UPDATE leader_lease SET expires_at = clock_timestamp() + $3 * interval '1 millisecond', backend_pid = pg_backend_pid()
         WHERE name = 'leader' AND holder = $1 AND epoch = $2`,
        [holder, epoch, leaseMs],
      );
      return r.rowCount === 1;
    } catch (err) {
      throw fromPgError(err);
    }
  }

  async current(): Promise<LeaseHolder | null> {
    try {
      const r = await this.query<{ holder: string; url: string; epoch: number; expires_in_ms: number }>(
        `SELECT holder, url, epoch, EXTRACT(EPOCH FROM (expires_at - clock_timestamp())) * 1000 AS expires_in_ms FROM leader_lease WHERE name = 'leader'`,
      );
      const row = r.rows[0];
      return row ? { holder: row.holder, url: row.url, epoch: row.epoch, expiresInMs: Math.round(row.expires_in_ms) } : null;
    } catch (err) {
      throw fromPgError(err);
    }
  }

  async release(holder: string, epoch: number): Promise<void> {
    try {
      await this.query(`UPDATE leader_lease SET expires_at = clock_timestamp(), backend_pid = NULL WHERE name = 'leader' AND holder = $1 AND epoch = $2`, [holder, epoch]);
    } catch (err) {
      throw fromPgError(err);
    }
  }

  fence(epoch: number | 'closed' | null): void {
    if (epoch === 'closed') {
      this.writer.refuse(notLeader('this replica is stepping down'));
      return;
    }
    this.writer.refuse(null);
    this.writer.setFence(
      epoch === null
        ? null
        : {
            step: { sql: 'SELECT orchestrator_fence(?)', params: [epoch] },
            fenced: (err) => ((err as { code?: string }).code === 'OR001' ? notLeader(`deposed: ${(err as Error).message}`) : fromPgError(err)),
          },
    );
  }

  async replicaKey(): Promise<Buffer> {
    try {
      // In `meta`: the first replica's random key stays; every later one reads it (in a statement of its own, so
      // that it sees a key another replica committed while this one's insert waited on it).
      await this.query(`INSERT INTO meta (key, value) VALUES ('replica_key', $1) ON CONFLICT (key) DO NOTHING`, [randomBytes(32).toString('base64')]);
      const r = await this.query<{ value: string }>(`SELECT value FROM meta WHERE key = 'replica_key'`);
      return Buffer.from((r.rows[0] as { value: string }).value, 'base64');
    } catch (err) {
      throw fromPgError(err);
    }
  }

  close(): Promise<void> {
    return this.connection.close();
  }

  private async query<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    const client = await this.connection.get();
    try {
      return await client.query<R>(sql, params);
    } catch (err) {
      if (isUnavailable(err)) this.connection.discard(client);
      throw err;
    }
  }
}

function notLeader(why: string): OrchestratorError {
  return new OrchestratorError('ORCH_NOT_LEADER', `this replica no longer leads (${why}); retry: the request is served by the leader`, { retryAfterSeconds: 1 });
}
