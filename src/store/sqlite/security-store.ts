import type { ApiToken, AuditEntry, AuditQuery, EnrollmentToken } from '../../domain/security.js';
import type { SecurityStore } from '../security-store.js';
import type { SqliteContext } from './context.js';
import { run } from './context.js';
import type { ApiTokenRow, AuditRow, EnrollmentTokenRow } from './rows.js';
import { toApiToken, toAudit, toEnrollmentToken } from './rows.js';

/** The SecurityStore verbs on SQLite. Their statements are prepared on first use: most processes never read these tables. */
export function sqliteSecurityStore(ctx: SqliteContext): SecurityStore {
  const db = ctx.db;
  let prepared: ReturnType<typeof prepare> | undefined;
  const prepare = () => ({
    getApiToken: db.prepare<[string], ApiTokenRow>('SELECT * FROM api_tokens WHERE id = ?'),
    listApiTokens: db.prepare<[], ApiTokenRow>('SELECT * FROM api_tokens ORDER BY created_at, id'),
    countApiTokens: db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM api_tokens'),
    getEnrollmentToken: db.prepare<[string], EnrollmentTokenRow>('SELECT * FROM enrollment_tokens WHERE id = ?'),
    listEnrollmentTokens: db.prepare<[], EnrollmentTokenRow>('SELECT * FROM enrollment_tokens ORDER BY created_at, id'),
    listAudit: db.prepare<[{ after: number; since: number | null; actor: string | null; action: string | null; limit: number }], AuditRow>(
      `SELECT * FROM audit_log
       WHERE id > @after AND (@since IS NULL OR at >= @since) AND (@actor IS NULL OR actor = @actor) AND (@action IS NULL OR action = @action)
       ORDER BY id LIMIT @limit`,
    ),
  });
  const lazy = (): ReturnType<typeof prepare> => (prepared ??= prepare());
  const self: SecurityStore = {
    insertApiToken(token: ApiToken, secretHash: string): Promise<void> {
      return ctx.write([{
        sql: 'INSERT INTO api_tokens (id, name, role, secret_hash, created_at, created_by, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        params: [token.id, token.name, token.role, secretHash, token.createdAt, token.createdBy, token.revokedAt],
      }]).then(() => undefined);
    },

    getApiToken(id: string): Promise<{ token: ApiToken; secretHash: string } | null> {
      return run(() => {
        const row = lazy().getApiToken.get(id);
        return row ? { token: toApiToken(row), secretHash: row.secret_hash } : null;
      });
    },

    listApiTokens(): Promise<ApiToken[]> {
      return run(() => lazy().listApiTokens.all().map(toApiToken));
    },

    revokeApiToken(id: string, at: number): Promise<boolean> {
      return ctx.write([{ sql: 'UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', params: [at, id], want: 'changes' }]).then(([n]) => n === 1);
    },

    countApiTokens(): Promise<number> {
      return run(() => lazy().countApiTokens.get()?.n ?? 0);
    },

    insertEnrollmentToken(token: EnrollmentToken, secretHash: string): Promise<void> {
      return ctx.write([{
        sql: `INSERT INTO enrollment_tokens (id, name, secret_hash, max_uses, uses, expires_at, require_approval, created_at, created_by, revoked_at)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        params: [token.id, token.name, secretHash, token.maxUses, token.uses, token.expiresAt, token.requireApproval ? 1 : 0, token.createdAt, token.createdBy, token.revokedAt],
      }]).then(() => undefined);
    },

    getEnrollmentToken(id: string): Promise<{ token: EnrollmentToken; secretHash: string } | null> {
      return run(() => {
        const row = lazy().getEnrollmentToken.get(id);
        return row ? { token: toEnrollmentToken(row), secretHash: row.secret_hash } : null;
      });
    },

    listEnrollmentTokens(): Promise<EnrollmentToken[]> {
      return run(() => lazy().listEnrollmentTokens.all().map(toEnrollmentToken));
    },

    revokeEnrollmentToken(id: string, at: number): Promise<boolean> {
      return ctx.write([{ sql: 'UPDATE enrollment_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', params: [at, id], want: 'changes' }]).then(([n]) => n === 1);
    },

    consumeEnrollmentToken(id: string, now: number): Promise<boolean> {
      return ctx.write([{
        sql: `UPDATE enrollment_tokens SET uses = uses + 1
              WHERE id = ? AND revoked_at IS NULL AND (max_uses IS NULL OR uses < max_uses) AND (expires_at IS NULL OR expires_at > ?)`,
        params: [id, now],
        want: 'changes',
      }]).then(([n]) => n === 1);
    },

    appendAudit(e: Omit<AuditEntry, 'id'>): Promise<void> {
      return ctx.write([{
        sql: 'INSERT INTO audit_log (at, actor, actor_token_id, role, action, target, outcome, status, address) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        params: [e.at, e.actor, e.actorTokenId, e.role, e.action, e.target, e.outcome, e.status, e.address],
      }]).then(() => undefined);
    },

    listAudit(q: AuditQuery): Promise<AuditEntry[]> {
      return run(() =>
        lazy().listAudit
          .all({ after: q.afterId ?? 0, since: q.since ?? null, actor: q.actor ?? null, action: q.action ?? null, limit: q.limit })
          .map(toAudit),
      );
    },
  };
  return self;
}
