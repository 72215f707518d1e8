import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { DeviceFacts, MetricsSource } from '../../src/agent/system-metrics.js';
import type { Reading } from '../../src/domain/metrics.js';
import { NetworkAgent } from '../../src/agent/agent.js';
import { systemRng } from '../../src/domain/random.js';
import type { HandlerContext } from '../../src/sim/task-handlers.js';
import { SIMULATED_HANDLERS } from '../../src/sim/task-handlers.js';
import { systemClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { alive, killAll } from '../support/processes.js';
import { waitFor } from '../support/server-process.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';

/**
 * The agent (in this process) against a fake orchestrator that scripts its commands and records what the
 * agent sends, with real handler processes: how the agent handles the commands of one long-poll reply.
 */

interface Sent {
  enroll: Record<string, unknown>[];
  heartbeats: { at: number; running: { taskId: string; attempt: number }[] }[];
  results: { taskId: string; attempt: number; success: boolean; result?: unknown; error?: string; retryable?: boolean }[];
}

type Command = Record<string, unknown> & { id: number };

/** A fake orchestrator: `push` queues commands (those pushed together go out in one reply). */
async function fakeOrchestrator(): Promise<{ url: string; sent: Sent; push: (...commands: Omit<Command, 'id'>[]) => void; close: () => Promise<void> }> {
  const sent: Sent = { enroll: [], heartbeats: [], results: [] };
  const queued: Command[] = [];
  let nextId = 1;
  let waiting: (() => void) | null = null;
  const body = async (req: IncomingMessage): Promise<Record<string, unknown>> => {
    let text = '';
    for await (const chunk of req) text += (chunk as Buffer).toString();
    return text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  };
  const json = (res: ServerResponse, value: unknown): void => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const b = await body(req);
      switch (url.pathname) {
        case '/api/v1/agent/enroll':
          sent.enroll.push(b);
          return json(res, { agentId: 'slave-00000001', credential: 'c'.repeat(43), heartbeatIntervalMs: 100, maxPollMs: 2000 });
        case '/api/v1/agent/heartbeat':
          sent.heartbeats.push({ at: Date.now(), running: b.running as Sent['heartbeats'][number]['running'] });
          return json(res, { ok: true, seq: b.seq });
        case '/api/v1/agent/progress':
          return json(res, { ok: true });
        case '/api/v1/agent/results':
          sent.results.push(...(b.results as Sent['results']));
          return json(res, { results: (b.results as { taskId: string; attempt: number }[]).map((r) => ({ ...r, status: 'accepted' })) });
        case '/api/v1/agent/commands': {
          const ack = Number(url.searchParams.get('ack') ?? 0);
          for (;;) {
            const out = queued.filter((c) => c.id > ack);
            if (out.length > 0) return json(res, { commands: out });
            const woken = await new Promise<boolean>((r) => {
              waiting = () => r(true);
              setTimeout(() => r(false), 1000);
            });
            if (!woken) return json(res, { commands: [] });
          }
        }
        default:
          res.writeHead(404).end('{}');
      }
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent,
    push(...commands) {
      for (const c of commands) queued.push({ ...c, id: nextId++ });
      const w = waiting;
      waiting = null;
      w?.();
    },
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

class FixedMetrics implements MetricsSource {
  read(): Promise<Reading> {
    return Promise.resolve({ battery: null, charging: null, cpu: 10, memory: 20, disk: 30 });
  }

  facts(): Promise<DeviceFacts> {
    return Promise.resolve({ model: 'ThinkPad X1 Carbon Gen 11', manufacturer: 'LENOVO', osName: 'Ubuntu 24.04' });
  }
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  cleanupTempDirs();
});

/**
 * `deploy` records its pid under its params' `tag` and appends the tag to a log, then sleeps 300 s if
 * `hold` is set (else 1 s) and answers its tag.
 */
function handlerDir(pids: string): string {
  const dir = tempDir();
  writeFileSync(
    join(dir, 'deploy'),
    `#!/bin/sh
params=$(cat)
tag=$(printf '%s' "$params" | sed 's/.*"tag":"\\([a-z0-9]*\\)".*/\\1/')
echo $$ > ${pids}/$tag
echo $tag >> ${pids}/log
case "$params" in *'"hold":true'*) sleep 300 ;; *) sleep 1 ;; esac
echo "{\\"tag\\":\\"$tag\\"}"
`,
  );
  chmodSync(join(dir, 'deploy'), 0o755);
  return dir;
}

async function started(): Promise<{ fake: Awaited<ReturnType<typeof fakeOrchestrator>>; pids: string; agent: NetworkAgent }> {
  const fake = await fakeOrchestrator();
  cleanups.push(() => fake.close());
  const pids = tempDir();
  const agent = new NetworkAgent({ servers: [fake.url], enrollToken: 't'.repeat(20), handlersDir: handlerDir(pids), stateDir: tempDir(), metrics: new FixedMetrics(), log: silentLogger });
  cleanups.push(() => agent.stop());
  await agent.start();
  return { fake, pids, agent };
}

function pidOf(pids: string, tag: string): number | undefined {
  const file = join(pids, tag);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return pid > 0 ? pid : undefined;
}

describe.skipIf(process.platform === 'win32')('the agent’s handling of commands', () => {
  it('“cancel attempt 1, assign attempt 2” in one reply: attempt 1’s handler is killed, then attempt 2 runs; heartbeats report only what runs', async () => {
    const { fake, pids } = await started();
    fake.push({ type: 'task_assignment', taskId: 't1', attempt: 1, taskType: 'deploy', params: { tag: 'a1', hold: true }, timeoutMs: 60_000 });
    const first = await waitFor(async () => Promise.resolve(pidOf(pids, 'a1')), 10_000, 20);
    cleanups.push(() => killAll([first]));
    await waitFor(async () => Promise.resolve(fake.sent.heartbeats.some((h) => JSON.stringify(h.running) === JSON.stringify([{ taskId: 't1', attempt: 1 }])) ? true : undefined), 5000, 20);

    fake.push({ type: 'cancel', taskId: 't1', attempt: 1 }, { type: 'task_assignment', taskId: 't1', attempt: 2, taskType: 'deploy', params: { tag: 'a2' }, timeoutMs: 60_000 });
    const second = await waitFor(async () => Promise.resolve(pidOf(pids, 'a2')), 10_000, 20);
    cleanups.push(() => killAll([second]));
    // Attempt 2 started once attempt 1's handler was gone.
    expect(alive(first)).toBe(false);
    // While attempt 2 runs (1 s), heartbeats (every 100 ms) report it, and it alone.
    const during = await waitFor(async () => Promise.resolve(fake.sent.heartbeats.find((h) => h.running.some((r) => r.attempt === 2))), 5000, 20);
    expect(during.running).toEqual([{ taskId: 't1', attempt: 2 }]);
    await waitFor(async () => Promise.resolve(fake.sent.results.some((r) => r.attempt === 2) ? true : undefined), 10_000, 20);
    expect(fake.sent.results.find((r) => r.attempt === 2)).toMatchObject({ taskId: 't1', success: true, result: { tag: 'a2' } });
    // Every attempt gets one result: attempt 1's says it was cancelled.
    expect(fake.sent.results.find((r) => r.attempt === 1)).toMatchObject({ taskId: 't1', success: false, error: 'cancelled by the orchestrator' });
    const after = fake.sent.heartbeats.length;
    await waitFor(async () => Promise.resolve(fake.sent.heartbeats.length > after + 1 ? true : undefined), 5000, 20);
    expect(fake.sent.heartbeats.at(-1)?.running).toEqual([]);
  });

  it('a newer attempt of a task that still runs here replaces it; an attempt that ended here is not run again', async () => {
    const { fake, pids } = await started();
    fake.push({ type: 'task_assignment', taskId: 't1', attempt: 1, taskType: 'deploy', params: { tag: 'b1', hold: true }, timeoutMs: 60_000 });
    const first = await waitFor(async () => Promise.resolve(pidOf(pids, 'b1')), 10_000, 20);
    cleanups.push(() => killAll([first]));
    // No cancel: the orchestrator moved on (the attempt was lost, then given to this agent again).
    fake.push({ type: 'task_assignment', taskId: 't1', attempt: 2, taskType: 'deploy', params: { tag: 'b2' }, timeoutMs: 60_000 });
    await waitFor(async () => Promise.resolve(fake.sent.results.some((r) => r.attempt === 2) ? true : undefined), 10_000, 20);
    expect(alive(first)).toBe(false);
    expect(fake.sent.results.find((r) => r.attempt === 1)).toMatchObject({ success: false, error: 'cancelled: the orchestrator assigned attempt 2' });
    expect(fake.sent.results.find((r) => r.attempt === 2)).toMatchObject({ success: true, result: { tag: 'b2' } });
    // The same attempt assigned again (a command sent once more) and an older one: neither runs.
    fake.push(
      { type: 'task_assignment', taskId: 't1', attempt: 2, taskType: 'deploy', params: { tag: 'b3' }, timeoutMs: 60_000 },
      { type: 'task_assignment', taskId: 't1', attempt: 1, taskType: 'deploy', params: { tag: 'b4' }, timeoutMs: 60_000 },
      { type: 'task_assignment', taskId: 't2', attempt: 1, taskType: 'deploy', params: { tag: 'c1' }, timeoutMs: 60_000 },
    );
    await waitFor(async () => Promise.resolve(fake.sent.results.some((r) => r.taskId === 't2') ? true : undefined), 10_000, 20);
    expect(readFileSync(join(pids, 'log'), 'utf8').trim().split('\n')).toEqual(['b1', 'b2', 'c1']);
  });

  it('health_check and monitor: the same parameters and the same result fields as the simulated agent’s', async () => {
    const { fake } = await started();
    fake.push(
      { type: 'task_assignment', taskId: 'h', attempt: 1, taskType: 'health_check', params: {}, timeoutMs: 60_000 },
      { type: 'task_assignment', taskId: 'm', attempt: 1, taskType: 'monitor', params: { durationSec: 1, intervalSec: 0.5 }, timeoutMs: 60_000 },
      { type: 'task_assignment', taskId: 'bad', attempt: 1, taskType: 'monitor', params: { samples: 3 }, timeoutMs: 60_000 },
    );
    await waitFor(async () => Promise.resolve(fake.sent.results.length === 3 ? true : undefined), 10_000, 20);
    const real = (id: string): Sent['results'][number] | undefined => fake.sent.results.find((r) => r.taskId === id);
    const device = { name: 'sim-1', osVersion: 'Win 11 Home', battery: 80, charging: false, cpu: 10, memory: 20, disk: 30 };
    const ctx: HandlerContext = { clock: systemClock, rng: systemRng, signal: new AbortController().signal, device: () => device, agentId: 'sim', setMetrics: () => undefined, installed: { version: null } };
    const simulated = { h: await SIMULATED_HANDLERS.health_check({}, ctx), m: await SIMULATED_HANDLERS.monitor({ durationSec: 1, intervalSec: 0.5 }, ctx) };
    const keys = (x: unknown): string[] => Object.keys(x as object).sort();
    expect(keys(real('h')?.result)).toEqual(keys(simulated.h));
    expect(real('h')?.result).toMatchObject({ battery_level: null, battery_charging: null, cpu_usage: 10, memory_usage: 20, disk_usage: 30, is_healthy: true, issues: [] });
    const m = real('m')?.result as { samples: object[]; average: object };
    expect(keys(m)).toEqual(keys(simulated.m));
    expect(m.samples).toHaveLength(3);
    expect((simulated.m as { samples: object[] }).samples).toHaveLength(3);
    expect(keys(m.samples[0])).toEqual(keys((simulated.m as { samples: object[] }).samples[0]));
    expect(keys(m.average)).toEqual(keys((simulated.m as { average: object }).average));
    // A former parameter name fails, and retrying cannot help.
    expect(real('bad')).toMatchObject({ success: false, retryable: false, error: 'parameters.samples is not a monitor parameter: monitor takes durationSec and intervalSec (seconds)' });
  });

  it('enrolls with the machine’s model, manufacturer and OS name', async () => {
    const { fake } = await started();
    expect(fake.sent.enroll[0]).toMatchObject({ model: 'ThinkPad X1 Carbon Gen 11', manufacturer: 'LENOVO', osName: 'Ubuntu 24.04' });
  });
});

describe('the agent with several servers (replicas)', () => {
  it('moves to the next when one cannot be reached or has no leader, and keeps its identity across them', async () => {
    // A port nobody listens on, a replica without a leader, and a working one.
    const gone = createServer();
    await new Promise<void>((r) => gone.listen(0, '127.0.0.1', () => r()));
    const goneUrl = `http://127.0.0.1:${(gone.address() as AddressInfo).port}`;
    await new Promise<void>((r) => gone.close(() => r()));
    let refused = 0;
    const leaderless: Server = createServer((_req, res) => {
      refused++;
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end(JSON.stringify({ error: 'no replica leads now', code: 'ORCH_NOT_LEADER' }));
    });
    await new Promise<void>((r) => leaderless.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => leaderless.close(() => r())));
    const leaderlessUrl = `http://127.0.0.1:${(leaderless.address() as AddressInfo).port}`;
    const fake = await fakeOrchestrator();
    cleanups.push(() => fake.close());
    const stateDir = tempDir();
    const servers = [goneUrl, leaderlessUrl, fake.url];
    const agent = new NetworkAgent({ servers, enrollToken: 't'.repeat(20), handlersDir: tempDir(), stateDir, metrics: new FixedMetrics(), log: silentLogger });
    cleanups.push(() => agent.stop());
    await agent.start();
    expect(agent.server).toBe(fake.url);
    expect(refused).toBe(1);
    expect(fake.sent.enroll).toHaveLength(1);
    expect(fake.sent.enroll[0]?.agentId).toBeUndefined();
    await agent.stop();
    // Started again with the replicas in another order: the identity is the fleet's, whichever replica it enrolled with.
    const again = new NetworkAgent({ servers: [fake.url, goneUrl], enrollToken: 't'.repeat(20), handlersDir: tempDir(), stateDir, metrics: new FixedMetrics(), log: silentLogger });
    cleanups.push(() => again.stop());
    await again.start();
    expect(fake.sent.enroll[1]?.agentId).toBe('slave-00000001');
  }, 30_000);
});
