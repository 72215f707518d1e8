import Database from 'better-sqlite3';
import { accessSync, closeSync, constants, fsyncSync, linkSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { describeFsError } from '../../util/dir-lock.js';
import { StoreOpenError } from '../store.js';

/**
 * Opening the database file, with every way it can be unusable told apart and said in one line that
 * names the file and what to do. Only a missing file is a new install: it is created under a
 * temporary name and linked into place once it is a valid (WAL-mode) database, so a crash never
 * leaves an empty `orchestrator.db` behind to be mistaken for one.
 */

/** The database file cannot be used as it is. `message` names the file and says what to do. */
export class DatabaseFileError extends StoreOpenError {
  readonly file: string;
  constructor(file: string, message: string) {
    super(message);
    this.name = 'DatabaseFileError';
    this.file = file;
  }
}

/**
 * Files up to this size get a full `PRAGMA quick_check` at open (every page of every table and
 * index; about 0.2 s for 128 MB in the page cache, a few seconds from a cold, slow disk). Larger
 * ones get the header and schema checks only: a quick check reads the whole file, which for a large
 * fleet's database would add tens of seconds to every start. Damage met later while the start reads
 * the fleet is reported the same way (see `explainSqliteError`).
 */
export const QUICK_CHECK_MAX_BYTES = 128 * 1024 * 1024;

const MAGIC = Buffer.from('SQLite format 3\0', 'latin1');
const RESTORE = 'restore it from a backup (docs/operations.md)';

/**
 * What a SQLite error met while opening or reading the file means for the operator, or null when it
 * is not about the file (a bug, to be reported as such).
 */
export function explainSqliteError(file: string, err: unknown): DatabaseFileError | null {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return null;
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'SQLITE_NOTADB') return new DatabaseFileError(file, `${file} is not a SQLite database (damaged, or another kind of file): ${RESTORE}, or move it away to start a new install`);
  if (code.startsWith('SQLITE_CORRUPT')) return new DatabaseFileError(file, `${file} is damaged (${detail}): ${RESTORE}`);
  if (code.startsWith('SQLITE_READONLY')) return new DatabaseFileError(file, `cannot write ${file} or its -wal and -shm files (${detail}): give the user running the orchestrator write access to them and to their folder`);
  if (code.startsWith('SQLITE_CANTOPEN') || code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') return new DatabaseFileError(file, `cannot open ${file} (${detail}): give the user running the orchestrator read and write access to it, its -wal and -shm files and their folder`);
  if (code === 'SQLITE_FULL') return new DatabaseFileError(file, `cannot write ${file}: the disk is full; free some space`);
  if (code.startsWith('SQLITE_IOERR')) return new DatabaseFileError(file, `cannot read or write ${file} (${detail}): check the disk and the file system`);
  return null;
}

/** A new, valid and empty WAL-mode database at `path`, which must not exist. */
function createNew(path: string): void {
  try {
    mkdirSync(dirname(path), { recursive: true });
  } catch (err) {
    throw new DatabaseFileError(path, `cannot create the folder of ${path} (${describeFsError(err)}): create it, writable by the user running the orchestrator, or choose another folder`);
  }
  const tmp = `${path}.new-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const db = new Database(tmp);
    try {
      // Writes the first page: the file is a database from here on.
      db.pragma('journal_mode = WAL');
    } finally {
      db.close();
    }
    const fd = openSync(tmp, 'r+');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      // link, unlike rename, never replaces a database another process created meanwhile.
      linkSync(tmp, path);
      unlinkSync(tmp);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') unlinkSync(tmp);
      else if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EXDEV') renameSync(tmp, path); // no hard links on this file system
      else throw err;
    }
    syncDir(dirname(path));
  } catch (err) {
    rmSync(tmp, { force: true });
    if (err instanceof DatabaseFileError) throw err;
    throw explainSqliteError(path, err) ?? new DatabaseFileError(path, `cannot create ${path} (${describeFsError(err)}): give the user running the orchestrator write access to its folder, or choose another folder`);
  }
}

/** Makes a new name in the folder durable (where folders can be opened; not on Windows). */
function syncDir(dir: string): void {
  let fd: number;
  try {
    fd = openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // Not supported here.
  } finally {
    closeSync(fd);
  }
}

export interface OpenOptions {
  /** Create the file when it does not exist (a new install). @default true */
  create?: boolean;
  /** Files up to this size get a full quick check. @default QUICK_CHECK_MAX_BYTES */
  quickCheckMaxBytes?: number;
}

/**
 * Opens `path` in WAL mode after checking, in this order: that it exists (a missing file is created,
 * unless `create` is false; a missing file beside a -wal file is refused), that it is a non-empty
 * regular file this process can read and write, that it begins with the SQLite header, that SQLite
 * can read its schema, and (up to `quickCheckMaxBytes`) that `PRAGMA quick_check` finds it sound.
 * Throws DatabaseFileError; nothing is written to a file that fails a check.
 */
export function openDatabaseFile(path: string, options: OpenOptions = {}): Database.Database {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new DatabaseFileError(path, `${path} is not a file: move it away, or point the orchestrator at another folder`);
    size = st.size;
  } catch (err) {
    if (err instanceof DatabaseFileError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new DatabaseFileError(path, `cannot reach ${path} (${describeFsError(err)}): give the user running the orchestrator access to its folder`);
    if (options.create === false) throw new DatabaseFileError(path, `${path} does not exist: check the folder (DATA_DIR or --data-dir)`);
    let walSize = 0;
    try {
      walSize = statSync(`${path}-wal`).size;
    } catch {
      // No write-ahead log: a clean new install.
    }
    if (walSize > 0) {
      throw new DatabaseFileError(path, `${path} is missing but its write-ahead log ${path}-wal is there: the database was moved or deleted without it; put the database back, or delete ${path}-wal and ${path}-shm to start a new install`);
    }
    createNew(path);
    size = statSync(path).size;
  }
  if (size === 0) {
    throw new DatabaseFileError(path, `${path} is empty (0 bytes), which is a damaged database, not a new install: ${RESTORE}, or delete it to start a new install`);
  }
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    throw new DatabaseFileError(path, `cannot read ${path} (${describeFsError(err)}): give the user running the orchestrator read and write access to it`);
  }
  try {
    accessSync(path, constants.W_OK);
  } catch (err) {
    throw new DatabaseFileError(path, `cannot write ${path} (${describeFsError(err)}): give the user running the orchestrator write access to it`);
  }
  const header = Buffer.alloc(MAGIC.length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (!header.equals(MAGIC)) {
    throw new DatabaseFileError(path, `${path} is not a SQLite database (damaged, or another kind of file): ${RESTORE}, or move it away to start a new install`);
  }
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true });
    // Parses the whole schema: a damaged first page or schema table fails here.
    db.prepare('SELECT count(*) FROM sqlite_schema').get();
    if (size <= (options.quickCheckMaxBytes ?? QUICK_CHECK_MAX_BYTES)) {
      const problems = (db.pragma('quick_check(3)') as { quick_check: string }[]).map((p) => p.quick_check);
      if (problems[0] !== 'ok') throw new DatabaseFileError(path, `${path} is damaged (quick_check: ${problems.join('; ').replace(/\s+/g, ' ')}): ${RESTORE}`);
    }
    // Only now, with the file found sound, anything is written to it.
    db.pragma('journal_mode = WAL');
    return db;
  } catch (err) {
    db?.close();
    if (err instanceof DatabaseFileError) throw err;
    throw explainSqliteError(path, err) ?? err;
  }
}
