import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync, accessSync, constants } from 'node:fs';
import { hostname, release, type } from 'node:os';
import { join, resolve, sep } from 'node:path';
import type { MetricsReading } from '../domain/builtin-tasks.js';
import { healthCheckResult, monitorResult, parseMonitorParams } from '../domain/builtin-tasks.js';
import { TASK_TYPES } from '../domain/types.js';
import type { TaskType } from '../domain/types.js';
import type { Logger } from '../util/logger.js';

/**
 * The agent that runs on a real machine: it enrolls with the orchestrator,
 * heartbeats its real metrics, long-polls for commands, runs tasks (two
 * built in, the rest only as executables from its handler directory) and
 * delivers every result, keeping results on disk until the orchestrator has
 * them. See docs/agent-protocol.md.
 */

export interface Metrics {
  /** null where the machine has no battery. */
  battery: number | null;
  charging: boolean | null;
  cpu: number;
  memory: number;
  disk: number;
}

/** What the machine is, as its firmware and OS say; a field it does not know is left out. */
export interface DeviceFacts {
  model?: string;
  manufacturer?: string;
  osName?: string;
}

export interface MetricsSource {
  read(): Promise<Metrics>;
  facts(): Promise<DeviceFacts>;
}

/**
 * Values firmware puts where the vendor wrote nothing (DMI tables of white-box boards, virtual machines):
 * no more a model than an empty string is.
 */
const PLACEHOLDERS = new Set(['-', 'default string', 'to be filled by o.e.m.', 'system product name', 'system manufacturer', 'not specified', 'not applicable', 'none', 'unknown', 'o.e.m.']);

function fact(value: string | undefined): string | undefined {
  const v = (value ?? '').trim().slice(0, 200);
  return v === '' || PLACEHOLDERS.has(v.toLowerCase()) ? undefined : v;
}

/** Real metrics through `systeminformation`. */
export class SystemMetrics implements MetricsSource {
  async read(): Promise<Metrics> {
    const si = await import('systeminformation');
    const [battery, load, mem, disks] = await Promise.all([si.battery(), si.currentLoad(), si.mem(), si.fsSize()]);
    const root = disks.find((d) => d.mount === '/') ?? disks[0];
    const pct = (x: number): number => Math.round(Math.min(100, Math.max(0, x)) * 10) / 10;
    return {
      battery: battery.hasBattery ? pct(battery.percent) : null,
      charging: battery.hasBattery ? battery.isCharging || battery.acConnected : null,
      cpu: pct(load.currentLoad),
      memory: pct((mem.active / mem.total) * 100),
      disk: pct(root?.use ?? 0),
    };
  }

  /** The system's model and manufacturer (DMI/SMBIOS, the Mac's model id) and the OS's name and release. */
  async facts(): Promise<DeviceFacts> {
    const si = await import('systeminformation');
    const [system, os] = await Promise.all([si.system(), si.osInfo()]);
    const out: DeviceFacts = {};
    const model = fact(system.model);
    const manufacturer = fact(system.manufacturer);
    const osName = fact(`${os.distro} ${os.release}`);
    if (model !== undefined) out.model = model;
    if (manufacturer !== undefined) out.manufacturer = manufacturer;
    if (osName !== undefined) out.osName = osName;
    return out;
  }
}

export interface AgentOptions {
  server: string;
  enrollToken: string;
  handlersDir: string;
  stateDir: string;
  metrics: MetricsSource;
  log: Logger;
  /** Longest wait between reconnection attempts. @default 30000 */
  maxBackoffMs?: number;
}

interface Identity {
  server: string;
  agentId: string;
  credential: string;
}

interface PendingResult {
  taskId: string;
  attempt: number;
  success: boolean;
  result?: unknown;
  error?: string;
  retryable?: boolean;
}

type Command =
  | { id: number; type: 'task_assignment'; taskId: string; attempt: number; taskType: string; params: Record<string, unknown>; timeoutMs: number }
  | { id: number; type: 'cancel'; taskId: string; attempt: number }
  | { id: number; type: 'ring_assignment'; ring: string; reason: string }
  | { id: number; type: 'shutdown'; reason: string };

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** From `retry-after` (a 429): how long the orchestrator asked us to wait. */
    readonly retryAfterMs = 0,
  ) {
    super(message);
  }
}

