import { storageUnavailable } from '../store.js';

/**
 * PostgreSQL's SQLSTATE classes that mean the database cannot take work now, whatever was asked: a lost or
 * refused connection (08), insufficient resources such as a full disk (53), the server shutting down or
 * starting (57P), a system or I/O error (58), a read-only server such as a standby (25006), data corruption
 * (XX001, XX002). Anything else is a bug in what was asked of it.
 */
const UNAVAILABLE_STATES = /^(08|53|57P|58|25006|XX001|XX002)/;

/** Errors of the socket itself (no SQLSTATE): the server cannot be reached or went away. */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);

/** Whether a failure of the driver means the database cannot be reached or cannot take work now. */
export function isUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') return UNAVAILABLE_STATES.test(code) || CONNECTION_CODES.has(code);
  const message = err instanceof Error ? err.message : String(err);
  // node-postgres reports a connection lost mid-query or refused by the pool in words, without a code.
  return /Connection terminated|connection timeout|Client has encountered a connection error|Client was closed|timeout exceeded when trying to connect|not queryable|Query read timeout/i.test(message);
}

/** A failure of node-postgres as the error the store's caller sees: ORCH_STORAGE_UNAVAILABLE (503) when the database is at fault. */
export function fromPgError(err: unknown): Error {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null)?.code;
  const said = typeof code === 'string' ? `${code}: ${message}` : message;
  if (isUnavailable(err)) {
    const e = storageUnavailable(`PostgreSQL: ${said}`);
    e.cause = said;
    return e;
  }
  const e = new Error(said);
  e.name = 'StoreError';
  return e;
}
