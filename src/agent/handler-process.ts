import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../util/logger.js';
import { writeAtomically } from './files.js';

/**
 * Handler executables as processes: each runs as its own process group, and the whole group is killed
 * when its task ends, times out or is cancelled, and when the agent stops. Against an agent that dies
 * without stopping (SIGKILL, a crash, the OOM killer), two things:
 *
 * - a watchdog: one `/bin/sh` per agent, in its own session, reading the process groups to guard from a
 *   pipe. The agent's death closes the pipe's other end, whatever killed it; the watchdog reads the end of
 *   its input and kills every group still listed. This is plain POSIX (Linux, macOS, the BSDs).
 *   `PR_SET_PDEATHSIG` (`setpriv --pdeathsig`) was tried and left out: it kills only the handler itself,
 *   not the processes it started, which then run on.
 * - a record per running handler in `<state dir>/running/`: its pid, which is its process group's id, and
 *   the process's start time. An agent that starts finds the records its previous process left and kills
 *   those groups whose leader still runs with the recorded start time, so a pid reused by some other
 *   process is never killed. This covers a watchdog that died too.
 *
 * On Windows there are no process groups to signal: a handler is ended with `taskkill /T /F`, which ends
 * the processes it started as well while it is alive; there is no watchdog and no record.
 */

const POSIX = process.platform !== 'win32';

/** What the handler may write to stdout; more is a failure. */
export const OUTPUT_LIMIT = 1 << 20;

/**
 * How long to wait, once the handler has exited and its group was killed, for its output pipes to close.
 * Only a process that left the group (its own `setsid`) can hold them open longer; its output is not waited for.
 */
const PIPES_GRACE_MS = 2000;

/** A failure that retrying cannot fix (no such handler, bad parameters). */
export class NotRetryable extends Error {}

export interface AttemptKey {
  taskId: string;
  attempt: number;
}

/** A handler that was running when the agent's previous process ended. */
export interface LeftoverHandler extends AttemptKey {
  pid: number;
  /** Whether its process group was found running, and killed. */
  killed: boolean;
}

interface RunningRecord extends AttemptKey {
  pid: number;
  /** The leader's start time as this machine tells it, or null where it could not be read. */
  started: string | null;
}

export class HandlerProcesses {
  private readonly dir: string;
  private readonly watchdog: Watchdog | null;

  constructor(
    stateDir: string,
    private readonly log: Logger,
  ) {
    this.dir = join(stateDir, 'running');
    mkdirSync(this.dir, { recursive: true });
    this.watchdog = POSIX ? new Watchdog(log) : null;
  }

  /**
   * Kills the handler groups the agent's previous process left running, and forgets them. Call it before
   * the agent takes any task.
   */
  reapLeftovers(): LeftoverHandler[] {
    const out: LeftoverHandler[] = [];
    for (const file of readdirSync(this.dir)) {
      const path = join(this.dir, file);
      let rec: RunningRecord;
      try {
        rec = JSON.parse(readFileSync(path, 'utf8')) as RunningRecord;
      } catch {
        // A record cut short by the crash: nothing in it to act on.
        rmSync(path, { force: true });
        continue;
      }
      let killed = false;
      if (POSIX && Number.isInteger(rec.pid) && rec.pid > 1 && isAlive(rec.pid)) {
        const started = startTimeOf(rec.pid);
        if (rec.started !== null && started === rec.started) {
          killGroup(rec.pid);
          killed = true;
        } else {
          this.log.warn({ pid: rec.pid, taskId: rec.taskId, attempt: rec.attempt }, rec.started === null ? 'a handler left by the previous agent process cannot be told from another process (no start time): not killed' : 'the pid of a handler left by the previous agent process now belongs to another process: not killed');
        }
      }
      if (killed) this.log.warn({ pid: rec.pid, taskId: rec.taskId, attempt: rec.attempt }, 'killed the process group of a handler left running by the previous agent process');
      out.push({ taskId: rec.taskId, attempt: rec.attempt, pid: rec.pid, killed });
      rmSync(path, { force: true });
    }
    return out;
  }

