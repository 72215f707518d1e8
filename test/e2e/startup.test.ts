import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:net';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import type { CliOptions } from '../support/server-process.js';
import { runCli, serversPerTest, waitFor } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

/**
 * Start-up refusals, each in a real process: the exit code, one line on stderr that names the setting
 * or file and what to do, and nothing written.
 */

const start = serversPerTest();
const FAST = { HEARTBEAT_INTERVAL: '250ms', AGENT_TIMEOUT: '3s' };

type Run = ReturnType<typeof runCli>;
const running: Run[] = [];
const listeners: Server[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGKILL');
      await r.exited;
    }
  }
  for (const l of listeners.splice(0)) await new Promise((done) => l.close(done));
});

function cli(args: string[], env: Record<string, string>, options?: CliOptions): Run {
  const r = runCli(args, env, options);
  running.push(r);
  return r;
}

/** The exit code, or 'still running' (then killed) if the process has not ended within `ms`: the old code started instead of refusing. */
async function exitOf(run: Run, ms = 20_000): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((done) => (timer = setTimeout(() => done('still running'), ms)));
  const code = await Promise.race([run.exited, timeout]);
  clearTimeout(timer);
  if (code === 'still running') run.child.kill('SIGKILL');
  return code;
}

/** Asserts exit 2 and one line on stderr matching every pattern; returns the line. */
async function expectRefused(run: Run, ...patterns: (string | RegExp)[]): Promise<string> {
  const code = await exitOf(run);
  const err = run.err();
  expect({ code, err }).toMatchObject({ code: 2 });
  const lines = err.split('\n').filter((l) => l !== '');
  expect(lines, err).toHaveLength(1);
  const line = lines[0] as string;
  for (const p of patterns) expect(line).toMatch(typeof p === 'string' ? new RegExp(escape(p)) : p);
  // Nothing of the start-up story: no agent spawned, nothing restored.
  expect(run.out()).toBe('');
  return line;
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function sha(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function ls(dir: string): string[] {
  return readdirSync(dir).sort();
}

/** A port something else listens on. */
async function busyPort(): Promise<number> {
  const server = createServer();
  listeners.push(server);
  await new Promise<void>((done) => server.listen({ host: '127.0.0.1', port: 0 }, done));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('no address');
  return address.port;
}

/** A port nothing listens on (for an agent whose server is down). */
async function closedPort(): Promise<number> {
  const port = await busyPort();
  const server = listeners.pop() as Server;
  await new Promise((done) => server.close(done));
  return port;
}

/**
 * Runs as root cannot be denied by file permissions: those processes run as nobody instead, so that
 * a folder or file without permission for "others" really fails. As any other user, permissions
 * apply to the owner as they are.
 */
const AS_ROOT = process.getuid?.() === 0;
const UNPRIVILEGED: CliOptions = AS_ROOT ? { uid: 65534, gid: 65534 } : {};

/** A small valid orchestrator-free SQLite database in WAL mode, closed. */
function sqliteFile(path: string, rows = 3000): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  db.transaction(() => {
    for (let i = 0; i < rows; i++) insert.run(`row ${i} ${'.'.repeat(50)}`);
  })();
  db.close();
}

describe('one orchestrator per DATA_DIR', () => {
  it("refuses a second serve on the same DATA_DIR, naming the first one's pid; token commands still work; after a SIGKILL the stale lock does not block the next start", async () => {
    const dataDir = tempDir();
    const first = await start({ DATA_DIR: dataDir, ...FAST });
    const lock = join(dataDir, 'orchestrator.lock');
    expect(JSON.parse(readFileSync(lock, 'utf8'))).toMatchObject({ pid: first.child.pid, command: 'orchestrator serve' });

    const second = cli(['serve'], { DATA_DIR: dataDir, PORT: '0' });
    await expectRefused(second, `Configuration error: DATA_DIR: ${dataDir} is in use by another orchestrator (pid ${first.child.pid}, since `, 'stop it first, or give this one another DATA_DIR');
    expect(JSON.parse(readFileSync(lock, 'utf8'))).toMatchObject({ pid: first.child.pid });

    // The token commands write to a running orchestrator's database on purpose: no lock for them.
    const token = cli(['token', 'create', '--role', 'viewer', '--name', 'ci', '--data-dir', dataDir], {});
    expect(await exitOf(token)).toBe(0);
    expect(token.out()).toMatch(/^orch_/);

    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    // The lock file outlives the holder killed with SIGKILL ...
    expect(JSON.parse(readFileSync(lock, 'utf8'))).toMatchObject({ pid: first.child.pid });
    // ... and does not stop the next start.
    const third = await start({ DATA_DIR: dataDir, ...FAST });
    expect(third.stdout()).toContain('Restored 3 agents');
    expect(JSON.parse(readFileSync(lock, 'utf8'))).toMatchObject({ pid: third.child.pid });
    third.child.kill('SIGTERM');
    expect(await third.exited).toBe(0);
    expect(existsSync(lock)).toBe(false);
  }, 60_000);

  it('refuses a second agent on the same state dir before it does anything; a SIGKILLed agent does not block the next', async () => {
    const dir = tempDir();
    const stateDir = join(dir, 'state');
    // The orchestrator is down: an agent keeps retrying its enrollment, holding its state dir meanwhile.
    const server = `http://127.0.0.1:${await closedPort()}`;
    const agent = (handlers: string): Run => cli(['agent', '--server', server, '--enroll-token', 'a-token-of-20-chars!', '--state-dir', stateDir, '--handlers', join(dir, handlers)], {});
    const lock = join(stateDir, 'agent.lock');
    const holder = async (run: Run): Promise<void> => {
      await waitFor(async () => Promise.resolve(existsSync(lock) && (JSON.parse(readFileSync(lock, 'utf8')) as { pid: number }).pid === run.child.pid ? true : undefined), 15_000);
      // Running: retrying its enrollment (and so past making its folders and installing its signal handlers).
      await waitFor(async () => Promise.resolve(run.err().includes('enrollment failed; retrying') ? true : undefined), 15_000);
    };

    const first = agent('handlers-1');
    await holder(first);
    const before = ls(stateDir);
    const second = agent('handlers-2');
    await expectRefused(second, `--state-dir: ${stateDir} is in use by another agent (pid ${first.child.pid}, since `, 'stop it first, or give this one another --state-dir');
    expect(ls(stateDir)).toEqual(before);
    // Refused before anything else: not even its handler folder was made.
    expect(existsSync(join(dir, 'handlers-2'))).toBe(false);

    first.child.kill('SIGKILL');
    await first.exited;
    expect(existsSync(lock)).toBe(true);
    const third = agent('handlers-3');
    await holder(third);
    expect(third.child.exitCode).toBeNull();
    third.child.kill('SIGTERM');
    expect(await exitOf(third)).toBe(0);
    expect(existsSync(lock)).toBe(false);
  }, 60_000);
});

describe('start-up failures say what to do, exit 2, and write nothing', () => {
  it('an empty DATA_DIR, from the environment or the flag, is a configuration error (not ./data)', async () => {
    const cwd = tempDir();
    await expectRefused(cli(['serve'], { DATA_DIR: '', PORT: '0' }, { cwd }), 'Configuration error: DATA_DIR: must not be empty');
    await expectRefused(cli(['serve', '--data-dir', ''], { PORT: '0' }, { cwd }), 'Configuration error: --data-dir: must not be empty', 'DATA_DIR');
    expect(ls(cwd)).toEqual([]);
  }, 60_000);

  it('a busy port is found before anything is spawned or written: no database, no folder', async () => {
    const port = await busyPort();
    const parent = tempDir();
    const missing = join(parent, 'data');
    await expectRefused(cli(['serve'], { DATA_DIR: missing, PORT: String(port) }), `Configuration error: PORT: ${port} on 127.0.0.1 is already in use`, 'choose another PORT');
    expect(ls(parent)).toEqual([]);
    const empty = tempDir();
    await expectRefused(cli(['serve'], { DATA_DIR: empty, PORT: String(port), DEFAULT_AGENTS: '2' }), `PORT: ${port} on 127.0.0.1 is already in use`);
    expect(ls(empty)).toEqual([]);
  }, 60_000);

  it('DATA_DIR that is a file, or below a file', async () => {
    const file = join(tempDir(), 'not-a-folder');
    writeFileSync(file, 'keep me');
    await expectRefused(cli(['serve'], { DATA_DIR: file, PORT: '0' }), `Configuration error: DATA_DIR: ${file} is a file, not a folder`);
    await expectRefused(cli(['serve'], { DATA_DIR: join(file, 'data'), PORT: '0' }), `Configuration error: DATA_DIR: ${join(file, 'data')}: a part of this path is a file`);
    expect(readFileSync(file, 'utf8')).toBe('keep me');
  }, 60_000);

  it('DATA_DIR this user cannot write in, or cannot create', async () => {
    const dir = tempDir();
    // Others (nobody, when the tests run as root) may enter but not write; as the owner, nobody may write.
    chmodSync(dir, AS_ROOT ? 0o755 : 0o555);
    await expectRefused(cli(['serve'], { DATA_DIR: dir, PORT: '0' }, UNPRIVILEGED), `Configuration error: DATA_DIR: cannot write in ${dir} (permission denied)`, 'write access');
    await expectRefused(cli(['serve'], { DATA_DIR: join(dir, 'data'), PORT: '0' }, UNPRIVILEGED), `Configuration error: DATA_DIR: cannot create ${join(dir, 'data')} (permission denied)`);
    expect(ls(dir)).toEqual([]);
    chmodSync(dir, 0o700);
  }, 60_000);

  it('a database file this user cannot read', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o777);
    const db = join(dir, 'orchestrator.db');
    sqliteFile(db);
    const before = sha(db);
    chmodSync(db, 0o000);
    await expectRefused(cli(['serve'], { DATA_DIR: dir, PORT: '0' }, UNPRIVILEGED), `Database error: cannot read ${db} (permission denied)`, 'read and write access');
    chmodSync(db, 0o600);
    expect(sha(db)).toBe(before);
    expect(ls(dir)).toEqual(['orchestrator.db']);
  }, 60_000);

  it('a database file that is not SQLite, an empty one, and a damaged one are refused as damaged, untouched', async () => {
    const cases: [string, (path: string) => void, string][] = [
      ['text', (p) => writeFileSync(p, 'these are not the tables you are looking for\n'.repeat(200)), 'is not a SQLite database'],
      ['zero-length', (p) => writeFileSync(p, ''), 'is empty (0 bytes), which is a damaged database, not a new install'],
      [
        'a damaged page',
        (p) => {
          sqliteFile(p);
          const bytes = readFileSync(p);
          bytes.fill(0x55, 4 * 4096, 5 * 4096);
          writeFileSync(p, bytes);
        },
        'is damaged (',
      ],
    ];
    for (const [, make, says] of cases) {
      const dir = tempDir();
      const db = join(dir, 'orchestrator.db');
      make(db);
      const before = sha(db);
      await expectRefused(cli(['serve'], { DATA_DIR: dir, PORT: '0' }), `Database error: ${db} ${says}`, 'restore it from a backup (docs/operations.md)');
      expect(sha(db)).toBe(before);
      expect(ls(dir)).toEqual(['orchestrator.db']);
    }
  }, 90_000);

  it('a write-ahead log without its database, and a database of a newer version', async () => {
    const orphan = tempDir();
    writeFileSync(join(orphan, 'orchestrator.db-wal'), Buffer.alloc(8192, 1));
    await expectRefused(cli(['serve'], { DATA_DIR: orphan, PORT: '0' }), `Database error: ${join(orphan, 'orchestrator.db')} is missing but its write-ahead log`);
    expect(ls(orphan)).toEqual(['orchestrator.db-wal']);

    const newer = tempDir();
    const db = join(newer, 'orchestrator.db');
    const d = new Database(db);
    d.pragma('journal_mode = WAL');
    d.pragma('user_version = 9999');
    d.close();
    const before = sha(db);
    await expectRefused(cli(['serve'], { DATA_DIR: newer, PORT: '0' }), `Database error: ${db} has schema version 9999, newer than this orchestrator knows`);
    expect(sha(db)).toBe(before);
  }, 60_000);

  it('an unexpected failure at start is one line on stderr and the stack in the log, exit 1', async () => {
    // A database of the current version without its tables: no check foresees that; the start fails reading it.
    const dir = tempDir();
    const db = join(dir, 'orchestrator.db');
    const d = new Database(db);
    d.pragma('journal_mode = WAL');
    d.pragma(`user_version = ${Math.max(...MIGRATIONS.map((m) => m.version))}`);
    d.close();
    const before = sha(db);
    const run = cli(['serve'], { DATA_DIR: dir, PORT: '0' });
    expect(await exitOf(run)).toBe(1);
    // The log is written asynchronously (flushed at exit): its line may come before or after the human one.
    const lines = run.err().split('\n').filter((l) => l !== '');
    const human = lines.filter((l) => !l.startsWith('{'));
    expect(human).toHaveLength(1);
    expect(human[0]).toMatch(/^Start-up failed: no such table: \w+ \(the stack is in the log\)$/);
    const logged = lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: number; msg: string; err?: { stack?: string } });
    expect(logged).toEqual([expect.objectContaining({ level: 60, msg: 'start-up failed' })]);
    expect(logged[0]?.err?.stack).toMatch(/no such table[\s\S]*\n\s+at /);
    expect(run.out()).toBe('');
    expect(sha(db)).toBe(before);
  }, 60_000);
});
