import type { ApiToken, AuditEntry, AuditQuery, EnrollmentToken } from '../../domain/security.js';
import type { SecurityStore } from '../security-store.js';
import type { SqlContext } from './context.js';
import { whereOf } from './context.js';
import type { ApiTokenRow, AuditRow, EnrollmentTokenRow } from './rows.js';
import { toApiToken, toAudit, toEnrollmentToken } from './rows.js';

/** The SecurityStore verbs, for any SQL adapter. */
export function sqlSecurityStore(ctx: SqlContext): SecurityStore {
  return {
    insertApiToken(token: ApiToken, secretHash: string): Promise<void> {
      return ctx.write([{
        sql: 'INSERT INTO api_tokens (id, name, role, secret_hash, created_at, created_by, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
        params: [token.id, token.name, token.role, secretHash, token.createdAt, token.createdBy, token.revokedAt],
      }]).then(() => undefined);
    },

    async getApiToken(id: string): Promise<{ token: ApiToken; secretHash: string } | null> {
      const row = await ctx.one<ApiTokenRow>('SELECT * FROM api_tokens WHERE id = ?', [id]);
      return row ? { token: toApiToken(row), secretHash: row.secret_hash } : null;
    },

    async listApiTokens(): Promise<ApiToken[]> {
      return (await ctx.all<ApiTokenRow>('SELECT * FROM api_tokens ORDER BY created_at, id')).map(toApiToken);
    },

    revokeApiToken(id: string, at: number): Promise<boolean> {
      return ctx.write([{ sql: 'UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL', params: [at, id], want: 'changes' }]).then(([n]) => n === 1);
    },

    async countApiTokens(): Promise<number> {
      return (await ctx.one<{ n: number }>('SELECT COUNT(*) AS n FROM api_tokens'))?.n ?? 0;
    },

    insertEnrollmentToken(token: EnrollmentToken, secretHash: string): Promise<void> {
      return ctx.write([{
        sql: `INSERT INTO enrollment_tokens (id, name, secret_hash, max_uses, uses, expires_at, require_approval, created_at, created_by, revoked_at)
              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        params: [token.id, token.name, secretHash, token.maxUses, token.uses, token.expiresAt, token.requireApproval ? 1 : 0, token.createdAt, token.createdBy, token.revokedAt],
      }]).then(() => undefined);
    },

    async getEnrollmentToken(id: string): Promise<{ token: EnrollmentToken; secretHash: string } | null> {
      const row = await ctx.one<EnrollmentTokenRow>('SELECT * FROM enrollment_tokens WHERE id = ?', [id]);
      return row ? { token: toEnrollmentToken(row), secretHash: row.secret_hash } : null;
    },

    async listEnrollmentTokens(): Promise<EnrollmentToken[]> {
      return (await ctx.all<EnrollmentTokenRow>('SELECT * FROM enrollment_tokens ORDER BY created_at, id')).map(toEnrollmentToken);
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

    async listAudit(q: AuditQuery): Promise<AuditEntry[]> {
      const { where, params } = whereOf([
        ['id > ?', q.afterId ?? 0],
        q.since !== undefined ? ['at >= ?', q.since] : null,
        q.actor !== undefined ? ['actor = ?', q.actor] : null,
        q.action !== undefined ? ['action = ?', q.action] : null,
      ]);
      return (await ctx.all<AuditRow>(`SELECT * FROM audit_log ${where} ORDER BY id LIMIT ?`, [...params, q.limit])).map(toAudit);
    },
  };
}
