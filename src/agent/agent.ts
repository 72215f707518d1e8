import { mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, accessSync, constants } from 'node:fs';
import { hostname, release, type } from 'node:os';
import { join, resolve, sep } from 'node:path';
import { healthCheckResult, monitorResult, parseMonitorParams } from '../domain/builtin-tasks.js';
import type { Reading } from '../domain/metrics.js';
import { readingRisk } from '../domain/risk.js';
import { TASK_TYPES } from '../domain/types.js';
import type { TaskType } from '../domain/types.js';
import type { Logger } from '../util/logger.js';
import { writeAtomically } from './files.js';
import { HandlerProcesses, NotRetryable } from './handler-process.js';
import type { MetricsSource } from './system-metrics.js';

/**
 * The agent that runs on a real machine: it enrolls with the orchestrator,
 * heartbeats its real metrics, long-polls for commands, runs tasks (two
 * built in, the rest only as executables from its handler directory) and
 * delivers every result, keeping results on disk until the orchestrator has
 * them. See docs/agent-protocol.md.
 */

export interface AgentOptions {
  /** The orchestrator's URL; replicas' URLs in any order (the agent moves to the next when one fails). */
  servers: readonly string[];
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

type Assignment = { id: number; type: 'task_assignment'; taskId: string; attempt: number; taskType: string; params: Record<string, unknown>; timeoutMs: number };

type Command =
  | Assignment
  | { id: number; type: 'cancel'; taskId: string; attempt: number }
  | { id: number; type: 'ring_assignment'; ring: string; reason: string }
  | { id: number; type: 'shutdown'; reason: string };

/** An attempt the agent has accepted and not finished. */
interface Run {
  taskId: string;
  attempt: number;
  abort: AbortController;
}

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

const INITIAL_BACKOFF_MS = 500;
/** A request that gets no answer in this long is given up (a long-poll: this long past its wait). */
const REQUEST_TIMEOUT_MS = 30_000;
/** The shortest wait for a heartbeat's answer (at least an interval). */
const HEARTBEAT_TIMEOUT_MS = 5000;
/** On SIGTERM, how long the agent waits for its killed handlers' results and for one delivery of them. */
const STOP_GRACE_MS = 2000;
/** Attempts remembered as ended, so that an assignment sent again (after a restart) does not run twice. */
const ENDED_MEMORY = 10_000;

const INTERRUPTED = 'interrupted: the agent stopped while the task ran';

export class NetworkAgent {
  private identity: Identity | null = null;
  private heartbeatMs = 5000;
  private maxPollMs = 30_000;
  private seq = 0;
  private ack = 0;
  private stopped = false;
  private stopping: Promise<void> | null = null;
  /** Per task, the attempt the agent works on: accepted, neither finished nor cancelled. What heartbeats report. */
  private readonly runs = new Map<string, Run>();
  /** Per task, when its latest attempt here is over (handler gone, result written): the next attempt starts after it. */
  private readonly tails = new Map<string, Promise<void>>();
  /** Per task, the newest attempt that ended here (insertion order: the oldest are forgotten first). */
  private readonly ended = new Map<string, number>();
  private heartbeatTimer: ReturnType<typeof setTimeout> | null = null;
  private pollAbort: AbortController | null = null;
  private flushing: Promise<void> | null = null;
  private flushAgain = false;
  /** Counts the requests that got a 2xx: a backoff that sees it move knows the orchestrator is reachable. */
  private successes = 0;
  /** Which of `servers` requests go to now. */
  private serverIndex = 0;
  /** Backoff waits in progress; `interruptible` ones end at the next success. */
  private readonly sleepers = new Set<{ wake: () => void; interruptible: boolean }>();
  private readonly outbox: string;
  private readonly handlersDir: string;
  private readonly processes: HandlerProcesses;

  constructor(private readonly o: AgentOptions) {
    this.outbox = join(o.stateDir, 'results');
    mkdirSync(this.outbox, { recursive: true });
    mkdirSync(o.handlersDir, { recursive: true });
    this.handlersDir = realpathSync(o.handlersDir);
    this.processes = new HandlerProcesses(o.stateDir, o.log);
  }

