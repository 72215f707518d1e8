import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { onePlatformTests, processTests } from '../../vitest.processes.config.js';
import { jsonClient, ROOT, runCli, serversPerTest, waitFor } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

// scripts/test-node.sh runs the process tests on another Node and sets ORCH_EXPECT_NODE to the version
// it asked for (`22`, `24.1`, ...): these tests make sure that this Node, not the one that runs
// `npm test`, is the one every process of the run is on, so that a silent fallback cannot pass.
const server = serversPerTest();
const TOKEN = 'node-runtime-test-enroll-token';

/** The real path of the executable a running process was started from. */
function executableOf(pid: number): string {
  if (existsSync(`/proc/${pid}/exe`)) return realpathSync(`/proc/${pid}/exe`);
  return realpathSync(execFileSync('ps', ['-o', 'comm=', '-p', String(pid)], { encoding: 'utf8' }).trim());
}

describe('the Node the tests run on', () => {
  it('is the one asked for, and one the package supports', () => {
    const asked = process.env.ORCH_EXPECT_NODE;
    if (asked !== undefined) expect(process.versions.node).toMatch(new RegExp(`^${asked.replaceAll('.', '\\.')}(\\.|$)`));
    const engines = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
    const min = /^>=(\d+)\.(\d+)$/.exec(engines);
    expect(min).not.toBeNull();
    const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
    expect(major * 1000 + minor).toBeGreaterThanOrEqual(Number(min?.[1]) * 1000 + Number(min?.[2]));
    // better-sqlite3 is a native addon: it loads only when built for this Node's ABI.
    const db = new Database(':memory:');
    expect((db.prepare('select sqlite_version() as v').get() as { v: string }).v).toMatch(/^3\.\d+\.\d+$/);
    db.close();
  });

  it('runs the orchestrator and agent child processes, and the handlers agents start with `#!/usr/bin/env node`', async () => {
    const s = await server({ DATA_DIR: tempDir(), DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '3s' });
    const handlers = tempDir();
    writeFileSync(join(handlers, 'process_data'), `#!/usr/bin/env node\nprocess.stdout.write(JSON.stringify({ node: process.version, abi: process.versions.modules }));\n`);
    chmodSync(join(handlers, 'process_data'), 0o755);
    const agent = runCli(['agent', '--server', s.url, '--enroll-token', TOKEN, '--handlers', handlers, '--state-dir', tempDir(), '--log-level', 'warn'], {});
    try {
      await waitFor(() => Promise.resolve(/Agent slave-[0-9a-f]{8} enrolled/.test(agent.out()) ? true : undefined), 15_000);
      const self = realpathSync(process.execPath);
      expect(executableOf(s.child.pid ?? 0)).toBe(self);
      expect(executableOf(agent.child.pid ?? 0)).toBe(self);
      // The orchestrator child commits the task and its result with better-sqlite3, loaded in that process.
      const call = jsonClient(() => s.url);
      const task = await call('POST', '/api/v1/tasks', { type: 'process_data', params: {} });
      expect(task.status).toBe(201);
      const done = await waitFor(async () => {
        const t = await call('GET', `/api/v1/tasks/${String(task.body.id)}`);
        return t.body.status === 'completed' ? t.body : undefined;
      }, 15_000, 100);
      expect(done.result).toEqual({ node: process.version, abi: process.versions.modules });
    } finally {
      agent.child.kill('SIGKILL');
      await agent.exited;
    }
  });
});

describe('the process tests (vitest.processes.config.ts)', () => {
  it('list every test file that starts a child process, so that scripts/test-node.sh runs each on every Node (or, named as such, on one)', () => {
    const startsProcesses = /from 'node:child_process'|\b(runCli|runScript|serversPerTest|startServerProcess|replicasPerTest)\(/;
    const files = readdirSync(join(ROOT, 'test'), { recursive: true, encoding: 'utf8' })
      .map((f) => `test/${f.split('\\').join('/')}`)
      .filter((f) => f.endsWith('.test.ts') && startsProcesses.test(readFileSync(join(ROOT, f), 'utf8')));
    expect(files.length).toBeGreaterThan(0);
    expect(files.filter((f) => !processTests.includes(f) && !onePlatformTests.includes(f))).toEqual([]);
    expect([...processTests, ...onePlatformTests].filter((f) => !existsSync(join(ROOT, f)))).toEqual([]);
    expect(processTests.filter((f) => onePlatformTests.includes(f))).toEqual([]);
  });
});
