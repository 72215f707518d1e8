import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * One process per folder: a lock file created with O_EXCL in the folder, holding the holder's pid and
 * enough to tell that pid's process from a later one with the same number. Released on any exit of
 * the holder that runs `exit` handlers; after a SIGKILL, a crash or a power loss the file stays, and
 * the next process finds its holder dead and takes the folder over.
 *
 * The holder is alive when its pid exists (`kill(pid, 0)`) and, where the system tells a process's
 * start time (Linux: /proc/PID/stat), that process started when the holder did; a different boot id
 * means a reboot came in between, and the holder is dead. A holder recorded on another host cannot
 * be checked from here and counts as alive. Plain Node (no native module): the agent uses it too.
 */

export interface LockHolder {
  pid: number;
  host: string;
  /** What holds it, e.g. `orchestrator serve`. */
  command: string;
  /** ISO time the lock was taken. */
  since: string;
  /** Linux: /proc/sys/kernel/random/boot_id of the holder's boot. */
  bootId?: string;
  /** Linux: the holder's start time in clock ticks since boot (field 22 of /proc/PID/stat). */
  startTicks?: string;
  /** Tells this holder's file from another's with the same pid. */
  nonce: string;
}

export interface DirLock {
  readonly dir: string;
  readonly file: string;
  readonly holder: LockHolder;
  /** Deletes the lock file if it is still this lock's. Idempotent. */
  release(): void;
}

/** The folder is held by a live process (or one on another host, which cannot be checked). */
export class DirLockedError extends Error {
  readonly dir: string;
  readonly file: string;
  readonly holder: LockHolder;
  /** False when the holder is on another host: it may have died, which this machine cannot tell. */
  readonly checked: boolean;
  constructor(dir: string, file: string, holder: LockHolder, checked: boolean) {
    super(`${dir} is held by ${holder.command} (pid ${holder.pid}${holder.host === hostname() ? '' : ` on ${holder.host}`}, since ${holder.since}; lock file ${file})`);
    this.name = 'DirLockedError';
    this.dir = dir;
    this.file = file;
    this.holder = holder;
    this.checked = checked;
  }
}

/** A file system error in a few words: `permission denied`, `read-only file system`, ... */
export function describeFsError(err: unknown): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'ENOTDIR':
    case 'EEXIST':
      return 'a file is in the way of a folder';
    case 'ENOENT':
      return 'no such folder';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/** Nonces of the locks this process holds now. */
