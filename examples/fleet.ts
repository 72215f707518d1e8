/**
 * A small fleet of simulated laptops for the advanced example, each one an agent that speaks the agent
 * protocol over HTTP (docs/agent-protocol.md) exactly as `orchestrator agent` does on a real machine:
 * it enrolls with the enrollment token, sends a heartbeat with its metrics every `heartbeatIntervalMs`,
 * long-polls for commands, runs `deploy` and `health_check`, and posts each result.
 *
 * What makes them simulated is only where their metrics come from: each laptop reports a base load of its
 * own, a little noise, and whatever the release it runs does to a machine like it (`ReleaseEffect`). The
 * orchestrator knows nothing of that: it sees heartbeats, and judges releases by them.
 */
import type { Api } from './lib.js';
import { sleep } from './lib.js';

export interface LaptopSpec {
  hostname: string;
  manufacturer: string;
  model: string;
  osName: string;
  /** Base load, in %, before any release adds to it. */
  cpu: number;
  memory: number;
  disk: number;
  battery: number;
  charging: boolean;
}

/** What running `version` does to a laptop like `spec`: points of CPU and memory added to its base load. */
export type ReleaseEffect = (version: string, spec: LaptopSpec) => { cpu?: number; memory?: number };

/** The metrics of a heartbeat (docs/agent-protocol.md). */
interface Metrics {
  battery: number | null;
  charging: boolean | null;
  cpu: number;
  memory: number;
  disk: number;
}

type Command =
  | { id: number; type: 'task_assignment'; taskId: string; attempt: number; taskType: string; params: Record<string, unknown>; timeoutMs: number }
  | { id: number; type: 'cancel'; taskId: string; attempt: number }
  | { id: number; type: 'ring_assignment'; ring: string; reason: string }
  | { id: number; type: 'shutdown'; reason: string };

type Result = { taskId: string; attempt: number; success: true; result: unknown } | { taskId: string; attempt: number; success: false; error: string; retryable: boolean };

const round1 = (x: number): number => Math.round(x * 10) / 10;
const clamp = (x: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, x));

export class Laptop {
  agentId = '';
  /** The ring the orchestrator last placed it in (a `ring_assignment` command). */
  ring = 'unassigned';
  private credential = '';
  /** How often it heartbeats: the orchestrator says, when it enrolls. */
  heartbeatMs = 5000;
  private maxPollMs = 30_000;
  private seq = 0;
  /** The id of the last command handled: sent with every poll and heartbeat. */
  private ack = 0;
  /** Attempts this laptop holds (running, or their result not delivered yet): every heartbeat lists them. */
  private readonly held = new Map<string, { attempt: number; abort: AbortController }>();
  private stopped = false;
  private pollAbort: AbortController | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private polling: Promise<void> = Promise.resolve();

  constructor(
    private readonly server: string,
    readonly spec: LaptopSpec,
    /** The release it runs now. */
    public version: string,
    private readonly effect: ReleaseEffect,
  ) {}

  /** What the laptop measures now: its base load, a little noise, and what its release does to it. */
  metrics(): Metrics {
    const hit = this.effect(this.version, this.spec);
    return {
      battery: this.spec.battery,
      charging: this.spec.charging,
      cpu: round1(clamp(this.spec.cpu + (hit.cpu ?? 0) + (Math.random() - 0.5) * 3, 1, 100)),
      memory: round1(clamp(this.spec.memory + (hit.memory ?? 0) + (Math.random() - 0.5) * 2, 1, 100)),
      disk: this.spec.disk,
    };
  }

  /** `POST /api/v1/agent/enroll`: the answer is the laptop's identity and the rhythm the orchestrator wants. */
  async enroll(token: string): Promise<void> {
    const reply = await this.call<{ agentId: string; credential: string; heartbeatIntervalMs: number; maxPollMs: number }>('POST', '/api/v1/agent/enroll', {
      token,
      hostname: this.spec.hostname,
      osVersion: this.spec.osName,
      model: this.spec.model,
      manufacturer: this.spec.manufacturer,
      osName: this.spec.osName,
      capabilities: ['deploy', 'health_check'],
      metrics: this.metrics(),
    });
    this.agentId = reply.agentId;
    this.credential = reply.credential;
    this.heartbeatMs = reply.heartbeatIntervalMs;
    this.maxPollMs = reply.maxPollMs;
    this.scheduleHeartbeat();
    this.polling = this.pollLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.pollAbort?.abort();
    for (const h of this.held.values()) h.abort.abort();
    await this.polling;
  }

