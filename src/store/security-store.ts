import type { ApiToken, AuditEntry, AuditQuery, EnrollmentToken } from '../domain/security.js';

/**
 * Operators' API tokens, enrollment tokens (secrets only as hashes) and the audit log. Every verb is atomic, and a write's promise resolves once it is durably committed, after every write
 * made before it (see Store).
 */
export interface SecurityStore {
  insertApiToken(token: ApiToken, secretHash: string): Promise<void>;
  getApiToken(id: string): Promise<{ token: ApiToken; secretHash: string } | null>;
  listApiTokens(): Promise<ApiToken[]>;
  /** Resolves true when the token existed and was not revoked yet. */
  revokeApiToken(id: string, at: number): Promise<boolean>;
  /** How many API tokens were ever created (revoked ones too): once one was, the API always asks for one. */
  countApiTokens(): Promise<number>;
  insertEnrollmentToken(token: EnrollmentToken, secretHash: string): Promise<void>;
  getEnrollmentToken(id: string): Promise<{ token: EnrollmentToken; secretHash: string } | null>;
  listEnrollmentTokens(): Promise<EnrollmentToken[]>;
  revokeEnrollmentToken(id: string, at: number): Promise<boolean>;
  /** Counts one use, in one commit, if the token is neither revoked, expired at `now` nor used up; resolves whether it did. */
  consumeEnrollmentToken(id: string, now: number): Promise<boolean>;
  appendAudit(entry: Omit<AuditEntry, 'id'>): Promise<void>;
  /** Entries oldest first, after `afterId`, matching every filter given. */
  listAudit(query: AuditQuery): Promise<AuditEntry[]>;
}
