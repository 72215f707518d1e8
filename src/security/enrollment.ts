import { OrchestratorError } from '../domain/errors.js';
import type { EnrollmentToken } from '../domain/security.js';
import { hashSecret, newSecret, newShortId, safeEqual } from '../domain/secrets.js';
import type { Store } from '../store/store.js';
import type { Clock } from '../util/clock.js';

/** A stored enrollment token: `enr_` + a 12-character id + `_` + a 43-character secret. */
const ENROLLMENT_TOKEN = /^enr_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export interface NewEnrollmentToken {
  name: string;
  maxUses?: number;
  /** Epoch ms. */
  expiresAt?: number;
  requireApproval?: boolean;
}

/**
 * Enrollment tokens beside the default one (ENROLL_TOKEN, or the one generated
 * on the first start): each limited in uses and time, revocable, and able to
 * hold the agents it enrolls for an admin's approval. Only their hashes are
 * stored; a use is counted in the same commit that checks the limits.
 */
export class EnrollmentTokens {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
  ) {}

  async create(input: NewEnrollmentToken, createdBy: string): Promise<{ token: EnrollmentToken; text: string }> {
    const now = this.clock.now();
    if (input.expiresAt !== undefined && input.expiresAt <= now) throw new OrchestratorError('ORCH_VALIDATION', 'expiresAt is in the past');
    const id = newShortId(12);
    const secret = newSecret(32);
    const token: EnrollmentToken = {
      id,
      name: input.name,
      maxUses: input.maxUses ?? null,
      uses: 0,
      expiresAt: input.expiresAt ?? null,
      requireApproval: input.requireApproval ?? false,
      createdAt: now,
      createdBy,
      revokedAt: null,
    };
    await this.store.insertEnrollmentToken(token, hashSecret(secret));
    return { token, text: `enr_${id}_${secret}` };
  }

  list(): Promise<EnrollmentToken[]> {
    return this.store.listEnrollmentTokens();
  }

  /** Revokes a token (revoking it again changes nothing); 404 when there is no such token. */
  async revoke(id: string): Promise<EnrollmentToken> {
    await this.store.revokeEnrollmentToken(id, this.clock.now());
    const found = await this.store.getEnrollmentToken(id);
    if (found === null) throw new OrchestratorError('ORCH_TOKEN_NOT_FOUND', `no enrollment token ${id}`);
    return found.token;
  }

  /** Whether a text has the shape of a stored enrollment token (else it can only be the default one). */
  static looksStored(text: string): boolean {
    return ENROLLMENT_TOKEN.test(text);
  }

  /**
   * Admits a new agent with a token: the default one (`defaultToken`, '' when there is none; nothing is spent)
   * or a stored one, whose use is spent. Says whether the agent waits for an admin's approval; refused (403)
   * when the token is not accepted.
   */
  async admit(text: string, defaultToken: string): Promise<{ requireApproval: boolean }> {
    if (EnrollmentTokens.looksStored(text)) return { requireApproval: (await this.use(text)).requireApproval };
    if (defaultToken === '' || !safeEqual(text, defaultToken)) throw OrchestratorError.of('ORCH_ENROLL_REFUSED');
    return { requireApproval: false };
  }

  /**
   * Whether a returning agent's token is accepted: the default one, or a stored one that exists and is not
   * revoked. Its uses and expiry do not matter (it was spent when the agent first enrolled).
   */
  async known(text: string, defaultToken: string): Promise<boolean> {
    if (defaultToken !== '' && safeEqual(text, defaultToken)) return true;
    const m = ENROLLMENT_TOKEN.exec(text);
    const found = m === null ? null : await this.store.getEnrollmentToken(m[1] as string);
    return m !== null && found !== null && found.token.revokedAt === null && safeEqual(hashSecret(m[2] as string), found.secretHash);
  }

  /**
   * Spends one use of a stored token; refused (403) when unknown, revoked,
   * expired or used up, all with the same answer.
   */
  async use(text: string): Promise<EnrollmentToken> {
    const m = ENROLLMENT_TOKEN.exec(text);
    const found = m ? await this.store.getEnrollmentToken(m[1] as string) : null;
    if (m === null || found === null || !safeEqual(hashSecret(m[2] as string), found.secretHash) || !(await this.store.consumeEnrollmentToken(found.token.id, this.clock.now()))) {
      throw OrchestratorError.of('ORCH_ENROLL_REFUSED');
    }
    return found.token;
  }
}
