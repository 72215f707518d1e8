import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import type { ClientRequest, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { serverPerFile } from '../support/in-process.js';
import { alive, childrenOf, killAll } from '../support/processes.js';
import { jsonClient, runCli, startServerProcess, waitFor } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

/**
 * A real agent process (`orchestrator agent`) against an orchestrator in this process, running handler
 * executables written here: what happens to a handler's processes and pipes, and to the agent, when a task
 * ends, is cancelled, times out, or the agent stops or is killed.
 */

const TOKEN = 'agent-handlers-test-token';
// AGENT_TIMEOUT is long so that an agent restarted within it still holds its attempt (the restart test).
const srv = serverPerFile({ DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '20s' });
const { call } = srv;

/*
 * An agent killed between opening a connection and sending its first bytes leaves a socket that the
 * listener (src/api/listener.ts) never closes before its keep-alive timeout (72 s): it waits for the first
 * bytes with no 'end' handler, and the server's close waits for it. These tests kill agents; the connections
 * they leave are destroyed before the server closes, so that closing does not wait for them.
 */
const connections = new Set<Socket>();
beforeAll(() => {
  srv.server().app.server.on('connection', (socket: Socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
  });
});
afterAll(() => {
  for (const socket of connections) socket.destroy();
});

const agents: ChildProcess[] = [];
const strays: number[] = [];
afterEach(() => {
  for (const a of agents.splice(0)) if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
  // Whatever a failed test left running must not outlive it (the agent kills these itself).
  killAll(strays.splice(0));
});

/** A handler directory with `/bin/sh` scripts, one per task type; `PIDS` in a script is replaced by `pids`. */
function handlers(pids: string, scripts: Record<string, string>): string {
  const dir = tempDir();
  for (const [type, body] of Object.entries(scripts)) {
    writeFileSync(join(dir, type), `#!/bin/sh\n${body.replaceAll('PIDS', pids)}\n`);
    chmodSync(join(dir, type), 0o755);
  }
  return dir;
}

/** A handler that starts two children in its process group (one in the background) and waits: three pids in PIDS. */
const GROUP = 'echo $$ > PIDS/leader.tmp && mv PIDS/leader.tmp PIDS/leader\nsleep 300 &\necho $! > PIDS/bg\nsleep 300 &\necho $! > PIDS/fg\nwait';

async function groupPids(pids: string): Promise<number[]> {
  const found = await waitFor(async () => {
    const names = ['leader', 'bg', 'fg'];
    if (!names.every((n) => existsSync(join(pids, n)))) return Promise.resolve(undefined);
    const values = names.map((n) => Number(readFileSync(join(pids, n), 'utf8').trim()));
    return values.every((p) => p > 0) ? values : undefined;
  }, 15_000, 50);
  strays.push(...found);
  return found;
}

function startAgent(url: string, handlersDir: string, stateDir = tempDir()): { child: ChildProcess; out: () => string; err: () => string; exited: Promise<number | string>; stateDir: string } {
  const run = runCli(['agent', '--server', url, '--enroll-token', TOKEN, '--handlers', handlersDir, '--state-dir', stateDir, '--log-level', 'warn'], {});
  agents.push(run.child);
  return { ...run, stateDir };
}

async function enrolled(run: { out: () => string; err: () => string }): Promise<string> {
  return waitFor(async () => /Agent (slave-[0-9a-f]{8}) enrolled/.exec(run.out())?.[1] ?? (await Promise.resolve(undefined)), 20_000, 50);
}

async function taskIn(id: string, statuses: string[], timeoutMs = 15_000): Promise<Record<string, unknown>> {
  return waitFor(async () => {
    const t = (await call('GET', `/api/v1/tasks/${id}`)).body;
    return statuses.includes(t.status as string) ? t : undefined;
  }, timeoutMs, 100);
}

async function submit(body: Record<string, unknown>): Promise<string> {
  const res = await call('POST', '/api/v1/tasks', body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return String(res.body.id);
}

describe.skipIf(process.platform === 'win32')('an agent and its handler processes', () => {
  it('a handler that exits without reading its large params: the agent lives on and the task ends (exit 0 succeeds, another code fails)', async () => {
    const pids = tempDir();
    const dir = handlers(pids, {
      deploy: `echo '{"done": true}'`,
      process_data: `echo 'will not read that' >&2\nexit 4`,
    });
    const run = startAgent(srv.base(), dir);
    const id = await enrolled(run);
    // Far more than a pipe holds (64 KiB on Linux): writing it meets a closed pipe (EPIPE).
    const params = { blob: 'x'.repeat(400_000) };
    const ok = await submit({ type: 'deploy', params, target: { agentId: id }, maxAttempts: 1 });
    const bad = await submit({ type: 'process_data', params, target: { agentId: id }, maxAttempts: 1 });
    expect(await taskIn(ok, ['completed', 'dead', 'failed'])).toMatchObject({ status: 'completed', result: { done: true } });
    const failed = await taskIn(bad, ['completed', 'dead', 'failed']);
    expect(failed.status).toBe('dead');
    expect(failed.error).toBe('handler exited with 4: will not read that (it exited without reading all of its params)');
    // The agent is still there, and still runs tasks.
    expect(run.child.exitCode).toBeNull();
    const after = await submit({ type: 'health_check', target: { agentId: id } });
    expect((await taskIn(after, ['completed'])).status).toBe('completed');
  });

  it('a cancelled task: the handler and every process it started are killed', async () => {
    const pids = tempDir();
    const run = startAgent(srv.base(), handlers(pids, { analyze_risk: GROUP }));
    const id = await enrolled(run);
    const task = await submit({ type: 'analyze_risk', target: { agentId: id }, maxAttempts: 1 });
    const group = await groupPids(pids);
    expect(group.every(alive)).toBe(true);
    expect((await call('POST', `/api/v1/tasks/${task}/cancel`)).status).toBe(200);
    await waitFor(async () => (group.some(alive) ? Promise.resolve(undefined) : true), 5000, 50);
    // The agent's record of the running handler is gone with it.
    await waitFor(async () => (readdirSync(join(run.stateDir, 'running')).length === 0 ? true : Promise.resolve(undefined)), 5000, 50);
    expect(run.child.exitCode).toBeNull();
  });

  it("a task past its timeout: the handler's whole process group is killed and the attempt fails as timed out", async () => {
    const pids = tempDir();
    const run = startAgent(srv.base(), handlers(pids, { analyze_risk: GROUP }));
    const id = await enrolled(run);
    const task = await submit({ type: 'analyze_risk', target: { agentId: id }, maxAttempts: 1, timeoutMs: 2000 });
    const group = await groupPids(pids);
    await taskIn(task, ['dead', 'failed']);
    await waitFor(async () => (group.some(alive) ? Promise.resolve(undefined) : true), 5000, 50);
  });

  it('a handler that exits leaving a background process behind: the task completes at once and the leftover is killed', async () => {
    const pids = tempDir();
    // The background sleep holds the handler's stdout open: waiting for the pipe to close would wait for it.
    const run = startAgent(srv.base(), handlers(pids, { process_data: `sleep 300 &\necho $! > PIDS/bg\necho '{"ok": true}'` }));
    const id = await enrolled(run);
    const started = Date.now();
    const task = await submit({ type: 'process_data', target: { agentId: id }, maxAttempts: 1, timeoutMs: 30_000 });
    expect(await taskIn(task, ['completed', 'dead', 'failed'], 20_000)).toMatchObject({ status: 'completed', result: { ok: true } });
    expect(Date.now() - started).toBeLessThan(10_000);
    const bg = Number(readFileSync(join(pids, 'bg'), 'utf8').trim());
    strays.push(bg);
    await waitFor(async () => (alive(bg) ? Promise.resolve(undefined) : true), 5000, 50);
  });

  it('an agent stopped with SIGTERM kills its handlers’ process groups before it exits, and reports their attempts as interrupted', async () => {
    // An orchestrator process of its own: the agent's long-poll, cut by its exit, holds an in-process server's
    // close for up to its keep-alive timeout (72 s).
    const server = await startServerProcess({ DATA_DIR: tempDir(), DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '20s' });
    try {
      const own = jsonClient(() => server.url);
      const pids = tempDir();
      const run = startAgent(server.url, handlers(pids, { analyze_risk: GROUP }));
      const id = await enrolled(run);
      const task = await own('POST', '/api/v1/tasks', { type: 'analyze_risk', target: { agentId: id }, maxAttempts: 1 });
      const group = await groupPids(pids);
      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
      // Killed before the agent exited: no waiting here.
      expect(group.filter(alive)).toEqual([]);
      // The result was delivered before the agent exited: the task ended, not left to its lease.
      expect((await own('GET', `/api/v1/tasks/${String(task.body.id)}`)).body).toMatchObject({ status: 'dead', error: 'interrupted: the agent stopped while the task ran' });
    } finally {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  });

  it('an agent killed with SIGKILL: its handler group dies with it at once (the watchdog)', async () => {
    const pids = tempDir();
    const run = startAgent(srv.base(), handlers(pids, { analyze_risk: GROUP }));
    const id = await enrolled(run);
    await submit({ type: 'analyze_risk', target: { agentId: id }, maxAttempts: 1 });
    const group = await groupPids(pids);
    // The agent tells its watchdog of a handler a moment after starting it (and records it just after).
    await recorded(run.stateDir);
    run.child.kill('SIGKILL');
    await run.exited;
    await waitFor(async () => (group.some(alive) ? Promise.resolve(undefined) : true), 3000, 50);
  });

  it("an agent killed with SIGKILL whose watchdog died too: restarted, it kills the leftover group before anything else, and fails that attempt as interrupted", async () => {
    const pids = tempDir();
    const dir = handlers(pids, { analyze_risk: GROUP });
    const run = startAgent(srv.base(), dir);
    const id = await enrolled(run);
    const task = await submit({ type: 'analyze_risk', target: { agentId: id }, maxAttempts: 2 });
    const group = await groupPids(pids);
    // The agent records a handler a moment after starting it.
    await recorded(run.stateDir);
    // The agent's other children (the watchdog, where there is one) go first, so that only the restart can
    // clean up; the agent is stopped meanwhile, so that it cannot start another watchdog.
    run.child.kill('SIGSTOP');
    const agentPid = run.child.pid ?? 0;
    for (const pid of childrenOf(agentPid)) if (!group.includes(pid)) process.kill(pid, 'SIGKILL');
    run.child.kill('SIGKILL');
    await run.exited;
    await new Promise((r) => setTimeout(r, 1000));
    expect(group.every(alive)).toBe(true);
    // Attempt 2 would start the handler again: its pids go elsewhere, so that the first group's are the ones checked.
    rmPidFiles(pids);
    const again = startAgent(srv.base(), dir, run.stateDir);
    expect(await enrolled(again)).toBe(id);
    await waitFor(async () => (group.some(alive) ? Promise.resolve(undefined) : true), 5000, 50);
    // The interrupted attempt is reported: the task goes on to attempt 2 instead of waiting for its timeout.
    const retried = await waitFor(async () => {
      const t = (await call('GET', `/api/v1/tasks/${task}`)).body;
      const history = (t.attemptHistory ?? []) as { attempt: number; outcome: string | null; error: string | null }[];
      return history.find((h) => h.attempt === 1 && h.outcome !== null);
    }, 10_000, 100);
    expect(retried.error).toMatch(/^interrupted: the agent stopped while the task ran; its handler's process group was killed when the agent started again$/);
    await groupPids(pids);
  });

  it('the backoff of the command poll starts over when the orchestrator is reachable again: a task is picked up within seconds, not after the backoff', async () => {
    const proxy = await flakyProxy(srv.base());
    try {
      const pids = tempDir();
      const run = startAgent(proxy.url, handlers(pids, { process_data: `echo '{"ran": true}'` }));
      const id = await enrolled(run);
      // Let the first long-poll settle in, then cut the orchestrator off.
      await waitFor(async () => (proxy.polls.length > 0 ? true : Promise.resolve(undefined)), 10_000, 50);
      proxy.setDown(true);
      // Six failed polls: the agent's wait before the seventh is at least 8 s (0.5 s doubling, jitter at most halves it).
      await waitFor(async () => (proxy.failedPolls >= 6 ? true : Promise.resolve(undefined)), 40_000, 20);
      proxy.setDown(false);
      const upAt = Date.now();
      const task = await submit({ type: 'process_data', target: { agentId: id }, maxAttempts: 1 });
      // A heartbeat (every 500 ms) gets through first; the poll follows it instead of sleeping on.
      const polled = await waitFor(async () => Promise.resolve(proxy.polls.find((t) => t > upAt)), 20_000, 20);
      expect(polled - upAt).toBeLessThan(4000);
      expect((await taskIn(task, ['completed'], 20_000)).result).toEqual({ ran: true });
    } finally {
      await proxy.close();
    }
  }, 90_000);

  it('the agent reports the machine’s model, manufacturer and OS, and the orchestrator keeps them for its device', async () => {
    const run = startAgent(srv.base(), handlers(tempDir(), {}));
    const id = await enrolled(run);
    const si = await import('systeminformation');
    const [system, os] = await Promise.all([si.system(), si.osInfo()]);
    const known = (s: string): string | null => (s.trim() === '' || s.trim() === '-' ? null : s.trim());
    const device = (await call('GET', `/api/v1/devices/${id}`)).body;
    expect(device).toMatchObject({ model: known(system.model), manufacturer: known(system.manufacturer), osName: `${os.distro} ${os.release}`.trim() });
    // Not the host name, as it was.
    if (system.model.trim() !== hostname()) expect(device.model).not.toBe(hostname());
  });
});

/** Waits for the agent's record of a running handler in its state dir. */
async function recorded(stateDir: string): Promise<void> {
  await waitFor(async () => (existsSync(join(stateDir, 'running')) && readdirSync(join(stateDir, 'running')).some((f) => f.endsWith('.json')) ? true : Promise.resolve(undefined)), 5000, 20);
}

function rmPidFiles(dir: string): void {
  for (const f of readdirSync(dir)) rmSync(join(dir, f), { force: true });
}

/**
 * A proxy in front of the orchestrator that can be cut off: while `down`, every request gets a 503 at once, as
 * from an orchestrator that is unreachable or failing. Records when each command poll arrived and how many failed.
 */
async function flakyProxy(target: string): Promise<{ url: string; polls: number[]; failedPolls: number; setDown: (down: boolean) => void; close: () => Promise<void> }> {
  const upstream = new URL(target);
  let down = false;
  // Long-polls forwarded and not answered yet: cutting the orchestrator off answers them with the 503 too.
  const parked = new Set<{ res: ServerResponse; out: ClientRequest }>();
  const forwarded = new Set<ClientRequest>();
  const unavailable = (res: ServerResponse): void => {
    if (!res.headersSent) res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"unavailable","code":"ORCH_STORAGE_UNAVAILABLE"}');
  };
  const state = {
    url: '',
    polls: [] as number[],
    failedPolls: 0,
    setDown(value: boolean): void {
      down = value;
      if (!value) return;
      for (const p of parked) {
        state.failedPolls++;
        unavailable(p.res);
        p.out.destroy();
      }
      parked.clear();
    },
    // Nothing of the proxy may hold the orchestrator's close: its requests upstream end with it.
    close: (): Promise<void> =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
        for (const out of forwarded) out.destroy();
      }),
  };
  const server: Server = createServer((req, res) => {
    const isPoll = (req.url ?? '').startsWith('/api/v1/agent/commands');
    if (down) {
      if (isPoll) state.failedPolls++;
      req.resume();
      unavailable(res);
      return;
    }
    if (isPoll) state.polls.push(Date.now());
    const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent: false }, (up) => {
      parked.delete(entry);
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    forwarded.add(out);
    out.on('close', () => forwarded.delete(out));
    const entry = { res, out };
    if (isPoll) parked.add(entry);
    out.on('error', () => {
      parked.delete(entry);
      if (!res.headersSent) res.destroy();
    });
    req.pipe(out);
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}