const OUTPUT_LIMIT = 1 << 20;

export class NetworkAgent {
  private identity: Identity | null = null;
  private heartbeatMs = 5000;
  private maxPollMs = 30_000;
  private seq = 0;
  private ack = 0;
  private stopped = false;
  private readonly running = new Map<string, { attempt: number; abort: AbortController }>();
  private heartbeatTimer: ReturnType<typeof setTimeout> | null = null;
  private pollAbort: AbortController | null = null;
  private flushing: Promise<void> | null = null;
  private flushAgain = false;
  private readonly outbox: string;
  private readonly handlersDir: string;

  constructor(private readonly o: AgentOptions) {
    this.outbox = join(o.stateDir, 'results');
    mkdirSync(this.outbox, { recursive: true });
    mkdirSync(o.handlersDir, { recursive: true });
    this.handlersDir = realpathSync(o.handlersDir);
  }

  get agentId(): string | null {
    return this.identity?.agentId ?? null;
  }

  /** Task types this agent can run: the two built-ins and the executables of its handler directory. */
  capabilities(): TaskType[] {
    const out = new Set<TaskType>(['health_check', 'monitor']);
    for (const t of TASK_TYPES) if (this.handlerPath(t) !== null) out.add(t);
    return [...out];
  }

  /** The executable for a task type, only inside the handler directory, or null. */
  private handlerPath(taskType: string): string | null {
    if (!(TASK_TYPES as readonly string[]).includes(taskType)) return null;
    try {
      const path = realpathSync(join(this.handlersDir, taskType));
      if (!path.startsWith(this.handlersDir + sep) || !statSync(path).isFile()) return null;
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      return null;
    }
  }

  // ---------------------------------------------------------------- HTTP