const heldHere = new Set<string>();

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/** The file's text, or null when it does not exist (any other error is thrown). */
function readUnlessGone(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

function bootId(): string | undefined {
  return readOrNull('/proc/sys/kernel/random/boot_id') ?? undefined;
}

/** A process's start time in clock ticks since boot, from /proc (Linux); undefined elsewhere or when it is gone. */
function startTicks(pid: number): string | undefined {
  const stat = readOrNull(`/proc/${pid}/stat`);
  if (stat === null) return undefined;
  // The command name (field 2) is in parentheses and may hold spaces or parentheses: count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
}

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether the holder still runs: 'alive', 'dead', or 'unknown' (another host). */
function holderState(h: LockHolder): 'alive' | 'dead' | 'unknown' {
  if (h.host !== hostname()) return 'unknown';
  const boot = bootId();
  if (h.bootId !== undefined && boot !== undefined && h.bootId !== boot) return 'dead';
  // Our own pid: alive only if this very process holds that lock (a container restarted under the same pid is not).
  if (h.pid === process.pid) return heldHere.has(h.nonce) ? 'alive' : 'dead';
  if (!pidExists(h.pid)) return 'dead';
  const ticks = startTicks(h.pid);
  if (h.startTicks !== undefined && ticks !== undefined && ticks !== h.startTicks) return 'dead';
  return 'alive';
}

function parseHolder(text: string): LockHolder | null {
  try {
    const h = JSON.parse(text) as Partial<LockHolder>;
    if (typeof h.pid !== 'number' || !Number.isInteger(h.pid) || h.pid <= 0 || typeof h.nonce !== 'string' || typeof h.host !== 'string') return null;
    return { pid: h.pid, host: h.host, command: typeof h.command === 'string' ? h.command : 'another process', since: typeof h.since === 'string' ? h.since : '?', nonce: h.nonce, ...(typeof h.bootId === 'string' ? { bootId: h.bootId } : {}), ...(typeof h.startTicks === 'string' ? { startTicks: h.startTicks } : {}) };
  } catch {
    return null;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export interface LockOptions {
  /** Called at each step of taking over a stale lock, so that a test can run other takers between them. */
  onStep?: (step: string) => void;
}

/** A lock file without a readable holder this old was left by a process killed while writing it. */
const UNREADABLE_STALE_MS = 2000;

/**
 * Takes `name` in `dir` (which must exist) for this process, or throws DirLockedError naming the
 * live holder. File system errors (EACCES, EROFS, ENOENT, ENOTDIR) are thrown as they are.
 */
export function lockDir(dir: string, name: string, command: string, options: LockOptions = {}): DirLock {
  const abs = resolve(dir);
  const file = join(abs, name);
  const boot = bootId();
  const ticks = startTicks(process.pid);
  const holder: LockHolder = {
    pid: process.pid,
    host: hostname(),
    command,
    since: new Date().toISOString(),
    ...(boot !== undefined ? { bootId: boot } : {}),
    ...(ticks !== undefined ? { startTicks: ticks } : {}),
    nonce: randomBytes(8).toString('hex'),
  };
  const text = `${JSON.stringify(holder)}\n`;
  const deadline = performance.now() + 5000;
  for (;;) {
    if (performance.now() > deadline) throw new Error(`could not take ${file}: it kept changing for 5 s`);
    let fd: number;
    try {
      fd = openSync(file, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const seen = snapshot(file);
      if (seen === null) continue; // released meanwhile: try again
      const judged = judge(seen);
      if (judged.state === 'being-written') {
        sleepSync(50);
        continue;
      }
      if (judged.holder !== null && judged.state !== 'dead') throw new DirLockedError(abs, file, judged.holder, judged.state === 'alive');
      options.onStep?.('judged-stale');
      if (!removeStale(file, seen, holder, options)) sleepSync(10);
      continue;
    }
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      unlinkSync(file);
      throw err;
    }
    closeSync(fd);
    heldHere.add(holder.nonce);
    return held(abs, file, holder);
  }
}

/** A lock file as one reader saw it: its text and which file it was (a later file may reuse the name). */
interface Snapshot {
  text: string;
  ino: string;
  mtimeNs: string;
  mtimeMs: number;
}

/** The file's text and identity, or null when it does not exist. */
function snapshot(path: string): Snapshot | null {
  const text = readUnlessGone(path);
  if (text === null) return null;
  try {
    const st = statSync(path, { bigint: true });
    return { text, ino: String(st.ino), mtimeNs: String(st.mtimeNs), mtimeMs: Number(st.mtimeMs) };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Who holds a lock or claim file as seen, and whether they still run (holderState). A file without a
 * readable holder is being written now, or was left half-written by a process killed while writing it:
 * 'dead' once it is UNREADABLE_STALE_MS old.
 */
function judge(seen: Snapshot): { holder: LockHolder | null; state: 'alive' | 'dead' | 'unknown' | 'being-written' } {
  const holder = parseHolder(seen.text);
  if (holder !== null) return { holder, state: holderState(holder) };
  return { holder: null, state: Date.now() - seen.mtimeMs < UNREADABLE_STALE_MS ? 'being-written' : 'dead' };
}

function sameFile(a: Snapshot, b: Snapshot | null): boolean {
  return b !== null && a.text === b.text && a.ino === b.ino && a.mtimeNs === b.mtimeNs;
}

/**
 * Deletes a stale lock file, unless it changed since it was judged stale. Several processes may find
 * the same stale file; the slower ones must not delete the lock the fastest has taken meanwhile, nor
 * leave the name free for a moment while another holds it. So only one process at a time may delete
 * a given stale file: it first creates a claim file named for that file (O_EXCL), then, holding it,
 * checks that the lock is still that file and deletes it, then deletes its claim. A lock file is only
 * ever deleted by its own holder or under such a claim, so a live lock is never deleted.
 *
 * A claim left by a process killed while holding it is judged as a lock is (its holder dead, or
 * unreadable and old), and the next claim of the chain (`-1`, `-2`, ...) is taken instead; whoever
 * finishes deletes the chain. Returns false when a live process holds the claim: try again shortly.
 */
function removeStale(file: string, stale: Snapshot, me: LockHolder, options: LockOptions): boolean {
  const key = createHash('sha256').update(`${stale.ino}:${stale.mtimeNs}:${stale.text}`).digest('hex').slice(0, 16);
  const claimOf = (k: number): string => `${file}.takeover-${key}-${k}`;
  for (let k = 0; ; k++) {
    const claim = claimOf(k);
    let fd: number;
    try {
      fd = openSync(claim, 'wx', 0o644);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const seen = snapshot(claim);
      if (seen === null) return false; // its holder has just finished
      if (judge(seen).state === 'dead') continue;
      return false;
    }
    heldHere.add(me.nonce);
    try {
      try {
        writeSync(fd, JSON.stringify(me));
      } finally {
        closeSync(fd);
      }
      options.onStep?.('claimed');
      if (sameFile(stale, snapshot(file))) {
        try {
          unlinkSync(file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
    } finally {
      heldHere.delete(me.nonce);
      for (let j = k; j >= 0; j--) {
        try {
          unlinkSync(claimOf(j));
        } catch {
          // Gone already.
        }
      }
    }
    return true;
  }
}

function held(dir: string, file: string, holder: LockHolder): DirLock {
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    heldHere.delete(holder.nonce);
    process.removeListener('exit', release);
    // Delete only our own file: never a lock another process took after ours was judged stale.
    if (parseHolder(readOrNull(file) ?? '')?.nonce === holder.nonce) {
      try {
        unlinkSync(file);
      } catch {
        // Already gone.
      }
    }
  };
  process.on('exit', release);
  return { dir, file, holder, release };
}
