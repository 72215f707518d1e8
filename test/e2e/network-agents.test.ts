import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { getJson, jsonClient, runCli, serversPerTest, waitFor } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

const server = serversPerTest();
const TOKEN = 'network-agents-test-token';
const agents: ChildProcess[] = [];
afterEach(() => {
  for (const a of agents.splice(0)) if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
});

/**
 * A handler directory: `process_data` sums `params.data`; `analyze_risk` sleeps `holdMs` first and says who
 * ran it (and, given `startedFile`, creates that file as it starts).
 */
function handlers(holdMs = 0, who = 'agent', startedFile?: string): string {
  const dir = tempDir();
  mkdirSync(dir, { recursive: true });
  const script = (body: string): string => `#!/usr/bin/env node\nlet s = '';\nprocess.stdin.on('data', (d) => (s += d));\nprocess.stdin.on('end', () => {\n  const p = JSON.parse(s || '{}');\n${body}\n});\n`;
  writeFileSync(join(dir, 'process_data'), script(`  process.stdout.write(JSON.stringify({ sum: (p.data || []).reduce((a, b) => a + b, 0), pid: process.pid }));`));
  const started = startedFile === undefined ? '' : `require('node:fs').writeFileSync(${JSON.stringify(startedFile)}, '');`;
  writeFileSync(join(dir, 'analyze_risk'), script(`  ${started} setTimeout(() => process.stdout.write(JSON.stringify({ risk: 'low', by: '${who}' })), ${holdMs});`));
  writeFileSync(join(dir, 'deploy'), script(`  process.stderr.write('disk full'); process.exit(3);`));
  writeFileSync(join(dir, 'not-a-task-type'), script(`  process.stdout.write('{}');`));
  for (const f of ['process_data', 'analyze_risk', 'deploy', 'not-a-task-type']) chmodSync(join(dir, f), 0o755);
  return dir;
}

function startAgent(url: string, handlersDir: string, stateDir = tempDir()): { child: ChildProcess; out: () => string; err: () => string } {
  const run = runCli(['agent', '--server', url, '--enroll-token', TOKEN, '--handlers', handlersDir, '--state-dir', stateDir, '--log-level', 'warn'], {});
  agents.push(run.child);
  return run;
}

async function enrolled(run: { out: () => string; err: () => string }): Promise<string> {
  return waitFor(async () => /Agent (slave-[0-9a-f]{8}) enrolled/.exec(run.out())?.[1] ?? (await Promise.resolve(undefined)), 15_000, 50);
}