  /**
   * Runs a handler: `params` as JSON on stdin, the result as JSON on stdout (other text comes back as
   * `{output}`); exit code 0 is success. The handler's exit status decides: a handler that exits without
   * reading its params (its stdin then fails with EPIPE) succeeds if it exits 0; if it fails, its error
   * says it did not read them. When `signal` aborts (cancel, timeout, the agent stopping) the group is killed
   * and the promise rejects with the signal's reason.
   */
  run(path: string, params: Record<string, unknown>, signal: AbortSignal, key: AttemptKey): Promise<unknown> {
    return new Promise((resolvePromise, reject) => {
      if (signal.aborted) return reject(abortReason(signal));
      const child = spawn(path, [], {
        stdio: ['pipe', 'pipe', 'pipe'],
        shell: false,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        // Its own process group (a new session) on POSIX, so that one signal reaches everything it starts.
        detached: POSIX,
        windowsHide: true,
      });
      const pid = child.pid;
      const recordPath = pid === undefined ? null : this.record(key, pid);
      let out = '';
      let err = '';
      let failure: Error | null = null;
      let unreadParams = false;
      let settled = false;
      let grace: ReturnType<typeof setTimeout> | null = null;

      const killAll = (): void => {
        if (pid === undefined) return;
        if (POSIX) killGroup(pid);
        else killTree(pid);
      };
      const fail = (why: Error): void => {
        failure ??= why;
        killAll();
      };
      const onAbort = (): void => fail(abortReason(signal));
      signal.addEventListener('abort', onAbort, { once: true });

      const settle = (): void => {
        if (settled) return;
        settled = true;
        if (grace) clearTimeout(grace);
        signal.removeEventListener('abort', onAbort);
        // The group is dead (killed when the handler exited, or before); it needs guarding no more.
        if (pid !== undefined) this.forget(pid, recordPath);
      };

      // The handler need not read its params: a pipe closed under the write is not an error by itself.
      child.stdin.on('error', (e: NodeJS.ErrnoException) => {
        unreadParams = true;
        if (e.code !== 'EPIPE' && e.code !== 'ECONNRESET') this.log.warn({ err: e.message, path }, "writing the handler's params failed");
      });
      child.stdout.setEncoding('utf8');
      child.stderr.setEncoding('utf8');
      child.stdout.on('data', (d: string) => {
        out += d;
        if (out.length > OUTPUT_LIMIT) fail(new Error('handler wrote more than 1 MiB to stdout'));
      });
      child.stderr.on('data', (d: string) => (err = (err + d).slice(-4000)));
      child.stdout.on('error', (e) => fail(new Error(`reading the handler's stdout failed: ${e.message}`)));
      child.stderr.on('error', (e) => fail(new Error(`reading the handler's stderr failed: ${e.message}`)));

      child.on('error', (e) => {
        // Mostly: the handler could not be started. Whatever may run of it is killed all the same.
        killAll();
        settle();
        reject(e);
      });
      child.on('exit', () => {
        // The task has ended: whatever the handler left running in its group goes with it, and so does
        // anything holding its pipes open. One that left the group is not waited for.
        if (POSIX && pid !== undefined) killGroup(pid);
        grace = setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
        }, PIPES_GRACE_MS);
      });
      child.on('close', (code, sig) => {
        if (settled) return;
        settle();
        if (failure) return reject(failure);
        if (code !== 0) {
          const how = code === null ? `was killed by ${String(sig)}` : `exited with ${code}`;
          const stderr = err.trim() ? `: ${err.trim().slice(-500)}` : '';
          return reject(new Error(`handler ${how}${stderr}${unreadParams ? ' (it exited without reading all of its params)' : ''}`));
        }
        const text = out.trim();
        try {
          resolvePromise(text === '' ? null : (JSON.parse(text) as unknown));
        } catch {
          resolvePromise({ output: text });
        }
      });
      child.stdin.end(JSON.stringify(params));
    });
  }

  /** Ends the watchdog (the agent stops, after killing its handlers). */
  close(): void {
    this.watchdog?.close();
  }

  /**
   * Guards a handler that just started: the watchdog is told first (a write to a pipe), then the record is
   * written. Between the spawn and these two lines, a few microseconds of this thread, an agent killed
   * leaves a handler that neither knows of.
   */
  private record(key: AttemptKey, pid: number): string | null {
    this.watchdog?.guard(pid);
    if (!POSIX) return null;
    const path = join(this.dir, `${encodeURIComponent(key.taskId)}.${key.attempt}.json`);
    const rec: RunningRecord = { taskId: key.taskId, attempt: key.attempt, pid, started: startTimeOf(pid) };
    try {
      writeAtomically(path, JSON.stringify(rec));
      return path;
    } catch (e) {
      this.log.warn({ err: e instanceof Error ? e.message : String(e), pid }, 'could not record a running handler: a restart after a crash would not find it');
      return null;
    }
  }

  private forget(pid: number, recordPath: string | null): void {
    this.watchdog?.release(pid);
    if (recordPath !== null) rmSync(recordPath, { force: true });
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('cancelled');
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, but is not ours to signal.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** SIGKILL to a whole process group; a group already gone is fine. */
function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // ESRCH: nothing left of it.
  }
}

