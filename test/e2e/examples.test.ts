/**
 * The seed's examples (examples/basic.ts, examples/advanced.ts) run as `npm run example:basic` and
 * `npm run example:advanced` run them, minus the build: each in a child process (node with tsx's loader),
 * starting a real orchestrator from dist/ (dist/cli/main.js, which `npm install` builds through `prepare`
 * and `npm test`'s callers have built: the examples refuse to run without it, saying so). Each must exit 0
 * and print what the brief asks for, from the server's answers; and exit 1 with a message when something is
 * not as it expects.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ScriptRun } from '../support/server-process.js';
import { ROOT, runScript, serversPerTest } from '../support/server-process.js';
import { tempDir } from '../support/tmp.js';

const running: ScriptRun[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGKILL');
      await r.exited;
    }
  }
});

/** Runs an example with `env` over this process's (ORCH_SERVER cleared, the analyser as the advisor) and waits for its exit. */
async function runExample(file: string, env: Record<string, string> = {}): Promise<{ code: number | string; out: string; err: string }> {
  const run = runScript(file, [], { ORCH_SERVER: '', ORCH_TOKEN: '', ADVISOR_PROVIDER: 'none', ...env });
  running.push(run);
  const code = await run.exited;
  return { code, out: run.out(), err: run.err() };
}

/** The temporary data folder an example printed; it must be gone once the example has exited. */
function dataDirOf(out: string): string {
  const m = /data in (\S+) \(removed at the end\)/.exec(out);
  expect(m, 'the example names its data folder').not.toBeNull();
  return m?.[1] as string;
}

const startServer = serversPerTest();

