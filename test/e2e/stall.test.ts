import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { jsonClient, runCli, serversPerTest, waitFor } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

const startServer = serversPerTest();
const TOKEN = 'stall-test-enroll-token';
const agents: ChildProcess[] = [];
afterEach(() => {
  for (const a of agents.splice(0)) if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
});

/** A `process_data` handler that takes `seconds` and writes one line per run (its task marker) to `runsFile`. */
function handlers(runsFile: string, seconds: number): string {
  const dir = tempDir();
  const script = `#!/usr/bin/env node
let s = '';
process.stdin.on('data', (d) => (s += d));
process.stdin.on('end', () => {
  const p = JSON.parse(s || '{}');
  require('node:fs').appendFileSync(${JSON.stringify(runsFile)}, String(p.n) + '\\n');
  setTimeout(() => process.stdout.write(JSON.stringify({ n: p.n })), ${seconds * 1000});
});
`;
  writeFileSync(join(dir, 'process_data'), script);
  chmodSync(join(dir, 'process_data'), 0o755);
  return dir;
}

async function stallScenario(env: Record<string, string>, stallMs: number, taskSeconds: number): Promise<void> {
  const server = await startServer({ DATA_DIR: tempDir(), DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, LOG_LEVEL: 'warn', ...env });
  const api = jsonClient(() => server.url);
  const runs = join(tempDir(), 'runs.log');
  const dir = handlers(runs, taskSeconds);
  for (let i = 0; i < 3; i++) {
    const run = runCli(['agent', '--server', server.url, '--enroll-token', TOKEN, '--handlers', dir, '--state-dir', tempDir(), '--log-level', 'error'], {});
    agents.push(run.child);
  }
  await waitFor(async () => {
    const list = (await api('GET', '/api/v1/agents')).body.agents as { status: string }[];
    return list.length === 3 && list.every((a) => a.status !== 'offline') ? true : undefined;
  }, 30_000, 100);
  const ids: string[] = [];
  for (let n = 0; n < 6; n++) ids.push((await api('POST', '/api/v1/tasks', { type: 'process_data', params: { n } })).body.id as string);
  // Three run (one per agent), three wait. Then the orchestrator itself stops while they run.
  await waitFor(() => Promise.resolve(existsSync(runs) && readFileSync(runs, 'utf8').trim().split('\n').length === 3 ? true : undefined), 15_000, 50);
  // A burst of work keeps the orchestrator busy when it is stopped, rather than waiting idle for sockets: then, as
  // on a loaded server, its timers come due before the heartbeats that queued up meanwhile are read.
  const batch = { tasks: Array.from({ length: 500 }, () => ({ type: 'health_check', target: { selector: { site: 'nowhere' } } })) };
  const burst = Array.from({ length: 20 }, () => api('POST', '/api/v1/tasks/batch', batch));
  await new Promise((r) => setTimeout(r, 30));
  server.child.kill('SIGSTOP');
  await new Promise((r) => setTimeout(r, stallMs));
  server.child.kill('SIGCONT');
  expect((await Promise.all(burst)).map((r) => r.status)).toEqual(burst.map(() => 201));
  const done = await waitFor(async () => {
    const views = await Promise.all(ids.map(async (id) => (await api('GET', `/api/v1/tasks/${id}`)).body as { status: string; attemptHistory: { outcome: string | null }[] }));
    return views.every((v) => v.status === 'completed') ? views : undefined;
  }, 60_000, 200);
  // Every task ran once, on its first attempt; no agent was marked offline for the orchestrator's own stall.
  expect(done.map((v) => v.attemptHistory.map((a) => a.outcome))).toEqual(ids.map(() => ['succeeded']));
  expect(readFileSync(runs, 'utf8').trim().split('\n').sort()).toEqual(['0', '1', '2', '3', '4', '5']);
  expect(server.stderr()).not.toMatch(/agent marked offline/);
  expect(server.stderr()).toMatch(/the orchestrator stalled/);
}

describe('a stall of the orchestrator itself', () => {
  it('SIGSTOP for 4.5 s, just under AGENT_TIMEOUT (heartbeat 1 s, timeout 5 s), marks no agent offline and runs no task twice', async () => {
    await stallScenario({ HEARTBEAT_INTERVAL: '1s', AGENT_TIMEOUT: '5s' }, 4500, 8);
  }, 120_000);
});
