import { storageUnavailable } from '../store.js';

/**
 * SQLite's error codes that mean the disk or the database cannot take writes (or reads) now: a full disk,
 * an I/O error, a read-only or unreachable file, a lock held too long, a damaged file. Anything else is a
 * bug in what was asked of it.
 */
const UNAVAILABLE = /^SQLITE_(FULL|IOERR|READONLY|CANTOPEN|BUSY|LOCKED|CORRUPT|NOTADB|PERM|PROTOCOL|NOLFS)/;


/** A failed statement of SQLite as the error its caller sees: ORCH_STORAGE_UNAVAILABLE (503) when the disk or file is at fault. */
export function storageError(message: string, code: string | undefined): Error {
  if (code !== undefined && UNAVAILABLE.test(code)) {
    const err = storageUnavailable(`${code}: ${message}`);
    // What SQLite said, for whoever reports the failure in its own words (the storage guard, /readyz).
    err.cause = `${code}: ${message}`;
    return err;
  }
  const err = new Error(code === undefined ? message : `${code}: ${message}`);
  err.name = 'StoreError';
  return err;
}

/** `storageError` for an error thrown by better-sqlite3. */
export function fromSqliteError(err: unknown): Error {
  const code = (err as { code?: unknown } | null)?.code;
  return storageError(err instanceof Error ? err.message : String(err), typeof code === 'string' ? code : undefined);
}
