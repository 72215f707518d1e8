import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach } from 'vitest';
import { cleanupTempDirs, tempDir } from './tmp.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or signal name) once the process has ended and its output has all been read. */
  exited: Promise<number | string>;
}

/** tsx's loader by absolute path, so that the CLI runs from any working directory. */
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export interface CliOptions {
  /** Working directory. @default the repository */
  cwd?: string;
  /** Run as this user and group (the test runner must be root to use them). */
  uid?: number;
  gid?: number;
}

export interface ScriptRun {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | string>;
}

/** Runs `orchestrator <args>` from the TypeScript sources in a real child process. */
export function runCli(args: string[], env: Record<string, string>, options: CliOptions & { wrap?: string[] } = {}): ScriptRun {
  return runScript('src/cli/main.ts', args, env, options);
}

/**
 * Runs a TypeScript file of this repository (`script`, from its root) in a real child process, with `env` over
 * this one's; `stdin: 'pipe'` leaves its standard input open for the test to write to; `wrap` is a command
 * that runs it (`ip netns exec NAME`, say).
 */
export function runScript(script: string, args: string[], env: Record<string, string>, options: CliOptions & { stdin?: 'pipe'; wrap?: string[] } = {}): ScriptRun {
  const command = [...(options.wrap ?? []), process.execPath, '--import', TSX, join(ROOT, script), ...args];
  const child = spawn(command[0] as string, command.slice(1), {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'],
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  // 'close', not 'exit': 'exit' can come before the last of its output has been read (node's docs say so; the
  // CLI test saw a usage error's line missing under load), and what it wrote is what tests read next.
  const exited = new Promise<number | string>((resolve) => child.on('close', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, out: () => out, err: () => err, exited };
}

/**
 * `orchestrator serve` from the sources with `env`; on SQLite in a temporary data folder of its own unless `env`
 * names one (DATA_DIR) or a database (DATABASE_URL): never in the repository's ./data.
 */
export async function startServerProcess(env: Record<string, string>, timeoutMs = 20_000): Promise<ServerProcess> {
  const store: Record<string, string> = env.DATA_DIR === undefined && env.DATABASE_URL === undefined ? { DATA_DIR: tempDir() } : {};
  const run = runCli(['serve'], { PORT: '0', ...store, ...env });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = /HTTP API running at (http:\/\/\S+)/.exec(run.out());
    if (m?.[1]) return { child: run.child, url: m[1], stdout: run.out, stderr: run.err, exited: run.exited };
    if (run.child.exitCode !== null) throw new Error(`server exited early (${run.child.exitCode}): ${run.err()}`);
    if (Date.now() > deadline) {
      run.child.kill('SIGKILL');
      throw new Error(`server did not start in ${timeoutMs} ms: ${run.out()} ${run.err()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function getJson(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { headers });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

export async function postJson(url: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Polls until `check` returns a value, or fails after `timeoutMs` of real time. */
export async function waitFor<T>(check: () => Promise<T | undefined>, timeoutMs = 10_000, stepMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/**
 * A server starter for one test file: every process it starts is killed (if
 * still running) and the temporary folders removed after each test.
 */
export function serversPerTest(): (env: Record<string, string>) => Promise<ServerProcess> {
  const running: ServerProcess[] = [];
  afterEach(async () => {
    for (const s of running.splice(0)) {
      if (s.child.exitCode === null && s.child.signalCode === null) {
        s.child.kill('SIGKILL');
        await s.exited;
      }
    }
    cleanupTempDirs();
  });
  return async (env) => {
    const s = await startServerProcess(env);
    running.push(s);
    return s;
  };
}

/**
 * A JSON client for one server: `call(method, path, body?)` sends `body` as JSON (a string is sent as
 * it is) and returns the status and the parsed reply. `base` is read at each call (servers start later).
 */
export function jsonClient(base: () => string, extraHeaders: Record<string, string> = {}): (method: string, path: string, body?: unknown) => Promise<{ status: number; body: Record<string, unknown> }> {
  return async (method, path, body) => {
    const res = await fetch(`${base()}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...extraHeaders },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
}