describe('agent processes over HTTP on loopback', () => {
  it('three agents enroll with their handlers; tasks run through handler scripts and their results (and failures) come back', async () => {
    const s = await server({ DATA_DIR: tempDir(), DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '3s' });
    const call = jsonClient(() => s.url);
    const dir = handlers();
    const runs = [startAgent(s.url, dir), startAgent(s.url, dir), startAgent(s.url, dir)];
    const ids = await Promise.all(runs.map(enrolled));
    expect(new Set(ids).size).toBe(3);
    const agent = await getJson(`${s.url}/api/v1/agents/${ids[0] ?? ''}`);
    // Real metrics of this machine; only executables named after task types are offered.
    expect((agent.body.capabilities as string[]).sort()).toEqual(['analyze_risk', 'deploy', 'health_check', 'monitor', 'process_data']);
    const sum = await call('POST', '/api/v1/tasks', { type: 'process_data', params: { data: [1, 2, 3, 4] } });
    const fail = await call('POST', '/api/v1/tasks', { type: 'deploy', params: { version: '2' }, maxAttempts: 1 });
    const health = await call('POST', '/api/v1/tasks', { type: 'health_check', target: { agentId: ids[1] } });
    const done = await waitFor(async () => {
      const t = await call('GET', `/api/v1/tasks/${String(sum.body.id)}`);
      return t.body.status === 'completed' ? t.body : undefined;
    }, 15_000, 100);
    expect(done.result).toMatchObject({ sum: 10 });
    const failed = await waitFor(async () => {
      const t = await call('GET', `/api/v1/tasks/${String(fail.body.id)}`);
      return t.body.status === 'dead' ? t.body : undefined;
    }, 15_000, 100);
    expect(failed.error).toBe('handler exited with 3: disk full');
    const h = await waitFor(async () => {
      const t = await call('GET', `/api/v1/tasks/${String(health.body.id)}`);
      return t.body.status === 'completed' ? t.body : undefined;
    }, 15_000, 100);
    // Named as the simulated agent names them (src/domain/builtin-tasks.ts).
    const r = h.result as { cpu_usage: number; memory_usage: number; disk_usage: number; battery_level: number | null };
    expect(Object.keys(r).sort()).toEqual(['battery_charging', 'battery_level', 'cpu_usage', 'disk_usage', 'hostname', 'is_healthy', 'issues', 'memory_usage', 'os_version']);
    expect(r.cpu_usage).toBeGreaterThanOrEqual(0);
    expect(r.memory_usage).toBeGreaterThan(0);
    expect(r.disk_usage).toBeGreaterThan(0);
  });

  it('an agent killed while it holds a task is marked offline within the bound, and the task runs on another agent with the attempt counted', async () => {
    const s = await server({ DATA_DIR: tempDir(), DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '3s' });
    const call = jsonClient(() => s.url);
    const slow = startAgent(s.url, handlers(60_000));
    const slowId = await enrolled(slow);
    const task = await call('POST', '/api/v1/tasks', { type: 'analyze_risk', maxAttempts: 3 });
    await waitFor(async () => ((await call('GET', `/api/v1/tasks/${String(task.body.id)}`)).body.status === 'in_progress' ? true : undefined), 10_000, 100);
    const fast = [startAgent(s.url, handlers()), startAgent(s.url, handlers())];
    const fastIds = await Promise.all(fast.map(enrolled));
    // Let the detector learn the rhythm of the new agents before the kill.
    await new Promise((r) => setTimeout(r, 1500));
    slow.child.kill('SIGKILL');
    const killedAt = Date.now();
    const offlineAt = await waitFor(async () => ((await call('GET', `/api/v1/agents/${slowId}`)).body.connectivity === 'offline' ? Date.now() : undefined), 10_000, 100);
    // AGENT_TIMEOUT (3 s) is the bound; the sweeper looks every second.
    expect(offlineAt - killedAt).toBeLessThan(3000 + 1500);
    const done = await waitFor(async () => {
      const t = await call('GET', `/api/v1/tasks/${String(task.body.id)}`);
      return t.body.status === 'completed' ? t.body : undefined;
    }, 15_000, 100);
    expect(done.attempts, JSON.stringify(done)).toBe(2);
    expect(fastIds).toContain(done.agentId);
    expect((done.attemptHistory as { agentId: string; outcome: string }[])[0]).toMatchObject({ agentId: slowId, outcome: 'agent_lost' });
  });

  it('an agent stopped (SIGSTOP) past its lease and resumed (SIGCONT): its late result is refused and the task completes once, on another agent', async () => {
    const s = await server({ DATA_DIR: tempDir(), DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '3s' });
    const call = jsonClient(() => s.url);
    const stateA = tempDir();
    const a = startAgent(s.url, handlers(2500, 'A'), stateA);
    const aId = await enrolled(a);
    const task = await call('POST', '/api/v1/tasks', { type: 'analyze_risk', maxAttempts: 3 });
    await waitFor(async () => ((await call('GET', `/api/v1/tasks/${String(task.body.id)}`)).body.status === 'in_progress' ? true : undefined), 10_000, 100);
    a.child.kill('SIGSTOP');
    await waitFor(async () => ((await call('GET', `/api/v1/agents/${aId}`)).body.connectivity === 'offline' ? true : undefined), 10_000, 100);
    const b = startAgent(s.url, handlers(0, 'B'));
    const bId = await enrolled(b);
    const done = await waitFor(async () => {
      const t = await call('GET', `/api/v1/tasks/${String(task.body.id)}`);
      return t.body.status === 'completed' ? t.body : undefined;
    }, 15_000, 100);
    expect(done).toMatchObject({ agentId: bId, attempts: 2, result: { by: 'B' } });
    // A wakes up: its handler finished long ago, its result for attempt 1 is delivered and refused.
    a.child.kill('SIGCONT');
    await waitFor(async () => (readdirSync(join(stateA, 'results')).length === 0 && ((await call('GET', `/api/v1/agents/${aId}`)).body.connectivity === 'online') ? true : undefined), 15_000, 200);
    await new Promise((r) => setTimeout(r, 500));
    expect((await call('GET', `/api/v1/tasks/${String(task.body.id)}`)).body).toMatchObject({ status: 'completed', agentId: bId, attempts: 2, result: { by: 'B' } });
  });

  it('the orchestrator restarts while an agent runs a task: the agent reconnects and its result, kept on disk meanwhile, completes the task', async () => {
    const data = tempDir();
    const env = { DATA_DIR: data, DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '3s' };
    const s1 = await server(env);
    const port = new URL(s1.url).port;
    const stateDir = tempDir();
    const startedFile = join(tempDir(), 'started');
    const a = startAgent(s1.url, handlers(2000, 'A', startedFile), stateDir);
    const aId = await enrolled(a);
    const call1 = jsonClient(() => s1.url);
    const task = await call1('POST', '/api/v1/tasks', { type: 'analyze_risk', maxAttempts: 3 });
    // Killed once the agent runs the task (in progress is said as soon as it is assigned, before the agent has it).
    await waitFor(() => Promise.resolve(existsSync(startedFile) ? true : undefined), 10_000, 50);
    s1.child.kill('SIGKILL');
    await s1.exited;
    // The handler finishes while the orchestrator is down: the result waits on disk.
    await waitFor(async () => (readdirSync(join(stateDir, 'results')).length === 1 ? true : Promise.resolve(undefined)), 10_000, 100);
    const s2 = await server({ ...env, PORT: port });
    const call2 = jsonClient(() => s2.url);
    const done = await waitFor(async () => {
      const t = await call2('GET', `/api/v1/tasks/${String(task.body.id)}`);
      return t.body.status === 'completed' ? t.body : undefined;
    }, 20_000, 200);
    expect(done).toMatchObject({ agentId: aId, attempts: 1, result: { by: 'A' } });
    // The agent deletes its copy once the answer reaches it (just after the commit the test saw).
    await waitFor(async () => (readdirSync(join(stateDir, 'results')).length === 0 ? true : Promise.resolve(undefined)), 5000, 50);
    // Its next heartbeat (every 500 ms here) brings it back online; the result may have come first.
    await waitFor(async () => ((await call2('GET', `/api/v1/agents/${aId}`)).body.connectivity === 'online' ? true : undefined), 5000, 100);
  });

  it('an orchestrator started again within the agent timeout keeps a silent agent online, times its silence from the start, and marks it offline only past the timeout', async () => {
    const data = tempDir();
    const env = { DATA_DIR: data, DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '4s' };
    const s1 = await server(env);
    const port = new URL(s1.url).port;
    const a = startAgent(s1.url, handlers());
    const aId = await enrolled(a);
    // Heard from just now; then paused, so that nothing it sends hides what the new process decides.
    await waitFor(async () => ((await getJson(`${s1.url}/api/v1/agents/${aId}`)).body.connectivity === 'online' ? true : undefined), 5000, 100);
    a.child.kill('SIGSTOP');
    s1.child.kill('SIGKILL');
    await s1.exited;
    const s2 = await server({ ...env, PORT: port });
    const startedAt = Date.now();
    expect((await getJson(`${s2.url}/api/v1/agents/${aId}`)).body.connectivity).toBe('online');
    // Still silent: offline once its timeout has passed since the start (not at once, not never).
    const offlineAt = await waitFor(async () => ((await getJson(`${s2.url}/api/v1/agents/${aId}`)).body.connectivity === 'offline' ? Date.now() : undefined), 15_000, 100);
    expect(offlineAt - startedAt).toBeGreaterThan(2000);
    a.child.kill('SIGCONT');
    await waitFor(async () => ((await getJson(`${s2.url}/api/v1/agents/${aId}`)).body.connectivity === 'online' ? true : undefined), 10_000, 100);
  });
});