function killTree(pid: number): void {
  const killer = spawn('taskkill', ['/pid', String(pid), '/t', '/f'], { stdio: 'ignore', windowsHide: true });
  killer.on('error', () => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
}

let bootId: string | null | undefined;

/**
 * When a process started, as a string that tells it from a later process with the same pid: on Linux the
 * boot's id and the start time in clock ticks since boot (/proc); elsewhere what `ps -o lstart=` prints.
 * Null when it cannot be read (no such process, or neither source available).
 */
function startTimeOf(pid: number): string | null {
  if (process.platform === 'linux') {
    try {
      bootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces and parentheses): state is the first, start time the 20th.
      const ticks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      return ticks === undefined ? null : `${bootId}/${ticks}`;
    } catch {
      return null;
    }
  }
  try {
    const text = execFileSync('ps', ['-o', 'lstart=', '-p', String(pid)], { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' }, timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    return text === '' ? null : text;
  } catch {
    return null;
  }
}

/**
 * Reads lines `+<pgid>` (guard) and `-<pgid>` (release) until its stdin ends, then SIGKILLs every group
 * still guarded. Its stdin ends when the agent closes it or dies. `kill -9 -<pgid>` and not `kill -KILL --
 * -<pgid>`: dash (Debian's /bin/sh) refuses the `--` form.
 */
const WATCHDOG_SCRIPT = `
live=
while IFS= read -r line; do
  case "$line" in
    +*) live="$live \${line#+}" ;;
    -*) g=\${line#-}; rest=; for x in $live; do [ "$x" = "$g" ] || rest="$rest $x"; done; live=$rest ;;
  esac
done
for g in $live; do kill -9 "-$g" 2>/dev/null; done
`;

class Watchdog {
  private child: ChildProcess | null = null;
  private readonly guarded = new Set<number>();
  private unavailable = false;

  /** Started at once, not with the first handler: spawning it takes long enough for an agent to die meanwhile. */
  constructor(private readonly log: Logger) {
    this.start();
  }

  guard(pgid: number): void {
    this.guarded.add(pgid);
    if (this.child === null && !this.unavailable) this.start();
    this.send(`+${pgid}\n`);
  }

  release(pgid: number): void {
    if (this.guarded.delete(pgid)) this.send(`-${pgid}\n`);
  }

  close(): void {
    this.child?.stdin?.end();
    this.child = null;
  }

  private start(): void {
    // Its own session: a Ctrl-C or hangup meant for the agent's terminal does not reach it.
    const child = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
    this.child = child;
    // It must not keep the agent alive: only the agent's own work does.
    child.unref();
    (child.stdin as Socket | null)?.unref();
    child.on('error', (e) => {
      this.unavailable = true;
      this.child = null;
      this.log.warn({ err: e.message }, 'no watchdog for handler processes (/bin/sh): handlers of an agent that dies run on until the agent starts again');
    });
    child.stdin?.on('error', () => undefined);
    child.on('exit', () => {
      // Killed by someone: a new one takes over the groups still running.
      if (this.child !== child) return;
      this.child = null;
      if (this.guarded.size > 0 && !this.unavailable) {
        this.start();
        this.send([...this.guarded].map((g) => `+${g}\n`).join(''));
      }
    });
  }

  private send(line: string): void {
    this.child?.stdin?.write(line);
  }
}