  get agentId(): string | null {
    return this.identity?.agentId ?? null;
  }

  /** Task types this agent can run: the built-ins and the executables of its handler directory. */
  capabilities(): TaskType[] {
    const out = new Set<TaskType>(['health_check', 'monitor', 'analyze_risk']);
    for (const t of TASK_TYPES) if (this.handlerPath(t) !== null) out.add(t);
    return [...out];
  }

  /** The attempts a heartbeat reports running. */
  private runningAttempts(): { taskId: string; attempt: number }[] {
    return [...this.runs.values()].map((r) => ({ taskId: r.taskId, attempt: r.attempt }));
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

  /** The replica requests go to now. */
  get server(): string {
    return this.o.servers[this.serverIndex % this.o.servers.length] as string;
  }

  /** `failed` did not serve: the next request goes to the next replica (once per failure of the current one). */
  private moveOn(failed: string): void {
    if (this.o.servers.length < 2 || failed !== this.server) return;
    this.serverIndex = (this.serverIndex + 1) % this.o.servers.length;
    this.o.log.warn({ failed, next: this.server }, 'trying the next server');
  }

  private async request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal, timeoutMs = REQUEST_TIMEOUT_MS): Promise<T> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.identity) headers.authorization = `Bearer ${this.identity.agentId}:${this.identity.credential}`;
    // Without a timeout a connection that died silently (a NAT's, a laptop's sleep) holds the loop for minutes.
    const timeout = AbortSignal.timeout(timeoutMs);
    const base = this.server;
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (err) {
      // Unreachable (or silent past the timeout): the next request tries the next replica.
      if (signal?.aborted !== true) this.moveOn(base);
      throw err;
    }
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (!res.ok) {
      // A replica that cannot reach a leader, or one that is stopping: another may serve.
      if (res.status === 503 && (json.code === 'ORCH_NOT_LEADER' || json.code === 'ORCH_SHUTTING_DOWN')) this.moveOn(base);
      const retryAfter = Number(res.headers.get('retry-after') ?? 0);
      throw new HttpError(res.status, typeof json.error === 'string' ? json.error : `HTTP ${res.status}`, Number.isFinite(retryAfter) ? Math.min(retryAfter, 3600) * 1000 : 0);
    }
    this.reachable();
    return json as T;
  }

  /** A request got through: every backoff starts over, and the waits in progress end now. */
  private reachable(): void {
    this.successes++;
    for (const s of this.sleepers) if (s.interruptible) s.wake();
  }

  /** Waits `ms`; ends sooner when the agent stops, or (if interruptible) when a request gets through. True if cut short by a success. */
  private pause(ms: number, interruptible: boolean): Promise<boolean> {
    return new Promise((resolvePause) => {
      const sleeper = {
        interruptible,
        wake: (): void => {
          clearTimeout(timer);
          this.sleepers.delete(sleeper);
          resolvePause(!this.stopped);
        },
      };
      const timer = setTimeout(() => {
        this.sleepers.delete(sleeper);
        resolvePause(false);
      }, ms);
      this.sleepers.add(sleeper);
    });
  }

  /**
   * Retries `fn` with exponential backoff and jitter until it succeeds or the agent stops. The backoff is
   * the reachability of the orchestrator, not of one route: a success of any request (a heartbeat, most
   * often) ends the wait in progress and starts the backoff over, and a failure after such a success is the
   * first of a new streak, not the next of an old one.
   */
  private async withBackoff<T>(what: string, fn: () => Promise<T>): Promise<T | null> {
    let delay = INITIAL_BACKOFF_MS;
    for (;;) {
      if (this.stopped) return null;
      const successesBefore = this.successes;
      try {
        return await fn();
      } catch (err) {
        if (this.stopped) return null;
        if (err instanceof HttpError && (err.status === 403 || err.status === 409)) throw err;
        if (this.successes !== successesBefore) delay = INITIAL_BACKOFF_MS;
        // A 429's retry-after is a floor that no success elsewhere cuts short: the orchestrator asked for it.
        // The agents it limited do not all come back at once either.
        const floor = err instanceof HttpError ? err.retryAfterMs : 0;
        const waitMs = floor > 0 ? Math.max(floor, delay) * (1 + Math.random() / 2) : delay * (0.5 + Math.random() / 2);
        this.o.log.warn({ err: err instanceof Error ? err.message : String(err), retryInMs: Math.round(waitMs) }, `${what} failed; retrying`);
        const woken = await this.pause(waitMs, floor === 0);
        delay = woken ? INITIAL_BACKOFF_MS : Math.min(this.o.maxBackoffMs ?? 30_000, delay * 2);
      }
    }
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    // Before anything else: handlers the previous process of this agent left running die now, and their
    // attempts are reported as interrupted (delivered with the other results once enrolled).
    for (const left of this.processes.reapLeftovers()) {
      this.writeResult({
        taskId: left.taskId,
        attempt: left.attempt,
        success: false,
        error: `${INTERRUPTED}${left.killed ? "; its handler's process group was killed when the agent started again" : ''}`,
        retryable: true,
      });
    }
    // Attempts whose results wait on disk have ended here: sent again, their assignment does not run again.
    for (const f of readdirSync(this.outbox).filter((x) => x.endsWith('.json'))) {
      try {
        const r = JSON.parse(readFileSync(join(this.outbox, f), 'utf8')) as PendingResult;
        this.noteEnded(r.taskId, r.attempt);
      } catch {
        // Unreadable: delivery reports it.
      }
    }
    const idFile = join(this.o.stateDir, 'identity.json');
    let known: Identity | null = null;
    try {
      known = JSON.parse(readFileSync(idFile, 'utf8')) as Identity;
      // Enrolled with this fleet: one of its replicas (an identity is the fleet's, not one replica's).
      if (!this.o.servers.includes(known.server)) known = null;
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
    this.identity = { server: this.server, agentId: reply.agentId, credential: reply.credential };
    this.heartbeatMs = reply.heartbeatIntervalMs;
    this.maxPollMs = reply.maxPollMs;
    writeAtomically(idFile, JSON.stringify(this.identity));
    this.o.log.info({ agentId: reply.agentId, server: this.server }, 'enrolled');
    if (reply.approval === 'pending') this.o.log.warn({ agentId: reply.agentId }, "waiting for an admin's approval: no task comes until then (POST /api/v1/agents/{id}/approve)");
    this.scheduleHeartbeat(0);
    void this.flushResults();
    void this.pollLoop();
  }

  /**
   * Stops: kills every handler's process group at once, writes their attempts' results as interrupted, and
   * tries once, for up to STOP_GRACE_MS, to deliver what waits on disk (the rest goes at the next start).
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.stopped = true;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.pollAbort?.abort();
    for (const s of [...this.sleepers]) s.wake();
    // Aborting kills each handler's group synchronously (SIGKILL): nothing of them runs past this line.
    for (const r of this.runs.values()) r.abort.abort(new Error(INTERRUPTED));
    await Promise.race([Promise.all(this.tails.values()), grace(STOP_GRACE_MS)]);
    this.processes.close();
    // A delivery in flight ends with its request; it is not waited for past the grace.
    await Promise.race([this.flushing, grace(STOP_GRACE_MS)]);
    if (this.identity !== null) await this.deliverOnce(STOP_GRACE_MS);
  }

  private scheduleHeartbeat(delayMs: number): void {
    this.heartbeatTimer = setTimeout(() => {
      void (async () => {
        let next = this.heartbeatMs;
        try {
          const metrics = await this.o.metrics.read();
          // `ack` first: every assignment up to it that `running` leaves out is not held here.
          const ack = this.ack;
          // Heartbeats go one after the other: one stuck on a dead connection must not hold back the next for long.
          await this.request('POST', '/api/v1/agent/heartbeat', { seq: ++this.seq, metrics, running: this.held(), ack }, undefined, Math.max(HEARTBEAT_TIMEOUT_MS, this.heartbeatMs));
        } catch (err) {
          // A 429 asks this agent to wait, heartbeats included.
          if (err instanceof HttpError && err.retryAfterMs > next) next = err.retryAfterMs;
          this.o.log.warn({ err: err instanceof Error ? err.message : String(err) }, 'heartbeat failed');
        }
        if (!this.stopped) this.scheduleHeartbeat(next);
      })();
    }, delayMs);
  }

  /**
   * The attempts this agent holds: those running, and those whose result waits on disk to be delivered (the
   * orchestrator must not give up on them: the result is coming).
   */
  private held(): { taskId: string; attempt: number }[] {
    const out = this.runningAttempts();
    for (const f of readdirSync(this.outbox)) {
      const m = /^(.+)\.(\d+)\.json$/.exec(f);
      if (m) out.push({ taskId: decodeURIComponent(m[1] as string), attempt: Number(m[2]) });
    }
    // The heartbeat takes up to 1,000 (results are delivered 100 at a time, so a longer outbox drains quickly).
    return out.slice(0, 1000);
  }

  private async pollLoop(): Promise<void> {
    while (!this.stopped) {
      this.pollAbort = new AbortController();
      const signal = this.pollAbort.signal;
      const reply = await this.withBackoff('command poll', () =>
        this.request<{ commands: Command[] }>('GET', `/api/v1/agent/commands?ack=${this.ack}&waitMs=${this.maxPollMs}`, undefined, signal, this.maxPollMs + REQUEST_TIMEOUT_MS),
      );
      if (!reply) return;
      for (const c of reply.commands) {
        if (c.id <= this.ack) continue;
        this.handle(c);
        this.ack = c.id;
      }
    }
  }

  /**
   * One command, in the order of the reply: what a command does to a task is settled before the next
   * command is looked at, so "cancel attempt 1, assign attempt 2" runs attempt 2, once attempt 1's handler
   * is gone.
   */
  private handle(c: Command): void {
    switch (c.type) {
      case 'task_assignment':
        this.accept(c);
        break;
      case 'cancel': {
        const r = this.runs.get(c.taskId);
        if (r && r.attempt <= c.attempt) this.cancel(r, new Error('cancelled by the orchestrator'));
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

  private accept(c: Assignment): void {
    if (this.stopped) return;
    const current = this.runs.get(c.taskId);
    // The same attempt again, or an older one: already in hand.
    if (current && current.attempt >= c.attempt) return;
    if ((this.ended.get(c.taskId) ?? 0) >= c.attempt) {
      this.o.log.info({ taskId: c.taskId, attempt: c.attempt }, 'assignment of an attempt that already ended here: not run again');
      return;
    }
    // A newer attempt of a task still running here: the orchestrator has moved on from the older one.
    if (current) this.cancel(current, new Error(`cancelled: the orchestrator assigned attempt ${c.attempt}`));
    const run: Run = { taskId: c.taskId, attempt: c.attempt, abort: new AbortController() };
    this.runs.set(c.taskId, run);
    const previous = this.tails.get(c.taskId) ?? Promise.resolve();
    const tail = previous.then(() => this.run(run, c)).catch((err: unknown) => {
      // Only writing the result to disk can fail here; the orchestrator's timeout or lease ends the attempt.
      this.o.log.error({ err: err instanceof Error ? err.message : String(err), taskId: c.taskId, attempt: c.attempt }, 'could not keep the result of an attempt');
    });
    this.tails.set(c.taskId, tail);
    void tail.finally(() => {
      if (this.tails.get(c.taskId) === tail) this.tails.delete(c.taskId);
    });
  }

  /** Ends an attempt now: its handler's group is killed, and heartbeats report it no more. */
  private cancel(r: Run, reason: Error): void {
    if (this.runs.get(r.taskId) === r) this.runs.delete(r.taskId);
    r.abort.abort(reason);
  }

  /** Runs an accepted attempt to its end; its result, success or not, goes to disk and then to the orchestrator. */
  private async run(r: Run, c: Assignment): Promise<void> {
    let result: PendingResult;
    const timer = setTimeout(() => r.abort.abort(new Error(`timed out after ${c.timeoutMs} ms`)), c.timeoutMs);
    try {
      if (r.abort.signal.aborted) throw r.abort.signal.reason;
      void this.request('POST', '/api/v1/agent/progress', { taskId: c.taskId, attempt: c.attempt }).catch(() => undefined);
      const value = await this.execute(c, r.abort.signal);
      result = { taskId: c.taskId, attempt: c.attempt, success: true, result: value };
    } catch (err) {
      result = { taskId: c.taskId, attempt: c.attempt, success: false, error: err instanceof Error ? err.message : String(err), retryable: !(err instanceof NotRetryable) };
    } finally {
      clearTimeout(timer);
      if (this.runs.get(c.taskId) === r) this.runs.delete(c.taskId);
    }
    this.writeResult(result);
    if (!this.stopped) void this.flushResults();
  }

  private async execute(c: Assignment, signal: AbortSignal): Promise<unknown> {
    if (c.taskType === 'health_check') {
      return healthCheckResult(await this.o.metrics.read(), { hostname: hostname(), os_version: osVersion() });
    }
    if (c.taskType === 'monitor') {
      const parsed = parseMonitorParams(c.params);
      if (!parsed.ok) throw new NotRetryable(parsed.error);
      const p = parsed.value;
      const samples: Reading[] = [];
      // Elapsed time (monotonic): setting the system clock does not bunch or stretch the readings.
      const t0 = performance.now();
      for (let i = 0; i < p.samples; i++) {
        // Readings on a fixed schedule: a slow reading does not push the later ones back.
        if (i > 0) await delay(t0 + i * p.intervalSec * 1000 - performance.now(), signal);
        if (signal.aborted) throw signal.reason;
        samples.push(await this.o.metrics.read());
      }
      return monitorResult(p, samples);
    }
    const path = this.handlerPath(c.taskType);
    // analyze_risk is built in (the analyser's risk of this machine, from its reading), unless an executable of that name replaces it.
    if (path === null && c.taskType === 'analyze_risk') return readingRisk(await this.o.metrics.read());
    if (path === null) throw new NotRetryable(`no executable handler for ${c.taskType} in ${this.handlersDir}`);
    return this.processes.run(path, c.params, signal, { taskId: c.taskId, attempt: c.attempt });
  }

  private writeResult(result: PendingResult): void {
    this.noteEnded(result.taskId, result.attempt);
    // On disk first: a result survives the orchestrator being away, and the agent restarting.
    writeAtomically(join(this.outbox, `${encodeURIComponent(result.taskId)}.${result.attempt}.json`), JSON.stringify(result));
  }

  private noteEnded(taskId: string, attempt: number): void {
    if ((this.ended.get(taskId) ?? 0) >= attempt) return;
    this.ended.delete(taskId);
    this.ended.set(taskId, attempt);
    if (this.ended.size > ENDED_MEMORY) this.ended.delete(this.ended.keys().next().value as string);
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

  private pendingResults(): { files: string[]; results: PendingResult[] } {
    const files = readdirSync(this.outbox).filter((f) => f.endsWith('.json')).slice(0, 100);
    return { files, results: files.map((f) => JSON.parse(readFileSync(join(this.outbox, f), 'utf8')) as PendingResult) };
  }

  private async deliver(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const { files, results } = this.pendingResults();
      if (files.length === 0) return;
      const reply = await this.withBackoff('result delivery', () => this.request<{ results: { status: string }[] }>('POST', '/api/v1/agent/results', { results }));
      if (!reply) return;
      for (const f of files) rmSync(join(this.outbox, f), { force: true });
    }
  }

  /** One delivery, no retry (the agent is stopping): what does not go now goes at the next start. */
  private async deliverOnce(timeoutMs: number): Promise<void> {
    const { files, results } = this.pendingResults();
    if (files.length === 0) return;
    try {
      await this.request('POST', '/api/v1/agent/results', { results }, undefined, timeoutMs);
      for (const f of files) rmSync(join(this.outbox, f), { force: true });
    } catch (err) {
      this.o.log.warn({ err: err instanceof Error ? err.message : String(err), results: files.length }, 'results not delivered before stopping; they are sent at the next start');
    }
  }
}

function osVersion(): string {
  return `${type()} ${release()}`;
}

/** Waits `ms` (nothing if not positive); with a signal, rejects with its reason when it aborts. */
function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolveDelay, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolveDelay();
    }, Math.max(0, ms));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A bound on a wait while stopping: it does not keep the process alive by itself. */
function grace(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

export function defaultStateDir(): string {
  return resolve('agent-state');
}