  /** `POST /api/v1/agent/heartbeat` every interval: the metrics, and the attempts held. */
  private scheduleHeartbeat(): void {
    this.heartbeatTimer = setTimeout(() => {
      const running = [...this.held].map(([taskId, h]) => ({ taskId, attempt: h.attempt }));
      this.call('POST', '/api/v1/agent/heartbeat', { seq: ++this.seq, metrics: this.metrics(), running, ack: this.ack })
        .catch(() => undefined) // a missed heartbeat is only a gap: the next one goes on schedule
        .finally(() => {
          if (!this.stopped) this.scheduleHeartbeat();
        });
    }, this.heartbeatMs);
  }

  /** `GET /api/v1/agent/commands`: the long-poll, acknowledging what was handled. */
  private async pollLoop(): Promise<void> {
    while (!this.stopped) {
      this.pollAbort = new AbortController();
      let commands: Command[];
      try {
        ({ commands } = await this.call<{ commands: Command[] }>('GET', `/api/v1/agent/commands?ack=${this.ack}&waitMs=${Math.min(this.maxPollMs, 10_000)}`, undefined, this.pollAbort.signal));
      } catch {
        if (!this.stopped) await sleep(500);
        continue;
      }
      for (const c of commands) {
        if (c.id <= this.ack) continue;
        this.handle(c);
        this.ack = c.id;
      }
    }
  }

  private handle(c: Command): void {
    switch (c.type) {
      case 'task_assignment': {
        const current = this.held.get(c.taskId);
        if (current && current.attempt >= c.attempt) return;
        current?.abort.abort();
        const abort = new AbortController();
        this.held.set(c.taskId, { attempt: c.attempt, abort });
        void this.run(c, abort.signal);
        break;
      }
      case 'cancel': {
        const h = this.held.get(c.taskId);
        if (h && h.attempt <= c.attempt) {
          h.abort.abort();
          this.held.delete(c.taskId);
        }
        break;
      }
      case 'ring_assignment':
        this.ring = c.ring;
        break;
      case 'shutdown':
        void this.stop();
        break;
    }
  }

  /** Runs one attempt and posts its result (`POST /api/v1/agent/results`), retrying until it is delivered. */
  private async run(c: Extract<Command, { type: 'task_assignment' }>, signal: AbortSignal): Promise<void> {
    let result: Result;
    try {
      result = { taskId: c.taskId, attempt: c.attempt, success: true, result: await this.execute(c.taskType, c.params, signal) };
    } catch (err) {
      if (signal.aborted) return; // cancelled: nobody wants this attempt's result
      result = { taskId: c.taskId, attempt: c.attempt, success: false, error: err instanceof Error ? err.message : String(err), retryable: false };
    }
    for (let tries = 0; !this.stopped && !signal.aborted; tries++) {
      try {
        await this.call('POST', '/api/v1/agent/results', { results: [result] });
        break;
      } catch {
        await sleep(Math.min(2000, 200 * 2 ** tries));
      }
    }
    if (this.held.get(c.taskId)?.attempt === c.attempt) this.held.delete(c.taskId);
  }

  private async execute(type: string, params: Record<string, unknown>, signal: AbortSignal): Promise<unknown> {
    if (type === 'deploy') {
      const version = params.version;
      if (typeof version !== 'string' || version === '') throw new Error('parameters.version must be a non-empty string');
      // Installing takes a moment; then the laptop runs the new release, and its metrics show what it does.
      await sleep(300 + Math.random() * 400);
      if (signal.aborted) throw new Error('cancelled');
      const previous = this.version;
      this.version = version;
      return { installed: version, previous };
    }
    if (type === 'health_check') {
      const m = this.metrics();
      return { battery_level: m.battery, battery_charging: m.charging, cpu_usage: m.cpu, memory_usage: m.memory, disk_usage: m.disk, hostname: this.spec.hostname, os_version: this.spec.osName, version: this.version };
    }
    throw new Error(`this laptop does not run ${type}`);
  }

  /** One request of the agent protocol, with the laptop's credential once it has one. */
  private async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.credential !== '') headers.authorization = `Bearer ${this.agentId}:${this.credential}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${this.server}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), ...(signal ? { signal } : {}) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} answered ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }
}

/**
 * Enrolls `specs` as laptops running `version`, a few at a time, and returns them; `api` is only where the
 * orchestrator is.
 */
export async function enrollFleet(api: Api, enrollToken: string, specs: LaptopSpec[], version: string, effect: ReleaseEffect): Promise<Laptop[]> {
  const laptops = specs.map((s) => new Laptop(api.url, s, version, effect));
  for (let i = 0; i < laptops.length; i += 8) await Promise.all(laptops.slice(i, i + 8).map((l) => l.enroll(enrollToken)));
  return laptops;
}