describe('the seed examples', () => {
  it('dist/ is built (the examples start dist/cli/main.js)', () => {
    expect(existsSync(join(ROOT, 'dist', 'cli', 'main.js')), 'run npm run build before these tests').toBe(true);
  });

  it('basic: spawns agents, runs a task of each type to completion, prints each result and the cluster status', async () => {
    const { code, out, err } = await runExample('examples/basic.ts');
    expect(code, `${out}\n${err}`).toBe(0);
    // The orchestrator's own start-up story, and the agents spawned through the seed's endpoint.
    expect(out).toMatch(/\| Spawning 2 default agents\.\.\./);
    expect(out.match(/POST \/spawn_agent -> slave-[0-9a-f]{8}/g)).toHaveLength(2);
    expect(out).toMatch(/GET \/list_agents -> 5 agents/);
    // One line per task in the results table, every one completed.
    for (const type of ['process_data', 'health_check', 'deploy', 'analyze_risk', 'monitor']) {
      expect(out, type).toMatch(new RegExp(`^ +[0-9a-f]{8} +${type} +completed +slave-[0-9a-f]{8} +1 `, 'm'));
    }
    expect(out.match(/^ +[0-9a-f]{8} +\w+ +completed /gm)).toHaveLength(6);
    // Each result, as its agent answered it.
    expect(out).toContain('count 10, sum 39, mean 3.9, min 1, max 9, median 3.5');
    expect(out).toMatch(/2 fields, \d+ bytes of canonical JSON, sha256 [0-9a-f]{16}…/);
    expect(out).toMatch(/DEVICE-[0-9A-F]{6} \([^)]+\): (battery [\d.]+%( \(charging\))?|no battery), cpu [\d.]+%, memory [\d.]+%, disk [\d.]+%; (healthy|unhealthy: .+)/);
    expect(out).toContain('installed 2.4.1 (previously nothing)');
    expect(out).toMatch(/risk [\d.]+\/100 \((low|medium|high)\)/);
    expect(out).toMatch(/5 readings over 2 s, every 0\.5 s; average cpu [\d.]+%/);
    // The cluster status table.
    expect(out).toMatch(/agents +5 +\d+ busy, \d+ idle, 0 offline/);
    expect(out).toMatch(/tasks +6 +6 completed, 0 failed, 0 pending, 0 running, 0 cancelled/);
    expect(out).toMatch(/rings +5 +canary \d+, dev \d+, stage \d+, prod \d+, unassigned 0/);
    expect(out).toMatch(/Done in [\d.]+ s\./);
    expect(existsSync(dataDirOf(out))).toBe(false);
  }, 60_000);

  it('basic also runs against an orchestrator already running (ORCH_SERVER, ORCH_TOKEN), and says so', async () => {
    const token = 'examples-test-admin-token-0123456789abcdef';
    const server = await startServer({ DATA_DIR: tempDir(), ADMIN_TOKEN: token, DEFAULT_AGENTS: '1', HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '5s' });
    const { code, out, err } = await runExample('examples/basic.ts', { ORCH_SERVER: server.url, ORCH_TOKEN: token });
    expect(code, `${out}\n${err}`).toBe(0);
    expect(out).toContain(`Using the orchestrator at ${server.url} (ORCH_SERVER)`);
    expect(out.match(/^ +[0-9a-f]{8} +\w+ +completed /gm)).toHaveLength(6);
    // Its own fleet: one default agent and the demo asset's, plus the two the example spawned.
    expect(out).toMatch(/GET \/list_agents -> 4 agents/);
  }, 60_000);

  it('basic exits 1 with a message when it cannot use the orchestrator it is given', async () => {
    const { code, err } = await runExample('examples/basic.ts', { ORCH_SERVER: 'http://127.0.0.1:9' });
    expect(code).toBe(1);
    expect(err).toMatch(/^EXAMPLE FAILED: cannot use the orchestrator at ORCH_SERVER=http:\/\/127\.0\.0\.1:9: /m);

    const server = await startServer({ DATA_DIR: tempDir(), ADMIN_TOKEN: 'examples-test-admin-token-0123456789abcdef', DEFAULT_AGENTS: '0' });
    const refused = await runExample('examples/basic.ts', { ORCH_SERVER: server.url, ORCH_TOKEN: 'not-the-token' });
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/EXAMPLE FAILED: cannot use the orchestrator at ORCH_SERVER=.*: GET \/api\/v1\/whoami answered 401 ORCH_UNAUTHORIZED/);
  }, 60_000);

  it('advanced: a good release passes every ring; a bad one is halted by the canary health gate, explained by the advisor and rolled back', async () => {
    const { code, out, err } = await runExample('examples/advanced.ts');
    expect(code, `${out}\n${err}`).toBe(0);
    // The fleet, placed by health: the canary holds the six least healthy laptops, three of each model.
    expect(out).toMatch(/canary +6 +6 +[\d.]+ +3 Latitude 7440, 3 ThinkPad T14 Gen 4\n/);
    // The gate in words, read by the advisor.
    expect(out).toContain('-> gate {"maxCpuRegression":20,"maxMemoryRegression":15,"maxFailureShare":0.05,"observeMs":2000}');

    const good = out.slice(out.indexOf('== Release 2.4.1'), out.indexOf('== Release 2.5.0'));
    for (const ring of ['canary', 'dev', 'prod']) expect(good).toMatch(new RegExp(`${ring} +PASS +ring ${ring} passed: 0 of \\d+ failed \\(0%\\), 0 timed out, 0 of \\d+ regressed`));
    expect(good).toMatch(/completed \(complete\)/);
    expect(good).toContain('completed: all 24 devices updated');

    // The risk before the bad release starts: the fleet's, and the deployment's (nothing to judge yet).
    const before = out.slice(out.indexOf('== Release 2.5.0: the risk before'), out.indexOf('== Release 2.5.0: canary'));
    expect(before).toContain("The fleet's 24 devices fit their rings");
    expect(before).toMatch(/decision: CONTINUE, risk unknown/);

    // The halt, by the canary's gate, on the devices' own health.
    const bad = out.slice(out.indexOf('== Release 2.5.0: canary'));
    expect(bad).toMatch(/canary +FAIL +halted at ring canary: 3 of 6 devices \(50%\) regressed over their own baselines, above the 10% limit/);
    expect(bad).toMatch(/HALTED: halted at ring canary: 3 of 6 devices \(50%\) regressed/);
    expect(bad).toContain('rings reached: canary; not reached: dev, prod');
    expect(bad).not.toMatch(/(dev|prod) +(PASS|FAIL)/);

    // The advisor's explanation: a rollback, the metric, the model that carries it, and the rings at risk.
    const explanation = out.slice(out.indexOf("== The advisor's explanation"), out.indexOf('== Rollback'));
    expect(explanation).toMatch(/trigger: halt; written by the analyser/);
    expect(explanation).toMatch(/decision: ROLLBACK, risk high/);
    expect(explanation).toMatch(/CPU \+[\d.]+ points against baseline on 6 devices .*3 of 6 \(50%\) rose by more than 20 points.*100% of them Latitude 7440/);
    expect(explanation).toMatch(/dev +high +3 of its 6 devices are Latitude 7440, the model that carries the cpu/);
    expect(explanation).toMatch(/prod +high +6 of its 12 devices are Latitude 7440/);
    expect(explanation.match(/^ +slave-[0-9a-f]{8} +Latitude 7440 +canary +(3\d|4\d)(\.\d)? /gm)).toHaveLength(3);

    // The rollback: every device the release reached runs 2.4.1 again, and the Latitudes' CPU is back down.
    const rollback = out.slice(out.indexOf('== Rollback'));
    expect(rollback).toMatch(/status: rolled_back, every device answered by /);
    const rows = rollback.match(/^ +slave-[0-9a-f]{8} +(Latitude 7440|ThinkPad T14 Gen 4) +canary +rolled_back +completed +2\.4\.1 +2\.5\.0 +[\d.]+ +[\d.]+ +[\d.]+$/gm) ?? [];
    expect(rows).toHaveLength(6);
    for (const row of rows.filter((r) => r.includes('Latitude'))) {
      const [base, on, now] = row.trim().split(/ +/).slice(-3).map(Number) as [number, number, number];
      expect(on - base, row).toBeGreaterThan(20);
      expect(Math.abs(now - base), row).toBeLessThan(10);
    }
    expect(rollback).toContain('The laptops themselves: 24 run 2.4.1');
    expect(existsSync(dataDirOf(out))).toBe(false);
  }, 90_000);

  it('advanced refuses ORCH_SERVER: it needs an orchestrator with its own settings', async () => {
    const { code, err } = await runExample('examples/advanced.ts', { ORCH_SERVER: 'http://127.0.0.1:9' });
    expect(code).toBe(1);
    expect(err).toContain('EXAMPLE FAILED: this example starts an orchestrator of its own, with settings it needs: unset ORCH_SERVER');
  }, 30_000);
});
