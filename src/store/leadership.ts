/**
 * The leader lease of a store that several replicas share (PostgreSQL). One replica leads: it took the lease
 * and renews it; the others follow, forwarding to the URL it advertises. Every commit of the leader checks,
 * in its own transaction, that the leader's epoch still holds the lease (`fence`), so that a leader that was
 * deposed while it could not tell (paused, cut off) commits nothing after its successor took over.
 *
 * Times are the database's (expiry is decided by its clock), so that replicas' clocks need not agree.
 */
export interface LeaseHolder {
  /** The replica's id (unique per process). */
  holder: string;
  /** Where the leader serves its API, for followers to forward to. */
  url: string;
  /** Increases by one at each change of leader. */
  epoch: number;
  /** Milliseconds until the lease expires, as the database counts them (negative: expired). */
  expiresInMs: number;
}

export interface Leadership {
  /**
   * Takes the lease if nobody holds it, it expired, or its holder's connection to the database is gone (a
   * process killed is seen at once, not at expiry). Resolves to the new epoch, or null when another holds it.
   */
  acquire(holder: string, url: string, leaseMs: number): Promise<number | null>;
  /** Extends the lease held with `epoch` by `leaseMs` from now; false when this holder no longer holds it. */
  renew(holder: string, epoch: number, leaseMs: number): Promise<boolean>;
  /** Who holds the lease now, expired or not; null when nobody ever took it. */
  current(): Promise<LeaseHolder | null>;
  /** Gives the lease up (a clean stop), so that a follower need not wait for it to expire. */
  release(holder: string, epoch: number): Promise<void>;
  /**
   * From now on every commit checks that `epoch` still holds the lease, and fails with ORCH_NOT_LEADER when it
   * does not; `closed` refuses every write at once without asking the database (a leader stepping down).
   */
  fence(epoch: number | 'closed' | null): void;
  /**
   * The secret the replicas share (made by the first replica that asks, then the same for all): a follower signs
   * what it says of a forwarded request's client with it, and the leader believes only what is signed.
   */
  replicaKey(): Promise<Buffer>;
  /** Closes the lease's own connection. */
  close(): Promise<void>;
}
