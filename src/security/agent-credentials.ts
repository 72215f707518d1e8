import { randomBytes } from 'node:crypto';
import { hashSecret, safeEqual } from '../domain/secrets.js';

/** A network agent's credential as held in memory. */
export interface HeldCredential {
  /** The credential's hash, as stored; null for agents that have none (spawned in process). */
  credentialHash: string | null;
  /**
   * The credential last found to match `credentialHash`, kept in memory only, so that each request is one
   * constant-time comparison rather than a hash. Cleared whenever the stored credential changes.
   */
  verifiedCredential?: string;
}

/** A request's agent credential: `Authorization: Bearer <agentId>:<secret>`. */
const AGENT_BEARER = /^Bearer ([A-Za-z0-9._-]{1,100}):([A-Za-z0-9_-]{20,200})$/;

/** The agent id and secret of an Authorization header, or null when it is not an agent credential. */
export function parseAgentBearer(authorization: string | undefined): { agentId: string; secret: string } | null {
  const m = AGENT_BEARER.exec(authorization ?? '');
  return m === null ? null : { agentId: m[1] as string, secret: m[2] as string };
}

/** A new agent credential: the secret the agent keeps, and the hash the orchestrator stores. */
export function newAgentCredential(): { secret: string; hash: string } {
  const secret = randomBytes(32).toString('base64url');
  return { secret, hash: hashSecret(secret) };
}

/** Whether the secret is the agent's credential (remembered once it matched, so that the next check is one comparison). */
export function credentialMatches(held: HeldCredential, secret: string): boolean {
  if (held.verifiedCredential !== undefined && safeEqual(secret, held.verifiedCredential)) return true;
  if (held.credentialHash === null || !safeEqual(hashSecret(secret), held.credentialHash)) return false;
  held.verifiedCredential = secret;
  return true;
}