  private async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.identity) headers.authorization = `Bearer ${this.identity.agentId}:${this.identity.credential}`;
    const res = await fetch(`${this.o.server}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), ...(signal ? { signal } : {}) });
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      const retryAfter = Number(res.headers.get('retry-after') ?? 0);
      throw new HttpError(res.status, typeof json.error === 'string' ? json.error : `HTTP ${res.status}`, Number.isFinite(retryAfter) ? Math.min(retryAfter, 3600) * 1000 : 0);
    }
    return json as T;
  }

  /** Retries `fn` with exponential backoff and jitter until it succeeds or the agent stops. */
  private async withBackoff<T>(what: string, fn: () => Promise<T>): Promise<T | null> {
    let delay = 500;
    for (;;) {
      if (this.stopped) return null;
      try {
        return await fn();
      } catch (err) {
        if (this.stopped) return null;
        if (err instanceof HttpError && (err.status === 403 || err.status === 409)) throw err;
        this.o.log.warn({ err: err instanceof Error ? err.message : String(err), retryInMs: delay }, `${what} failed; retrying`);
        // A 429's retry-after is a floor: the agents it limited do not all come back at once either.
        const floor = err instanceof HttpError ? err.retryAfterMs : 0;
        await new Promise((r) => setTimeout(r, Math.max(floor, delay) * (floor > 0 ? 1 + Math.random() / 2 : 0.5 + Math.random() / 2)));
        delay = Math.min(this.o.maxBackoffMs ?? 30_000, delay * 2);
      }
    }
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    const idFile = join(this.o.stateDir, 'identity.json');
    let known: Identity | null = null;
    try {
      known = JSON.parse(readFileSync(idFile, 'utf8')) as Identity;
      if (known.server !== this.o.server) known = null;
    } catch {
      known = null;
    }
    const metrics = await this.o.metrics.read();
    const facts = await this.o.metrics.facts().catch((err: unknown) => {
      this.o.log.warn({ err: err instanceof Error ? err.message : String(err) }, "could not read the machine's model and OS; enrolling without them");
      return {};
    });
    const reply = await this.withBackoff('enrollment', () =>
      this.request<{ agentId: string; credential: string; heartbeatIntervalMs: number; maxPollMs: number; approval?: string }>('POST', '/api/v1/agent/enroll', {
        token: this.o.enrollToken,
        ...(known ? { agentId: known.agentId, credential: known.credential } : {}),
        hostname: hostname(),
        osVersion: osVersion(),
        ...facts,
        capabilities: this.capabilities(),
        metrics,
      }),
    );
    if (!reply) return;
    this.identity = { server: this.o.server, agentId: reply.agentId, credential: reply.credential };
    this.heartbeatMs = reply.heartbeatIntervalMs;
    this.maxPollMs = reply.maxPollMs;
    writeAtomically(idFile, JSON.stringify(this.identity));
    this.o.log.info({ agentId: reply.agentId, server: this.o.server }, 'enrolled');
    if (reply.approval === 'pending') this.o.log.warn({ agentId: reply.agentId }, "waiting for an admin's approval: no task comes until then (POST /api/v1/agents/{id}/approve)");
    this.scheduleHeartbeat(0);
    void this.flushResults();
    void this.pollLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.pollAbort?.abort();
    for (const r of this.running.values()) r.abort.abort();
    await this.flushing;
  }

  private scheduleHeartbeat(delayMs: number): void {
    this.heartbeatTimer = setTimeout(() => {
      void (async () => {
        try {
          const metrics = await this.o.metrics.read();
          const running = [...this.running.entries()].map(([taskId, r]) => ({ taskId, attempt: r.attempt }));
          await this.request('POST', '/api/v1/agent/heartbeat', { seq: ++this.seq, metrics, running });
        } catch (err) {
          this.o.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'heartbeat failed');
        }
        if (!this.stopped) this.scheduleHeartbeat(this.heartbeatMs);
      })();
    }, delayMs);
  }

  private async pollLoop(): Promise<void> {
    while (!this.stopped) {
      this.pollAbort = new AbortController();
      const reply = await this.withBackoff('command poll', () =>
        this.request<{ commands: Command[] }>('GET', `/api/v1/agent/commands?ack=${this.ack}&waitMs=${this.maxPollMs}`, undefined, (this.pollAbort as AbortController).signal),
      );
      if (!reply) return;
      for (const c of reply.commands) {
        if (c.id <= this.ack) continue;
        this.handle(c);
        this.ack = c.id;
      }
    }
  }

  private handle(c: Command): void {
    switch (c.type) {
      case 'task_assignment':
        if (!this.running.has(c.taskId)) void this.run(c);
        break;
      case 'cancel': {
        const r = this.running.get(c.taskId);
        if (r && r.attempt <= c.attempt) r.abort.abort();
        break;
      }
      case 'ring_assignment':
        this.o.log.info({ ring: c.ring, reason: c.reason }, 'ring assignment');
        break;
      case 'shutdown':
        this.o.log.warn({ reason: c.reason }, 'told to shut down');
        void this.stop();
        break;
    }
  }

  // ---------------------------------------------------------------- tasks

  private async run(c: Extract<Command, { type: 'task_assignment' }>): Promise<void> {
    const abort = new AbortController();
    this.running.set(c.taskId, { attempt: c.attempt, abort });
    void this.request('POST', '/api/v1/agent/progress', { taskId: c.taskId, attempt: c.attempt }).catch(() => undefined);
    let result: PendingResult;
    try {
      const value = await this.execute(c.taskType, c.params, c.timeoutMs, abort.signal);
      result = { taskId: c.taskId, attempt: c.attempt, success: true, result: value };
    } catch (err) {
      const retryable = !(err instanceof HandlerRefusal);
      result = { taskId: c.taskId, attempt: c.attempt, success: false, error: err instanceof Error ? err.message : String(err), retryable };
    } finally {
      this.running.delete(c.taskId);
    }
    if (abort.signal.aborted && this.stopped) return;
    // On disk first: a result survives the orchestrator being away, and the agent restarting.
    writeAtomically(join(this.outbox, `${encodeURIComponent(c.taskId)}.${c.attempt}.json`), JSON.stringify(result));
    void this.flushResults();
  }

  private async execute(taskType: string, params: Record<string, unknown>, timeoutMs: number, signal: AbortSignal): Promise<unknown> {
    if (taskType === 'health_check') {
      const m = await this.o.metrics.read();
      return healthCheckResult(reading(m), { hostname: hostname(), os_version: osVersion() });
    }
    if (taskType === 'monitor') {
      const parsed = parseMonitorParams(params);
      if (!parsed.ok) throw new HandlerRefusal(parsed.error);
      const p = parsed.value;
      const samples: MetricsReading[] = [];
      const t0 = Date.now();
      for (let i = 0; i < p.samples; i++) {
        // Readings on a fixed schedule: a slow reading does not push the later ones back.
        if (i > 0) await delay(t0 + i * p.intervalSec * 1000 - Date.now(), signal);
        if (signal.aborted) throw new Error('cancelled');
        samples.push(reading(await this.o.metrics.read()));
      }
      return monitorResult(p, samples);
    }
    const path = this.handlerPath(taskType);
    if (path === null) throw new HandlerRefusal(`no executable handler for ${taskType} in ${this.handlersDir}`);
    return runHandler(path, params, timeoutMs, signal);
  }

  /** Delivers every result on disk, in batches; one that the orchestrator has (accepted or refused as stale) is deleted. */
  flushResults(): Promise<void> {
    if (this.flushing) {
      this.flushAgain = true;
      return this.flushing;
    }
    const p = this.deliver().finally(() => {
      if (this.flushing === p) this.flushing = null;
      if (this.flushAgain && !this.stopped) {
        this.flushAgain = false;
        void this.flushResults();
      }
    });
    this.flushing = p;
    return p;
  }

  private async deliver(): Promise<void> {
    for (;;) {
      const files = readdirSync(this.outbox).filter((f) => f.endsWith('.json')).slice(0, 100);
      if (files.length === 0 || this.stopped) return;
      const results = files.map((f) => JSON.parse(readFileSync(join(this.outbox, f), 'utf8')) as PendingResult);
      const reply = await this.withBackoff('result delivery', () => this.request<{ results: { status: string }[] }>('POST', '/api/v1/agent/results', { results }));
      if (!reply) return;
      for (const f of files) rmSync(join(this.outbox, f), { force: true });
    }
  }
}

/** A failure that retrying cannot fix (no such handler, bad parameters). */
class HandlerRefusal extends Error {}

/** Runs a handler: params as JSON on stdin, result as JSON on stdout; non-zero exit fails; the timeout kills it. */
function runHandler(path: string, params: Record<string, unknown>, timeoutMs: number, signal: AbortSignal): Promise<unknown> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(path, [], { stdio: ['pipe', 'pipe', 'pipe'], shell: false, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    let out = '';
    let err = '';
    let killedFor: string | null = null;
    const kill = (why: string): void => {
      killedFor = why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill(`timed out after ${timeoutMs} ms`), timeoutMs);
    const onAbort = (): void => kill('cancelled');
    signal.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.length > OUTPUT_LIMIT) kill('wrote more than 1 MiB');
    });
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      if (killedFor !== null) return reject(new Error(`handler ${killedFor}`));
      if (code !== 0) return reject(new Error(`handler exited with ${String(code)}${err.trim() ? `: ${err.trim().slice(-500)}` : ''}`));
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

function writeAtomically(path: string, data: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

function osVersion(): string {
  return `${type()} ${release()}`;
}

/** The agent's metrics as a task's result names them (src/domain/builtin-tasks.ts). */
function reading(m: Metrics): MetricsReading {
  return { battery_level: m.battery, battery_charging: m.charging, cpu_usage: m.cpu, memory_usage: m.memory, disk_usage: m.disk };
}

/** Waits `ms` (nothing if not positive); ends early, without an error, when `signal` aborts. */
function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolveDelay) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolveDelay();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener('abort', done, { once: true });
  });
}

export function defaultStateDir(): string {
  return resolve('agent-state');
}
