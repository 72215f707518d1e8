import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { getJson, postJson, ROOT, serversPerTest } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

/*
 * The standalone agent package as a device gets it: scripts/build-agent-package.mjs (what `npm run build` runs)
 * builds it into a folder of this test's, `npm pack` packs it, and `npm install` puts the tarball into an empty
 * folder, offline and with an empty cache (the package has no dependencies: nothing is fetched). The installed
 * `orchestrator-agent` then runs against a real orchestrator process.
 */

const run = promisify(execFile);
const TOKEN = 'agent-package-test-token';
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const server = serversPerTest();

/** Folders of the whole file (tempDir's are removed after each test). */
const WORK = mkdtempSync(join(tmpdir(), 'orch-agent-package-'));
const PACKAGE = join(WORK, 'package');
const DEVICE = join(WORK, 'device');
/** `npm install -g` with this prefix: a laptop's global install (docs/agent.md), without touching this machine's. */
const GLOBAL = join(WORK, 'global');
let tarball = '';
let packedFiles: string[] = [];
let bin = '';

/** npm with a cache of this test's own (an empty one: --offline then proves that nothing needs the registry). */
async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run('npm', [...args, '--cache', join(WORK, 'npm-cache'), '--no-audit', '--no-fund', '--no-update-notifier'], {
    cwd,
    env: { ...process.env, npm_config_registry: 'http://127.0.0.1:9/' },
    timeout: 60_000,
  });
  return stdout;
}

beforeAll(async () => {
  await run(process.execPath, [join(ROOT, 'scripts/build-agent-package.mjs'), '--out', PACKAGE], { cwd: ROOT, timeout: 60_000 });
  const packed = JSON.parse(await npm(['pack', PACKAGE, '--pack-destination', WORK, '--json'], WORK)) as { filename: string; files: { path: string }[] }[];
  tarball = join(WORK, packed[0]?.filename ?? '?');
  packedFiles = (packed[0]?.files ?? []).map((f) => f.path).sort();
  mkdirSync(DEVICE);
  await npm(['install', '--offline', '--prefix', DEVICE, tarball], DEVICE);
  await npm(['install', '--global', '--offline', '--prefix', GLOBAL, tarball], WORK);
  bin = join(DEVICE, 'node_modules', '.bin', process.platform === 'win32' ? 'orchestrator-agent.cmd' : 'orchestrator-agent');
}, 120_000);
afterAll(() => rmSync(WORK, { recursive: true, force: true }));

interface AgentRun {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | string>;
}
const agents: ChildProcess[] = [];
afterEach(() => {
  for (const a of agents.splice(0)) if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
});

