/**
 * What both examples share: starting an orchestrator for the example (or using one already running), a
 * small JSON client for its HTTP API, waiting for a condition, and printing tables. Nothing here knows
 * what the examples do with the API; they are plain `fetch` calls, so that each example reads as the
 * requests you would send yourself.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository's root: the examples start the orchestrator that `npm run build` compiled into dist/. */
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const MAIN = join(ROOT, 'dist', 'cli', 'main.js');

/** Something was not as the example expected: it stops, says what, and exits 1. */
export class ExampleFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExampleFailure';
  }
}

/** Stops the example with a message when `ok` is false. */
export function expectThat(ok: boolean, message: string): asserts ok {
  if (!ok) throw new ExampleFailure(message);
}

/** An error answer of the API (4xx or 503), with the `code` and `error` of its body. */
export class ApiError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    readonly status: number,
    readonly body: unknown,
  ) {
    const b = body as { code?: string; error?: string } | null;
    super(`${method} ${path} answered ${status}${b?.code ? ` ${b.code}` : ''}${b?.error ? `: ${b.error}` : ''}`);
    this.name = 'ApiError';
  }
}

/** A JSON client for one orchestrator: every request carries the API token, when there is one. */
export class Api {
  constructor(
    readonly url: string,
    readonly token: string | null,
  ) {}

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  /** Sends one request; a 2xx answer is returned parsed, anything else is thrown as an ApiError. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token !== null) headers.authorization = `Bearer ${this.token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.url}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    const parsed: unknown = text === '' ? null : JSON.parse(text);
    if (!res.ok) throw new ApiError(method, path, res.status, parsed);
    return parsed as T;
  }
}

/** One message of the event stream: `event` is its kind (`deployment.gate_evaluated`, …), `data` its fields. */
export interface StreamEvent {
  id: string;
  event: string;
  data: Record<string, unknown>;
}

export interface EventStream {
  /** The events as they arrive, until `close()` or the stream ends. */
  events: AsyncGenerator<StreamEvent>;
  close: () => void;
}

/**
 * Opens `GET /api/v1/events?kinds=…` (server-sent events) and resolves once the orchestrator has answered,
 * so that nothing that happens after this returns is missed. `kinds`: event kinds or families
 * (`deployment`, `advice`, `task.completed`, …).
 */
export async function openEventStream(api: Api, kinds: string): Promise<EventStream> {
  const abort = new AbortController();
  const res = await fetch(`${api.url}/api/v1/events?kinds=${encodeURIComponent(kinds)}`, {
    headers: { accept: 'text/event-stream', ...(api.token !== null ? { authorization: `Bearer ${api.token}` } : {}) },
    signal: abort.signal,
  });
  if (!res.ok || res.body === null) throw new ApiError('GET', '/api/v1/events', res.status, await res.json().catch(() => null));
  const body = res.body;
  async function* read(): AsyncGenerator<StreamEvent> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        // Messages end with a blank line; each line is "field: value" (a line starting with ":" is a ping).
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const message = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields: Record<string, string> = {};
          for (const line of message.split('\n')) {
            const m = /^(\w+): ?(.*)$/.exec(line);
            if (m) fields[m[1] as string] = m[2] as string;
          }
          if (fields.event !== undefined && fields.data !== undefined) yield { id: fields.id ?? '', event: fields.event, data: JSON.parse(fields.data) as Record<string, unknown> };
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) throw err;
    }
  }
  return { events: read(), close: () => abort.abort() };
}

export interface Orchestrator {
  api: Api;
  /** The token agents enroll with (only known for an orchestrator the example started). */
  enrollToken: string | null;
  /** The orchestrator's data folder (a temporary one, removed by `stop`); null for one already running. */
  dataDir: string | null;
  /** What the orchestrator printed on stdout (its start-up story); empty for one already running. */
  stdout: () => string;
  stop: () => Promise<void>;
}

export interface StartOptions {
  /** Settings for `orchestrator serve` (environment variables, README "Configuration"). */
  env?: Record<string, string>;
  /** Whether `ORCH_SERVER` may point the example at an orchestrator already running. */
  allowRunning?: boolean;
}

/**
 * Starts `node dist/cli/main.js serve` (what `npm start` runs) on a free port (`PORT=0`) with a database in
 * a temporary folder, with an admin API token of our own (so that every request must carry it, as on any
 * real deployment) and an enrollment token for agents. With `ORCH_SERVER=URL` (and `ORCH_TOKEN` when that
 * orchestrator wants one) the example uses that orchestrator instead, where `allowRunning` says it may.
 */
