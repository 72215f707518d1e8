/**
 * Who may do what. Operators hold API tokens with a role; each role may do
 * what the roles below it may.
 * - viewer: read only;
 * - operator: tasks, deployments, devices and agents;
 * - admin: API tokens, enrollment tokens, ring configuration, agent approval, the audit log.
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export function roleAtLeast(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/** An operator's API token as stored (its secret only hashed). Shown in full once, when created. */
export interface ApiToken {
  id: string;
  name: string;
  role: Role;
  createdAt: number;
  /** Who created it: a token's name, `cli`, `env` or `local`. */
  createdBy: string;
  revokedAt: number | null;
}

/** A token network agents enroll with, limited in uses and time, and revocable. */
export interface EnrollmentToken {
  id: string;
  name: string;
  /** null: any number. */
  maxUses: number | null;
  uses: number;
  /** Epoch ms; null: never. */
  expiresAt: number | null;
  /** Agents enrolled with it wait as `pending` until an admin approves them, and get no tasks meanwhile. */
  requireApproval: boolean;
  createdAt: number;
  createdBy: string;
  revokedAt: number | null;
}

export type AuditOutcome = 'ok' | 'denied' | 'refused' | 'failed';

/** One operator or admin action: who, what, on what, when, and how it ended. */
export interface AuditEntry {
  id: number;
  at: number;
  /** The token's name, or `local` (an open loopback API), or `anonymous` (no valid token). */
  actor: string;
  actorTokenId: string | null;
  role: Role | null;
  /** The route, as `METHOD /path/:param`. */
  action: string;
  target: string | null;
  outcome: AuditOutcome;
  status: number;
  address: string | null;
}

export interface AuditQuery {
  actor?: string;
  action?: string;
  since?: number;
  /** Entries after this id (the cursor of the previous page). */
  afterId?: number;
  limit: number;
}

/** Agent approval: agents enrolled with a token that requires it start `pending`. */
export type Approval = 'approved' | 'pending';
