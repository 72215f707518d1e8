import Database from 'better-sqlite3';
import { closeSync, fsyncSync, linkSync, openSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { dirname } from 'node:path';
import { describeFsError } from '../../util/dir-lock.js';
import { DatabaseFileError, openDatabaseFile } from './open.js';

/** The backup cannot be written where asked. `message` names the file and says what to do. */
export class BackupTargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupTargetError';
  }
}

export interface BackupResult {
  bytes: number;
  pages: number;
  schemaVersion: number;
}

/**
 * Copies the database at `source` to `target` with SQLite's online backup API: a consistent
 * snapshot, taken while an orchestrator may be writing (in WAL mode the copy's read transaction
 * blocks no writer). All pages are copied in one step, so writes made meanwhile cannot restart it.
 * The copy is written under a temporary name, checked with `PRAGMA quick_check`, made durable and
 * only then linked to `target`, which must not exist: a backup never overwrites a file.
 */
export async function backupDatabase(source: string, target: string): Promise<BackupResult> {
  try {
    statSync(target);
    throw new BackupTargetError(`${target} exists: name a new file (a backup never overwrites one)`);
  } catch (err) {
    if (err instanceof BackupTargetError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new BackupTargetError(`cannot reach ${target} (${describeFsError(err)})`);
  }
  try {
    if (!statSync(dirname(target)).isDirectory()) throw new Error('not a folder');
  } catch {
    throw new BackupTargetError(`the folder of ${target} does not exist: create it first`);
  }
  const db = openDatabaseFile(source, { create: false });
  const partial = `${target}.partial-${process.pid}`;
  try {
    db.pragma('busy_timeout = 5000');
    const schemaVersion = db.pragma('user_version', { simple: true }) as number;
    try {
      const done = await db.backup(partial, { progress: () => 0x7fffffff });
      const copy = new Database(partial, { fileMustExist: true });
      try {
        const problems = (copy.pragma('quick_check(3)') as { quick_check: string }[]).map((p) => p.quick_check);
        if (problems[0] !== 'ok') throw new Error(`the copy fails its check (quick_check: ${problems.join('; ')})`);
      } finally {
        copy.close();
      }
      const fd = openSync(partial, 'r+');
      try {
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      try {
        linkSync(partial, target);
      } catch (err) {
        throw new BackupTargetError(`cannot write ${target} (${describeFsError(err)})`);
      }
      unlinkSync(partial);
      return { bytes: statSync(target).size, pages: done.totalPages, schemaVersion };
    } catch (err) {
      if (err instanceof BackupTargetError || err instanceof DatabaseFileError) throw err;
      const code = String((err as NodeJS.ErrnoException).code);
      const sqlite = /^SQLITE_(CANTOPEN|FULL|READONLY|IOERR)/.test(code);
      if (sqlite || ['EACCES', 'EPERM', 'EROFS', 'ENOSPC'].includes(code)) {
        throw new BackupTargetError(`cannot write ${target} (${sqlite ? (err as Error).message : describeFsError(err)}): choose a folder this user can write, with room for the copy`);
      }
      throw err;
    } finally {
      for (const f of [partial, `${partial}-wal`, `${partial}-shm`]) rmSync(f, { force: true });
    }
  } finally {
    db.close();
  }
}
