import { isIP } from 'node:net';
import { OrchestratorError } from '../domain/errors.js';
import type { ApiToken, Role } from '../domain/security.js';
import { ROLES, roleAtLeast } from '../domain/security.js';
import { hashSecret, newSecret, newShortId, safeEqual } from '../domain/secrets.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';
import type { Access } from './access.js';
import type { Rate } from './rate-limit.js';
import { RateLimiter } from './rate-limit.js';

/** Who a request comes from. */
export type Identity =
  | { kind: 'operator'; tokenId: string; name: string; role: Role }
  /** Anyone on this machine, while the API is open (bound to loopback, no token ever created): acts as admin. */
  | { kind: 'local' }
  | { kind: 'anonymous' };

/** An operator's API token: `orch_` + a 12-character id + `_` + a 43-character secret. */
const API_TOKEN = /^orch_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;
const BEARER = /^Bearer +(\S{1,400})$/i;

export interface GuardOptions {
  store: Store;
  clock: Clock;
  /** The address the API listens on. */
  host: string;
  /** ADMIN_TOKEN: an admin token from the environment (not stored); '' for none. */
  adminToken: string;
  /** Failed authentications allowed per client address before 429; null: no limit. */
  authFailures: Rate | null;
  /** Enrollments allowed per client address; null: no limit. */
  enrollments: Rate | null;
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '[::1]') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** A new token's text, shown once: its secret is kept only hashed. */
function newApiTokenText(): { id: string; text: string; secretHash: string } {
  const id = newShortId(12);
  const secret = newSecret(32);
  return { id, text: `orch_${id}_${secret}`, secretHash: hashSecret(secret) };
}

/** Stores a new API token and returns it with its text, which is in the answer and nowhere else (the API and the CLI). */
export async function createApiToken(store: Store, input: { name: string; role: Role; createdBy: string; now: number }): Promise<{ token: ApiToken; text: string }> {
  if (!(ROLES as readonly string[]).includes(input.role)) throw new OrchestratorError('ORCH_VALIDATION', `role must be one of ${ROLES.join(', ')}`);
  const { id, text, secretHash } = newApiTokenText();
  const token: ApiToken = { id, name: input.name, role: input.role, createdAt: input.now, createdBy: input.createdBy, revokedAt: null };
  await store.insertApiToken(token, secretHash);
  return { token, text };
}

/**
 * Authentication and authorisation of operator requests, and the limits on
 * failed attempts and enrollments. Open mode: bound to loopback with no token
 * ever created and no ADMIN_TOKEN, every request acts as `local` (the seed's
 * unauthenticated API). Once a token exists the API asks for one, for good:
 * revoking every token does not open it again.
 */
export class Guard {
  private openNow: boolean;
  private readonly adminHash: string | null;
  readonly failures: RateLimiter;
  readonly enrollments: RateLimiter;

  constructor(private readonly options: GuardOptions) {
    this.adminHash = options.adminToken === '' ? null : hashSecret(options.adminToken);
    this.openNow = isLoopback(options.host) && this.adminHash === null;
    this.failures = new RateLimiter(options.authFailures, options.clock);
    this.enrollments = new RateLimiter(options.enrollments, options.clock);
  }

  /** Whether authentication is configured: an ADMIN_TOKEN, or a stored API token that is not revoked. */
  async configured(): Promise<boolean> {
    if (this.adminHash !== null) return true;
    return (await this.options.store.listApiTokens()).some((t) => t.revokedAt === null);
  }

  /** True while the API is open (re-checked until a token appears, which may be created by the CLI meanwhile). */
  async isOpen(): Promise<boolean> {
    if (this.openNow && (await this.options.store.countApiTokens()) > 0) this.openNow = false;
    return this.openNow;
  }

  /**
   * The identity of a request to an operator route, or an error: 401 (no,
   * malformed, unknown or revoked token), 403 (an agent credential), 429 (too
   * many failures from this address). The role is checked by `assertRole`.
   */
  async authenticate(authorization: string | undefined, address: string, from: { remote?: boolean } = {}): Promise<Identity> {
    // A request another replica forwarded from a client that may be elsewhere is never local.
    if (from.remote !== true && (await this.isOpen())) return { kind: 'local' };
    this.assertNotBlocked(address);
    const identity = await this.identify(authorization);
    if (identity === null) {
      this.fail(address);
      throw new OrchestratorError('ORCH_UNAUTHORIZED', authorization === undefined ? 'this route needs an API token: Authorization: Bearer <token>' : 'API token missing, malformed, unknown or revoked');
    }
    if (identity === 'agent') throw new OrchestratorError('ORCH_FORBIDDEN', 'an agent credential cannot call operator routes');
    return identity;
  }

  /** 403 unless the identity has `access` or a higher role (`local`, the open API, acts as admin). */
  assertRole(identity: Identity, access: Role): void {
    if (identity.kind === 'operator' && !roleAtLeast(identity.role, access)) {
      throw new OrchestratorError('ORCH_FORBIDDEN', `this route needs the ${access} role; the token has ${identity.role}`);
    }
  }

  /** 429 when this address failed to authenticate too often lately. */
  assertNotBlocked(address: string): void {
    const wait = this.failures.blockedFor(address);
    if (wait !== null) throw tooMany('too many failed authentications from this address', wait);
  }

  /** Counts a failed authentication; 429 instead of 401 once the address is over its limit. */
  fail(address: string): void {
    const wait = this.failures.take(address);
    if (wait !== null) throw tooMany('too many failed authentications from this address', wait);
  }

  /** Counts an enrollment attempt; 429 past the limit. */
  takeEnrollment(address: string): void {
    const wait = this.enrollments.take(address);
    if (wait !== null) throw tooMany('too many enrollments from this address', wait);
  }

  /** The operator a bearer token belongs to; 'agent' for an agent's credential; null for anything else. */
  private async identify(authorization: string | undefined): Promise<{ kind: 'operator'; tokenId: string; name: string; role: Role } | 'agent' | null> {
    const m = BEARER.exec(authorization ?? '');
    if (!m) return null;
    const text = m[1] as string;
    if (this.adminHash !== null && safeEqual(hashSecret(text), this.adminHash)) return { kind: 'operator', tokenId: 'env', name: 'ADMIN_TOKEN', role: 'admin' };
    const t = API_TOKEN.exec(text);
    if (!t) return /^[A-Za-z0-9._-]{1,100}:[A-Za-z0-9_-]{20,200}$/.test(text) ? 'agent' : null;
    const found = await this.options.store.getApiToken(t[1] as string);
    if (found === null || found.token.revokedAt !== null || !safeEqual(hashSecret(t[2] as string), found.secretHash)) return null;
    return { kind: 'operator', tokenId: found.token.id, name: found.token.name, role: found.token.role };
  }

  /** Creates an API token (see `createApiToken`); the API is not open any more. */
  async createToken(name: string, role: Role, createdBy: string): Promise<{ token: ApiToken; text: string }> {
    const created = await createApiToken(this.options.store, { name, role, createdBy, now: this.options.clock.now() });
    this.openNow = false;
    return created;
  }
}

/** An identity's name in the audit log. */
export function actorName(identity: Identity): string {
  return identity.kind === 'operator' ? identity.name : identity.kind;
}

/** Whether an access rule is an operator role (the rest are public, enroll and agent). */
export function isRole(access: Access): access is Role {
  return (ROLES as readonly string[]).includes(access);
}

function tooMany(message: string, waitMs: number): OrchestratorError {
  return new OrchestratorError('ORCH_RATE_LIMITED', message, { retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) });
}