/** The installed command, run as a user runs it: by its bin link (its `#!/usr/bin/env node` line picks node). */
function agent(args: string[], env: Record<string, string> = {}): AgentRun {
  const child = spawn(bin, args, { cwd: DEVICE, env: { ...process.env, PATH: `${join(process.execPath, '..')}:${process.env.PATH ?? ''}`, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  agents.push(child);
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  // 'close', not 'exit': 'exit' can come before the last of its output has been read (node's docs say so; the
  // CLI test saw a usage error's line missing under load), and what it wrote is what tests read next.
  const exited = new Promise<number | string>((resolve) => child.on('close', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, out: () => out, err: () => err, exited };
}

/** A port nothing listens on (just closed). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

const enrolledId = (a: AgentRun): string | undefined => /Agent (slave-[0-9a-f]{8}) enrolled with/.exec(a.out())?.[1];

describe('the standalone agent package', () => {
  it('packs to one bundled file with its package.json, installs offline into an empty folder with nothing else, and prints its version', () => {
    expect(packedFiles).toEqual(['README.md', 'THIRD-PARTY-NOTICES.md', 'orchestrator-agent.js', 'package.json']);
    expect(readdirSync(join(DEVICE, 'node_modules')).filter((f) => !f.startsWith('.'))).toEqual(['aws-orchestrator-agent']);
    const installed = JSON.parse(readFileSync(join(DEVICE, 'node_modules/aws-orchestrator-agent/package.json'), 'utf8')) as Record<string, unknown>;
    expect(installed).toMatchObject({ name: 'aws-orchestrator-agent', version: VERSION, bin: { 'orchestrator-agent': 'orchestrator-agent.js' }, engines: { node: '>=20.19' } });
    for (const key of ['dependencies', 'optionalDependencies', 'peerDependencies', 'scripts']) expect(installed[key], key).toBeUndefined();
    const code = readFileSync(join(DEVICE, 'node_modules/aws-orchestrator-agent/orchestrator-agent.js'), 'utf8');
    expect(code.startsWith('#!/usr/bin/env node\n')).toBe(true);
    for (const server of ['better-sqlite3', 'fastify', 'pg-pool', 'orchestrator_heartbeats_total']) expect(code, server).not.toContain(server);
  });

  it('--version prints the package version and --help the options; usage errors exit 2 with one line', async () => {
    const v = agent(['--version']);
    expect(await v.exited).toBe(0);
    expect(v.out()).toBe(`${VERSION}\n`);
    // Installed globally, it is the same command on the PATH's bin folder.
    const { stdout } = await run(join(GLOBAL, process.platform === 'win32' ? 'orchestrator-agent.cmd' : 'bin/orchestrator-agent'), ['--version']);
    expect(stdout).toBe(`${VERSION}\n`);
    const help = agent(['--help']);
    expect(await help.exited).toBe(0);
    expect(help.out()).toMatch(/^Usage: orchestrator-agent \[options\]/);
    for (const flag of ['--server', '--enroll-token', '--handlers', '--state-dir', '--log-level', '--version']) expect(help.out()).toContain(flag);
    const missing = agent(['--enroll-token', TOKEN]);
    expect(await missing.exited).toBe(2);
    expect(missing.err()).toBe("error: required option '--server <urls>' not specified\n");
    const badUrl = agent(['--server', 'ftp://127.0.0.1:8000', '--enroll-token', TOKEN, '--state-dir', tempDir()]);
    expect(await badUrl.exited).toBe(2);
    expect(badUrl.err()).toBe('--server: must be an http(s) URL, or several separated by commas (got "ftp://127.0.0.1:8000")\n');
    // No token, neither as the option nor in the environment (where `ps` does not show it).
    const noToken = agent(['--server', 'http://127.0.0.1:8000', '--state-dir', tempDir()]);
    expect(await noToken.exited).toBe(2);
    expect(noToken.err()).toBe("error: required option '--enroll-token <token>' not specified\n");
    const unknown = agent(['--server', 'http://127.0.0.1:8000', '--enroll-token', TOKEN, '--no-such-flag']);
    expect(await unknown.exited).toBe(2);
    expect(unknown.err()).toBe("error: unknown option '--no-such-flag'\n");
  });

  it('enrolls with a real orchestrator, heartbeats, runs a health_check and a handler task assigned to it, and stops cleanly on SIGTERM', async () => {
    const s = await server({ DATA_DIR: tempDir(), DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '3s' });
    const stateDir = join(tempDir(), 'state'); // made by the agent
    const handlers = tempDir();
    writeFileSync(join(handlers, 'process_data'), "#!/usr/bin/env node\nlet s = '';\nprocess.stdin.on('data', (d) => (s += d));\nprocess.stdin.on('end', () => process.stdout.write(JSON.stringify({ sum: JSON.parse(s).data.reduce((a, b) => a + b, 0) })));\n");
    chmodSync(join(handlers, 'process_data'), 0o755);
    const a = agent(['--server', s.url, '--enroll-token', TOKEN, '--handlers', handlers, '--state-dir', stateDir, '--log-level', 'warn']);
    await expect.poll(() => enrolledId(a) ?? a.err(), { timeout: 20_000, interval: 100 }).toMatch(/^slave-/);
    const id = enrolledId(a) as string;
    expect(a.out()).toContain(`enrolled with ${s.url}; task types: `);
    expect((await getJson(`${s.url}/list_agents`)).body.agents).toEqual([id]);

    // Heartbeats: the orchestrator hears from it again and again (every 500 ms here).
    const heartbeat = async (): Promise<string> => String((await getJson(`${s.url}/api/v1/agents/${id}`)).body.last_heartbeat);
    const first = await heartbeat();
    await expect.poll(heartbeat, { timeout: 5000, interval: 100 }).not.toBe(first);
    const second = await heartbeat();
    await expect.poll(heartbeat, { timeout: 5000, interval: 100 }).not.toBe(second);
    const agentView = (await getJson(`${s.url}/api/v1/agents/${id}`)).body;
    expect(agentView).toMatchObject({ connectivity: 'online' });
    expect((agentView.capabilities as string[]).sort()).toEqual(['analyze_risk', 'health_check', 'monitor', 'process_data']);

    // The prototype's routes: the only agent takes both tasks; health_check reads this machine.
    const health = await postJson(`${s.url}/submit_task`, { task_type: 'health_check' });
    const sum = await postJson(`${s.url}/submit_task`, { task_type: 'process_data', parameters: { data: [2, 3, 5] } });
    const done = async (taskId: unknown): Promise<Record<string, unknown>> => (await getJson(`${s.url}/status/${String(taskId)}`)).body;
    await expect.poll(async () => (await done(health.body.task_id)).status, { timeout: 20_000, interval: 100 }).toBe('completed');
    await expect.poll(async () => (await done(sum.body.task_id)).status, { timeout: 20_000, interval: 100 }).toBe('completed');
    const h = await done(health.body.task_id);
    expect(h).toMatchObject({ assigned_to: id, attempts: 1 });
    expect((h.result as { memory_usage: number }).memory_usage).toBeGreaterThan(0);
    expect(await done(sum.body.task_id)).toMatchObject({ assigned_to: id, attempts: 1, result: { sum: 10 } });

    // SIGTERM: exit 0, the state dir keeps its identity and gives up its lock.
    a.child.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(JSON.parse(readFileSync(join(stateDir, 'identity.json'), 'utf8'))).toMatchObject({ agentId: id });
    // The credential is the agent's user's alone: the folder it made and the file in it.
    if (process.platform !== 'win32') {
      expect(statSync(stateDir).mode & 0o777).toBe(0o700);
      expect(statSync(join(stateDir, 'identity.json')).mode & 0o777).toBe(0o600);
    }
    expect(existsSync(join(stateDir, 'agent.lock'))).toBe(false);
    expect(a.err()).not.toMatch(/"level":(50|60)/);
  });

  it('with its server unreachable it retries with backoff, saying why, enrolls once the server is up, and stops on SIGTERM while it waits', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    // Its token from the environment: not on its command line, where any user of the machine can read it.
    const a = agent(['--server', url, '--handlers', tempDir(), '--state-dir', tempDir(), '--log-level', 'warn'], { ORCH_ENROLL_TOKEN: TOKEN });
    expect(readFileSync(`/proc/${a.child.pid}/cmdline`, 'utf8')).not.toContain(TOKEN);
    const waiting = agent(['--server', `http://127.0.0.1:${await freePort()}`, '--enroll-token', TOKEN, '--handlers', tempDir(), '--state-dir', tempDir(), '--log-level', 'warn']);
    // Two tries at least (the first backoff is about half a second), each logged with its reason.
    await expect.poll(() => a.err().match(/"msg":"enrollment failed; retrying"/g)?.length ?? 0, { timeout: 10_000, interval: 100 }).toBeGreaterThanOrEqual(2);
    expect(a.err()).toMatch(/"err":"[^"]*fetch failed[^"]*"/);
    expect(a.child.exitCode).toBeNull();
    expect(a.out()).toBe('');

    const s = await server({ DATA_DIR: tempDir(), DEFAULT_AGENTS: '0', ENROLL_TOKEN: TOKEN, HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '3s', PORT: String(port) });
    expect(s.url).toBe(url);
    // The backoff doubles up to 30 s; a few seconds after the server is up it has tried again.
    await expect.poll(() => enrolledId(a) ?? '', { timeout: 30_000, interval: 100 }).toMatch(/^slave-/);
    await expect.poll(async () => (await getJson(`${s.url}/list_agents`)).body.agents, { timeout: 5000, interval: 100 }).toEqual([enrolledId(a)]);

    // The other one never reached a server: SIGTERM ends its wait at once.
    expect(waiting.child.exitCode).toBeNull();
    const stopAt = Date.now();
    waiting.child.kill('SIGTERM');
    expect(await waiting.exited).toBe(0);
    expect(Date.now() - stopAt).toBeLessThan(5000);
    expect(waiting.out()).toBe('');
  });
});