export async function startOrchestrator(options: StartOptions = {}): Promise<Orchestrator> {
  const existing = process.env.ORCH_SERVER;
  if (existing !== undefined && existing !== '') {
    if (options.allowRunning !== true) throw new ExampleFailure('this example starts an orchestrator of its own, with settings it needs: unset ORCH_SERVER');
    const token = process.env.ORCH_TOKEN;
    const api = new Api(existing.replace(/\/+$/, ''), token !== undefined && token !== '' ? token : null);
    try {
      await api.get('/api/v1/whoami');
    } catch (err) {
      const why = err instanceof ApiError ? err.message : err instanceof Error ? `${err.message}${err.cause instanceof Error ? ` (${err.cause.message})` : ''}` : String(err);
      throw new ExampleFailure(`cannot use the orchestrator at ORCH_SERVER=${existing}: ${why}`);
    }
    return { api, enrollToken: null, dataDir: null, stdout: () => '', stop: () => Promise.resolve() };
  }
  if (!existsSync(MAIN)) throw new ExampleFailure(`${MAIN} does not exist: run "npm run build" first (npm run example:basic does)`);

  const dataDir = mkdtempSync(join(tmpdir(), 'orchestrator-example-'));
  const adminToken = `example-admin-${randomBytes(16).toString('hex')}`;
  const enrollToken = `example-enroll-${randomBytes(8).toString('hex')}`;
  const child = spawn(process.execPath, [MAIN, 'serve'], {
    cwd: dataDir,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      DATA_DIR: dataDir,
      ADMIN_TOKEN: adminToken,
      ENROLL_TOKEN: enrollToken,
      LOG_LEVEL: 'warn',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));

  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await terminate(child, exited);
      rmSync(dataDir, { recursive: true, force: true });
    })();
    return stopped;
  };
  // Ctrl-C stops the orchestrator too, and removes its folder.
  const onSignal = (): void => {
    void stop().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const deadline = Date.now() + 30_000;
  for (;;) {
    const m = /HTTP API running at (\S+)/.exec(out);
    if (m?.[1]) return { api: new Api(m[1], adminToken), enrollToken, dataDir, stdout: () => out, stop };
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new ExampleFailure(`the orchestrator did not start (${child.exitCode !== null ? `exit code ${child.exitCode}` : 'no address after 30 s'}):\n${out}${err}`);
    }
    await sleep(50);
  }
}

/** SIGTERM (the orchestrator stops cleanly), then SIGKILL if it has not ended after 10 s. */
async function terminate(child: ChildProcess, exited: Promise<number | string>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Asks `check` every `stepMs` until it returns a value; fails, naming `what`, after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, stepMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new ExampleFailure(`${what}: not after ${Math.round(timeoutMs / 1000)} s`);
    await sleep(stepMs);
  }
}

/**
 * Runs an example: prints what failed and exits 1 when it throws, and in every case stops what it started
 * (`cleanup`) before the process ends.
 */
export function runExample(main: (cleanup: (f: () => Promise<void>) => void) => Promise<void>): void {
  const cleanups: (() => Promise<void>)[] = [];
  const started = Date.now();
  void (async () => {
    let code = 0;
    try {
      await main((f) => cleanups.push(f));
      console.log(`\nDone in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
    } catch (err) {
      code = 1;
      const message = err instanceof ExampleFailure || err instanceof ApiError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
      console.error(`\nEXAMPLE FAILED: ${message}`);
    }
    for (const f of cleanups.reverse()) {
      try {
        await f();
      } catch (err) {
        console.error(`cleanup failed: ${err instanceof Error ? err.message : String(err)}`);
        code = 1;
      }
    }
    process.exit(code);
  })();
}

/** A heading for each step. */
export function step(title: string): void {
  console.log(`\n== ${title}`);
}

/** Rows as an aligned text table; numbers are right-aligned. */
export function table(rows: Record<string, unknown>[], columns?: string[]): string {
  if (rows.length === 0) return '  (none)';
  const cols = columns ?? Object.keys(rows[0] as object);
  const cell = (v: unknown): string => (v === null || v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v));
  const text = rows.map((r) => cols.map((c) => cell(r[c])));
  const width = cols.map((c, i) => Math.max(c.length, ...text.map((t) => (t[i] as string).length)));
  const numeric = cols.map((c) => rows.every((r) => typeof r[c] === 'number' || r[c] === null || r[c] === undefined));
  const line = (cells: string[]): string => `  ${cells.map((v, i) => (numeric[i] ? v.padStart(width[i] as number) : v.padEnd(width[i] as number))).join('  ')}`.trimEnd();
  return [line(cols), line(width.map((w) => '-'.repeat(w))), ...text.map(line)].join('\n');
}

/** `{"a": 1, "b": [2]}` on one line, for results. */
export function compact(value: unknown): string {
  return JSON.stringify(value);
}
