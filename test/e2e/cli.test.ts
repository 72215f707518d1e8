import { existsSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

// Its tests run concurrently, each starting several CLI processes at once against one server: with another
// test file beside it on two cores they ran past the default 30 s in CI (twice in four runs), though each
// finishes well within it alone.
vi.setConfig({ testTimeout: 90_000 });
import type { ScriptRun, ServerProcess } from '../support/server-process.js';
import { ROOT, runCli, startServerProcess, waitFor } from '../support/server-process.js';
import { dropTestSchemas, TEST_DATABASE_URL, testSchema } from '../support/postgres.js';
import { cleanupTempDirs, tempDir } from '../support/tmp.js';

/*
 * The operator's command line against a real orchestrator process over HTTP on loopback: every command, its
 * tables and its --json, its exit codes (0 done, 1 failed, 2 usage, 3 not found, 4 refused by auth), replicas
 * tried in turn, the watch commands following real tasks and deployments to their end, and the local
 * commands' refusal of a database that is not there and their audit entries. One server for all of it
 * (protected by ADMIN_TOKEN); the commands run as child processes, many at once.
 */

const ADMIN = 'cli-test-admin-token-0123456789-abcdef';
const VERSION = (JSON.parse((await import('node:fs')).readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const USER = `cli:${userInfo().username}`;

let server: ServerProcess;
let dataDir: string;

interface Run {
  code: number | string;
  out: string;
  err: string;
}

/** Runs `orchestrator <args>` against the test's server as the admin (unless env says otherwise) and waits for its end. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const run = start(args, env);
  const code = await run.exited;
  return { code, out: run.out(), err: run.err() };
}

function start(args: string[], env: Record<string, string> = {}): ScriptRun {
  return runCli(args, { ORCH_SERVER: server.url, ORCH_TOKEN: ADMIN, ...env });
}

/** Its stdout as JSON (the command must have succeeded). */
function json<T = Record<string, unknown>>(r: Run): T {
  expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: '' });
  return JSON.parse(r.out) as T;
}

/** Its stdout as JSON lines. */
function jsonLines(r: Run): Record<string, unknown>[] {
  return r.out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * Checks that a table's columns line up: each named column of the header starts at the same place in every
 * row (left-aligned), or ends there (right-aligned, `>NAME`).
 */
function expectAligned(lines: string[], columns: string[]): void {
  const header = lines[0] as string;
  for (const c of columns) {
    const right = c.startsWith('>');
    const name = right ? c.slice(1) : c;
    const at = header.indexOf(name);
    expect(at, `column ${name} in ${header}`).toBeGreaterThanOrEqual(0);
    for (const row of lines.slice(1)) {
      if (right) {
        const end = at + name.length - 1;
        expect(row[end] ?? ' ', `${name} ends at ${end} in "${row}"`).not.toBe(' ');
        expect(row[end + 1] ?? ' ', `${name} ends at ${end} in "${row}"`).toBe(' ');
      } else {
        expect(row[at] ?? ' ', `${name} starts at ${at} in "${row}"`).not.toBe(' ');
        if (at > 0) expect(row[at - 1], `${name} starts at ${at} in "${row}"`).toBe(' ');
      }
    }
  }
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** Fast stages: every ring dispatched at once, a short soak, no evidence needed to pass (minJudged 0). */
function planFile(name: string, stages: object[]): string {
  const file = join(tempDir(), `${name.replace(/\W/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ name, payload: { type: 'health_check', params: {} }, plan: { stages } }));
  return file;
}
const fast = (ring: string) => ({ ring, rate: { maxPerMinute: 6000 }, soakMs: 500, gate: { minDevices: 1, minJudged: 0, observeMs: 200 } });

beforeAll(async () => {
  dataDir = tempDir();
  server = await startServerProcess({ DATA_DIR: dataDir, DEFAULT_AGENTS: '5', HEARTBEAT_INTERVAL: '250ms', AGENT_TIMEOUT: '3s', ADMIN_TOKEN: ADMIN });
  // Every agent placed in a ring (its first heartbeat) before the commands look at the fleet.
  await waitFor(async () => {
    const r = await cli(['devices', '--json']);
    const placed = r.code === 0 ? (JSON.parse(r.out) as { devices: { ring: string }[] }).devices.filter((d) => d.ring !== 'unassigned').length : 0;
    return placed === 6 ? true : undefined;
  }, 10_000, 200);
}, 40_000);

afterAll(async () => {
  if (server !== undefined && server.child.exitCode === null) {
    server.child.kill('SIGTERM');
    await server.exited;
  }
  await dropTestSchemas();
  cleanupTempDirs();
});

describe.concurrent('the command line: usage, versions and errors', () => {
  it('--version on the program and its commands, --help, and usage errors (exit 2, one line and a hint)', async ({ expect }) => {
    const [v, onStatus, onDeep, help, unknown, missing, badLimit, badServer, group, badFile] = await Promise.all([
      cli(['--version']),
      cli(['status', '--version']),
      cli(['deploy', 'watch', 'x', '--version']),
      cli(['deploy', '--help']),
      cli(['frobnicate']),
      cli(['tasks', 'show']),
      cli(['devices', '--limit', 'lots']),
      cli(['status', '--server', 'ftp://127.0.0.1:8000']),
      cli(['tasks']),
      cli(['deploy', 'create', join(tempDir(), 'missing.json')]),
    ]);
    for (const r of [v, onStatus, onDeep]) expect(r).toEqual({ code: 0, out: `${VERSION}\n`, err: '' });
    expect(help.code).toBe(0);
    for (const verb of ['create', 'list', 'show', 'start', 'pause', 'resume', 'promote', 'abort', 'rollback', 'acknowledge', 'halt', 'watch']) expect(help.out).toMatch(new RegExp(`\\n  ${verb} `));
    expect(unknown).toMatchObject({ code: 2, err: "error: unknown command 'frobnicate'\n(add --help for usage)\n" });
    expect(missing).toMatchObject({ code: 2, err: "error: missing required argument 'id'\n(add --help for usage)\n" });
    expect(badLimit).toMatchObject({ code: 2, out: '', err: 'error: --limit: must be an integer from 1 to 10000000 (got "lots")\n' });
    expect(badServer).toMatchObject({ code: 2, err: 'error: --server: must be an http(s) URL without query, fragment or credentials (got "ftp://127.0.0.1:8000")\n' });
    expect(group.code).toBe(2);
    expect(group.err).toContain('Usage: orchestrator tasks');
    expect(badFile.code).toBe(2);
    expect(badFile.err).toMatch(/^error: \S+missing\.json: cannot read it \(ENOENT\)\n$/);
  });

  it('a reader that stops reading (| head) ends the command quietly: exit 0, no stack', async ({ expect }) => {
    const run = start(['devices', '--all']);
    // The read end of its stdout closed before it writes: its first write fails with EPIPE.
    run.child.stdout?.destroy();
    expect(await run.exited).toBe(0);
    expect(run.err()).toBe('');
  });

  it('no server: exit 1 and one line naming each server tried; replicas: the next one serves when one is down or does not lead', async ({ expect }) => {
    const down = `http://127.0.0.1:${await closedPort()}`;
    const other = `http://127.0.0.1:${await closedPort()}`;
    // A replica that does not lead and cannot forward: 503 ORCH_NOT_LEADER, as docs/api.md says.
    let asked = 0;
    const follower = createServer((_req, res) => {
      asked++;
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ error: 'this replica does not lead and knows no leader', code: 'ORCH_NOT_LEADER' }));
    });
    await new Promise<void>((resolve) => follower.listen(0, '127.0.0.1', resolve));
    const followerUrl = `http://127.0.0.1:${(follower.address() as AddressInfo).port}`;
    try {
      const [none, both, viaEnv, skipDown, skipFollower, onlyFollower] = await Promise.all([
        cli(['status'], { ORCH_SERVER: down }),
        cli(['tasks', 'list', '--server', `${down},${other}`]),
        cli(['whoami'], { ORCH_SERVER: `${down},${server.url}` }),
        cli(['status', '--json', '--server', `${down},${server.url}`]),
        cli(['deploy', 'list', '--server', `${followerUrl},${server.url}`]),
        cli(['status', '--server', followerUrl]),
      ]);
      expect(none).toEqual({ code: 1, out: '', err: `error: cannot reach the orchestrator: ${down} (connection refused); start it (orchestrator serve), or point --server or ORCH_SERVER at it\n` });
      expect(both).toEqual({ code: 1, out: '', err: `error: cannot reach the orchestrator: ${down} (connection refused), ${other} (connection refused); check that one of them runs and leads\n` });
      expect(viaEnv).toEqual({ code: 0, out: `ADMIN_TOKEN (admin), token env at ${server.url}\n`, err: '' });
      expect(json<{ devices: { total: number } }>(skipDown).devices.total).toBe(6);
      expect(skipFollower.code).toBe(0);
      expect(onlyFollower).toEqual({ code: 1, out: '', err: `error: cannot reach the orchestrator: ${followerUrl} (503 ORCH_NOT_LEADER); start it (orchestrator serve), or point --server or ORCH_SERVER at it\n` });
      expect(asked).toBe(2);
    } finally {
      follower.close();
    }
  });

  it('authentication: no token or a bad one is exit 4 and says what to do; a viewer may read but not act (4)', async ({ expect }) => {
    const made = await cli(['tokens', 'create', '--name', 'cli-viewer', '--role', 'viewer']);
    expect(made.code).toBe(0);
    expect(made.out).toMatch(/^orch_[a-z0-9]{12}_[A-Za-z0-9_-]{43}\n$/);
    expect(made.err).toMatch(/^Created viewer token [a-z0-9]{12} for cli-viewer\. It is shown only now/);
    const viewer = made.out.trim();
    const [noToken, badToken, reads, acts, who] = await Promise.all([
      cli(['status'], { ORCH_TOKEN: '' }),
      cli(['agents', '--token', 'orch_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb']),
      cli(['status', '--json'], { ORCH_TOKEN: viewer }),
      cli(['tasks', 'submit', 'health_check'], { ORCH_TOKEN: viewer }),
      cli(['whoami', '--token', viewer]),
    ]);
    expect(noToken).toEqual({ code: 4, out: '', err: `error: the orchestrator at ${server.url} needs an API token: pass --token or set ORCH_TOKEN (ORCH_UNAUTHORIZED)\n` });
    expect(badToken).toEqual({ code: 4, out: '', err: `error: the orchestrator at ${server.url} refused the token: it is unknown, revoked or malformed (ORCH_UNAUTHORIZED)\n` });
    expect(reads.code).toBe(0);
    expect(acts).toEqual({ code: 4, out: '', err: 'error: this route needs the operator role; the token has viewer (ORCH_FORBIDDEN)\n' });
    expect(who.out).toMatch(/^cli-viewer \(viewer\), token [a-z0-9]{12} at http/);

    // Revoked through the API: refused from the next request.
    const id = /token ([a-z0-9]{12}) for/.exec(made.err)?.[1] as string;
    const listed = await cli(['tokens', 'list']);
    expect(listed.out.split('\n')[0]).toMatch(/^ID\s+NAME\s+ROLE\s+CREATED\s+BY\s+REVOKED$/);
    expect(listed.out).toMatch(new RegExp(`\\n${id}  cli-viewer  viewer  +(just now|\\d+s ago) +ADMIN_TOKEN  -\\n`));
    expect(await cli(['tokens', 'revoke', id])).toEqual({ code: 0, out: `revoked ${id} (cli-viewer, viewer)\n`, err: '' });
    const [after, again, listedJson] = await Promise.all([cli(['status'], { ORCH_TOKEN: viewer }), cli(['tokens', 'revoke', 'nosuchtoken1']), cli(['tokens', 'list', '--json'])]);
    expect(after.code).toBe(4);
    expect(again).toEqual({ code: 3, out: '', err: 'error: no API token nosuchtoken1 (ORCH_TOKEN_NOT_FOUND, DELETE /api/v1/tokens/nosuchtoken1)\n' });
    expect(json<{ tokens: { id: string; revokedAt: string | null }[] }>(listedJson).tokens.find((t) => t.id === id)?.revokedAt).toMatch(/^\d{4}-/);
  });
});

describe.concurrent('reading the fleet', () => {
  it('status, agents, devices (paged), device, rings: aligned tables and --json', async ({ expect }) => {
    const [status, statusJson, agents, agentsJson, agentsTwo, ringsOut, ringsJson, devicesAll] = await Promise.all([
      cli(['status']),
      cli(['status', '--json']),
      cli(['agents']),
      cli(['agents', '--json']),
      cli(['agents', '--limit', '2']),
      cli(['rings']),
      cli(['rings', '--json']),
      cli(['devices', '--all', '--json']),
    ]);

    const overview = json<{ devices: { total: number; online: number }; rings: { name: string; size: number }[]; tasks: Record<string, number> }>(statusJson);
    expect(overview.devices).toMatchObject({ total: 6, online: 6 });
    const lines = status.out.split('\n');
    expect(status.code).toBe(0);
    expect(lines[0]).toBe(`Orchestrator  ${server.url}  as ADMIN_TOKEN (admin)`);
    expect(lines[1]).toBe('Devices       6 total: 6 online, 0 offline (0 of them missing: silent for over 24h)');
    expect(lines[3]).toMatch(/^Tasks {9}\d+ pending, \d+ running, \d+ completed, \d+ failed, \d+ dead, \d+ cancelled, \d+ expired$/);
    const ringTable = lines.slice(5, 11);
    expect(ringTable.map((l) => l.split(/\s+/)[0])).toEqual(['RING', 'canary', 'dev', 'stage', 'prod', 'unassigned']);
    expectAligned(ringTable.slice(0, 5), ['RING', '>DEVICES', '>TARGET', '>ONLINE', '>UNHEALTHY', '>P50']);
    for (const r of overview.rings) expect(ringTable.find((l) => l.startsWith(`${r.name} `))).toMatch(new RegExp(`^${r.name} +${r.size} `));
    expect(status.out).toMatch(/\nHEALTH SCORE\n( {2}0–20| 20–40| 40–60| 60–80|80–100) {2}\[[#.]{24}\] {2}\d {2}[ \d]{2}\d%\n/);
    expect(status.out.split('HEALTH SCORE\n')[1]?.split('\n').slice(0, 5).map((l) => l.slice(0, 6))).toEqual(['  0–20', ' 20–40', ' 40–60', ' 60–80', '80–100']);

    const agentList = json<{ agents: { slave_id: string; ring_assignment: string }[]; total: number }>(agentsJson);
    expect(agentList.total).toBe(6);
    const agentLines = agents.out.trimEnd().split('\n');
    expect(agentLines[0]).toMatch(/^AGENT\s+STATUS\s+RING\s+HEALTHY\s+BATTERY\s+CPU\s+MEM\s+DISK\s+RUNNING\s+DONE\s+FAILED\s+LAST HEARD\s+TASK TYPES$/);
    expect(agentLines.slice(1).map((l) => l.split(' ')[0])).toEqual(agentList.agents.map((a) => a.slave_id));
    expectAligned(agentLines, ['AGENT', 'STATUS', 'RING', 'HEALTHY', '>BATTERY', '>CPU', '>DONE', 'LAST HEARD', 'TASK TYPES']);
    expect(agentLines.slice(1).every((l) => /\b(just now|\ds ago)\b/.test(l))).toBe(true);
    expect(agentsTwo.out.trimEnd().split('\n')).toHaveLength(3);
    expect(agentsTwo.err).toBe('2 of 6 agents shown: --all for every one, or --limit N\n');

    const ringList = json<{ rings: { name: string; size: number }[] }>(ringsJson);
    expect(ringList.rings.map((r) => r.name)).toEqual(['canary', 'dev', 'stage', 'prod']);
    const ringLines = ringsOut.out.split('\n');
    expect(ringLines[0]).toMatch(/^RING\s+SHARE\s+TARGET\s+DEVICES\s+ONLINE\s+UNHEALTHY\s+SCORE P10\s+P50\s+P90\s+UNHEALTHY OK\s+MIN-MAX$/);
    expect(ringLines.slice(1, 5).map((l) => l.replace(/ +/g, ' ').split(' ').slice(0, 2).join(' '))).toEqual(['canary 5%', 'dev 15%', 'stage 30%', 'prod 50%']);
    expectAligned(ringLines.slice(0, 5), ['RING', '>SHARE', '>TARGET', '>DEVICES', 'UNHEALTHY OK']);
    expect(ringsOut.out).toContain('\nPolicy   health, hysteresis 5 points, dwell 10m\n');

    // Paging through the devices: two by two, following the cursor the hint names, matches --all.
    const every = json<{ devices: { id: string; ring: string }[]; nextCursor: string | null }>(devicesAll);
    expect(every.devices).toHaveLength(6);
    expect(every.nextCursor).toBeNull();
    const seen: string[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 3; page++) {
      const r = await cli(['devices', '--limit', '2', ...(cursor === null ? [] : ['--cursor', cursor])]);
      const rows = r.out.trimEnd().split('\n');
      expect(rows[0]).toMatch(/^DEVICE\s+RING\s+STATUS\s+SCORE\s+HEALTHY\s+SITE\s+DEPARTMENT\s+MODEL\s+OS\s+TAGS$/);
      expectAligned(rows, ['DEVICE', 'RING', 'STATUS', '>SCORE', 'HEALTHY']);
      seen.push(...rows.slice(1).map((l) => l.split(' ')[0] as string));
      const hint = /more may follow: --all for every one, or orchestrator devices \(same filters\) --cursor (\S+)\n$/.exec(r.err);
      cursor = hint?.[1] ?? null;
      if (page < 2) expect(cursor).not.toBeNull();
    }
    expect(seen).toEqual(every.devices.map((d) => d.id));

    const first = every.devices[0] as { id: string; ring: string };
    const [inRing, device, deviceJson, missing, badStatus] = await Promise.all([
      cli(['devices', '--ring', first.ring, '--json']),
      cli(['device', first.id]),
      cli(['device', first.id, '--json']),
      cli(['device', 'no-such-device']),
      cli(['devices', '--status', 'asleep']),
    ]);
    expect(json<{ devices: { ring: string }[] }>(inRing).devices.every((d) => d.ring === first.ring)).toBe(true);
    expect(json<{ id: string }>(deviceJson).id).toBe(first.id);
    // Its ring may have changed since the listing (a rebalance runs beside this test).
    expect(device.out).toMatch(new RegExp(`^Device {6}${first.id}\\nStatus {6}online\\nRing {8}(canary|dev|stage|prod)`));
    expect(device.out).toMatch(/\nFACTOR\s+VALUE\s+WEIGHT\s+BADNESS\s+POINTS\nbattery /);
    expect(device.out).toMatch(/\nRing moves \(last \d of \d\):\n {2}WHEN\s+FROM\s+TO\s+REASON\n {2}\S+ ago\s+unassigned\s+\w+\s+first heartbeat/);
    expect(missing).toEqual({ code: 3, out: '', err: 'error: device no-such-device not found (ORCH_DEVICE_NOT_FOUND, GET /api/v1/devices/no-such-device)\n' });
    expect(badStatus).toMatchObject({ code: 2, err: 'error: --status: must be one of online, offline, decommissioned (got "asleep")\n' });
  });

  it('rings set FILE stores a configuration (invalid: exit 2 with every problem), rings rebalance', async ({ expect }) => {
    const dir = tempDir();
    const good = join(dir, 'rings.json');
    writeFileSync(good, JSON.stringify({ rings: [{ name: 'canary', share: 0.05 }, { name: 'dev', share: 0.15 }, { name: 'stage', share: 0.3 }, { name: 'prod', share: 0.5 }], hysteresis: 6 }));
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ rings: [{ name: 'canary', share: 0.5 }, { name: 'Prod', share: 0.2 }] }));
    const notJson = join(dir, 'not.json');
    writeFileSync(notJson, '{"rings": [');
    const [set, refused, unreadable, viewerless] = await Promise.all([cli(['rings', 'set', good]), cli(['rings', 'set', bad]), cli(['rings', 'set', notJson]), cli(['rings', 'rebalance', '--json'])]);
    expect(set.code).toBe(0);
    expect(set.out).toMatch(/^Ring configuration stored; \d+ devices? moved\.\n\nRING\s+SHARE/);
    expect(set.out).toContain('\nPolicy   health, hysteresis 6 points, dwell 10m\n');
    expect(refused.code).toBe(2);
    expect(refused.out).toBe('');
    expect(refused.err).toMatch(/^error: invalid ring configuration \(ORCH_VALIDATION\)\n( {2}\S.*\n)+$/);
    expect(refused.err).toContain('  rings[1].name: ');
    expect(unreadable).toMatchObject({ code: 2, err: expect.stringMatching(/^error: \S+not\.json: not JSON \(/) as string });
    expect(json<{ moves: number }>(viewerless).moves).toBeGreaterThanOrEqual(0);
    const rebalanced = await cli(['rings', 'rebalance']);
    expect(rebalanced.out).toMatch(/^Rebalanced: \d+ devices? moved \(planned in [\d.]+ ms, [\d.]+ ms in all\)\.\n$/);
  });
});

describe.concurrent('tasks', () => {
  it('submit --watch follows a task to its result (exit 0), or to its failure (exit 1); show, list, cancel, retry; errors', async ({ expect }) => {
    const [ok, failed, batch, later] = await Promise.all([
      cli(['tasks', 'submit', 'process_data', '--params', '{"data": [3, 1, 4]}', '--priority', '5', '--watch']),
      cli(['tasks', 'submit', 'process_data', '--params', '{"data": ["x"]}', '--watch']),
      cli(['tasks', 'submit', 'health_check', '--count', '3', '--watch']),
      cli(['tasks', 'submit', 'deploy', '--run-after', new Date(Date.now() + 3_600_000).toISOString(), '--json']),
    ]);
    expect(ok.code).toBe(0);
    const okLines = ok.out.trimEnd().split('\n');
    const id = (okLines[0] as string).split(' ')[0] as string;
    expect(okLines[0]).toBe(`${id}  process_data  priority 5  pending`);
    expect(okLines.at(-2)).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d  ${id}  process_data {2}completed on slave-[0-9a-f]{8}$`));
    expect(okLines.at(-1)).toBe('result: {"count":3,"sum":8,"mean":2.6666666666666665,"min":1,"max":4,"median":3}');
    expect(failed.code).toBe(1);
    expect(failed.out).toMatch(/ process_data {2}failed: parameters\.data must be an array of finite numbers\n$/);
    const failedId = failed.out.split(' ')[0] as string;
    expect(batch.code).toBe(0);
    expect(batch.out).toMatch(/\[#{20}\] 3\/3 ended: 3 completed\n3 of 3 tasks completed\n$/);
    const pending = json<{ id: string; status: string; runAfter: string }>(later);
    expect(pending.status).toBe('pending');

    const [show, showJson, list, listJson, cancelled, retried, unknownType, missing] = await Promise.all([
      cli(['tasks', 'show', id]),
      cli(['tasks', 'show', id, '--json']),
      cli(['tasks', 'list', '--status', 'completed', '--limit', '4']),
      cli(['tasks', 'list', '--type', 'process_data', '--all', '--json']),
      cli(['tasks', 'cancel', pending.id]),
      cli(['tasks', 'retry', failedId, '--json']),
      cli(['tasks', 'submit', 'make_coffee']),
      cli(['tasks', 'show', 'no-such-task']),
    ]);
    expect(show.out).toMatch(new RegExp(`^Task +${id}\\nType +process_data\\nStatus +completed\\nPriority +5\\nTarget +any capable agent\\n`));
    expect(show.out).toMatch(/\nATTEMPT\s+AGENT\s+STARTED\s+TOOK\s+OUTCOME\s+ERROR\n +1 {2}slave-\w+ .* succeeded\n\nResult\n\{\n {2}"count": 3,/);
    expect(json<{ id: string; attemptHistory: unknown[] }>(showJson).attemptHistory).toHaveLength(1);
    const listLines = list.out.trimEnd().split('\n');
    expect(listLines[0]).toMatch(/^TASK\s+TYPE\s+STATUS\s+PRIORITY\s+AGENT\s+ATTEMPTS\s+CREATED\s+TOOK\s+ERROR$/);
    expect(listLines).toHaveLength(5);
    expectAligned(listLines, ['TASK', 'TYPE', 'STATUS', '>PRIORITY', 'AGENT', '>ATTEMPTS', 'CREATED']);
    expect(list.err).toMatch(/^4 tasks shown; more may follow: --all for every one, or orchestrator tasks list \(same filters\) --cursor \d+\n$/);
    expect(json<{ tasks: { id: string }[] }>(listJson).tasks.map((t) => t.id)).toEqual(expect.arrayContaining([id, failedId]));
    expect(cancelled).toEqual({ code: 0, out: `cancelled ${pending.id} (deploy): now cancelled\n`, err: '' });
    expect(json<{ status: string }>(retried).status).toBe('pending');
    expect(unknownType).toMatchObject({ code: 2, err: 'error: task type must be one of process_data, health_check, deploy, analyze_risk, monitor (got "make_coffee")\n' });
    expect(missing).toEqual({ code: 3, out: '', err: 'error: task not found (ORCH_TASK_NOT_FOUND, GET /api/v1/tasks/no-such-task)\n' });
    // Ended already: 409, exit 1.
    const [cancelAgain, retryDone] = await Promise.all([cli(['tasks', 'cancel', pending.id]), cli(['tasks', 'retry', id])]);
    expect(cancelAgain.code).toBe(1);
    expect(cancelAgain.err).toMatch(/^error: .*\(ORCH_TASK_STATE\)\n$/);
    expect(retryDone.code).toBe(1);
  });

  it('tasks watch follows tasks on the event stream as they start and end; without ids it prints every task event', async ({ expect }) => {
    // Every task event, from before the tasks exist.
    const tail = start(['tasks', 'watch']);
    await expect.poll(() => tail.err(), { timeout: 15_000 }).toBe('following every task event (Ctrl-C to stop)\n');
    // An agent kept busy by a long task; a second task for it waits until that one is cancelled, which is done
    // only once the watches are following: its start and end can only reach them on the stream.
    const agents = json<{ agents: { slave_id: string; capabilities: string[] }[] }>(await cli(['agents', '--capability', 'monitor', '--json'])).agents;
    const agent = (agents[0] as { slave_id: string }).slave_id;
    const blocker = json<{ id: string }>(await cli(['tasks', 'submit', 'monitor', '--agent', agent, '--params', '{"durationSec": 120, "intervalSec": 60}', '--json']));
    await expect.poll(async () => json<{ status: string }>(await cli(['tasks', 'show', blocker.id, '--json'])).status, { timeout: 15_000, interval: 200 }).toBe('in_progress');
    const made = json<{ id: string }>(await cli(['tasks', 'submit', 'monitor', '--agent', agent, '--params', '{"durationSec": 0}', '--json']));
    const watch = start(['tasks', 'watch', made.id]);
    const watchJson = start(['tasks', 'watch', made.id, '--json']);
    await expect.poll(() => watch.out(), { timeout: 15_000 }).toMatch(/ monitor {7}pending\n/);
    await expect.poll(() => watchJson.out(), { timeout: 15_000 }).toMatch(/^\{"kind":"state".*"status":"pending"/);
    expect(await cli(['tasks', 'cancel', blocker.id])).toMatchObject({ code: 0, out: `cancelled ${blocker.id} (monitor): now cancelled\n` });

    expect(await watch.exited).toBe(0);
    const line = (words: string): RegExp => new RegExp(`^\\d\\d:\\d\\d:\\d\\d  ${made.id}  monitor {7}${words}$`);
    const lines = watch.out().trimEnd().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(line('pending'));
    expect(lines[1]).toMatch(line(`started on ${agent} \\(attempt 1\\)`));
    expect(lines[2]).toMatch(line(`completed on ${agent}`));
    expect(lines[3]).toMatch(/^result: \{"durationSec":0,"intervalSec":1,"samples":\[\{.*\}\],"average":\{/);
    expect(await watchJson.exited).toBe(0);
    const events = jsonLines({ code: 0, out: watchJson.out(), err: '' });
    expect(events.map((e) => e.kind)).toEqual(['state', 'task.started', 'task.completed', 'end']);
    expect(events[2]).toMatchObject({ kind: 'task.completed', task: { id: made.id, status: 'completed', agentId: agent } });
    expect(events.at(-1)).toEqual({ kind: 'end', tasks: { [made.id]: 'completed' }, exitCode: 0 });

    // Ctrl-C ends a watch without ids: exit 0.
    await expect.poll(() => tail.out(), { timeout: 10_000 }).toMatch(new RegExp(`  ${made.id}  monitor {7}completed on `));
    tail.child.kill('SIGINT');
    expect(await tail.exited).toBe(0);
    const words = (id: string): string[] =>
      tail
        .out()
        .split('\n')
        .filter((l) => l.includes(id))
        .map((l) => l.replace(/^\d\d:\d\d:\d\d {2}\S+ {2}monitor {7}/, ''));
    expect(words(blocker.id)).toEqual(['submitted (priority 0)', `started on ${agent} (attempt 1)`, expect.stringMatching(/^cancelled/) as string]);
    expect(words(made.id)).toEqual(['submitted (priority 0)', `started on ${agent} (attempt 1)`, `completed on ${agent}`]);
    // An unknown id: 3, before waiting for anything.
    expect(await cli(['tasks', 'watch', 'no-such-task'])).toMatchObject({ code: 3, err: 'error: task not found (ORCH_TASK_NOT_FOUND, GET /api/v1/tasks/no-such-task)\n' });
  });
});

// One deployment at a time (concurrently with the other groups): both use the whole fleet.
describe.concurrent('deployments', () => {
  it.sequential('deploy watch follows a real deployment ring by ring to completion (exit 0): progress per ring and gate results as they happen', async ({ expect }) => {
    const file = planFile('agent 2.5', ['canary', 'dev', 'stage', 'prod'].map(fast));
    const created = await cli(['deploy', 'create', file]);
    expect(created.code).toBe(0);
    const m = /^created (dep-[0-9a-f]{8}) "agent 2\.5": health_check \{\} over canary → dev → stage → prod; scheduled\n$/.exec(created.out);
    expect(m).not.toBeNull();
    expect(created.err).toBe(`start it: orchestrator deploy start ${m?.[1]}\n`);
    const id = m?.[1] as string;

    const watch = start(['deploy', 'watch', id]);
    const watchJson = start(['deploy', 'watch', id, '--json']);
    await expect.poll(() => watch.out(), { timeout: 10_000 }).toContain(`"agent 2.5": scheduled\n`);
    await expect.poll(() => watchJson.out(), { timeout: 10_000 }).toContain('"type":"progress"');
    expect(await cli(['deploy', 'start', id])).toMatchObject({ code: 0, out: expect.stringMatching(new RegExp(`^${id} is in_progress, ring (canary|dev) `)) as string });
    expect(await watch.exited).toBe(0);
    const out = watch.out();
    const lines = out.trimEnd().split('\n');
    // Each ring's bar moves as its devices finish, and each gate's verdict is printed as it is given, in order.
    expect(lines[0]).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d  ${id} "agent 2\\.5": scheduled$`));
    expect(lines.slice(1, 5).map((l) => l.trim().split(/\s+/).slice(0, 3).join(' '))).toEqual(['canary 1/4 [................]', 'dev 2/4 [................]', 'stage 3/4 [................]', 'prod 4/4 [................]']);
    const gates = lines.filter((l) => /^\d\d:\d\d:\d\d {2}gate /.test(l)).map((l) => l.slice(10).split(':').slice(0, 2).join(':'));
    expect(gates.filter((g) => !g.endsWith(': wait'))).toEqual(['gate canary: skip', 'gate dev: pass', 'gate stage: pass', 'gate prod: pass']);
    expect(out).toContain('gate canary: skip: ring canary has no devices: skipped at once, without a soak\n');
    for (const ring of ['dev', 'stage', 'prod']) {
      const mine = lines.filter((l) => l.startsWith(`  ${ring} `));
      expect(mine[0]).toMatch(/\[\.{16}\] {2}waiting$/);
      expect(mine.at(-1)).toMatch(/\[#{16}\] {2}100% {2}(\d)\/\1: .*gate pass$/);
      // Seen before its gate passed: a line as its devices were dispatched or ran.
      expect(mine.some((l) => /\[[#.]{16}\] +\d+% .*(queued|running|gate wait|ok(?!.*gate pass))/.test(l))).toBe(true);
    }
    expect(lines.at(-1)).toMatch(/^completed: (all 6 devices updated|\d of 6 devices updated; not updated: \d skipped \(the agent does not offer task type health_check: \d\))$/);
    expect(await watchJson.exited).toBe(0);
    const events = jsonLines({ code: 0, out: watchJson.out(), err: '' });
    expect(events.filter((e) => e.type === 'gate' && e.verdict !== 'wait').map((e) => `${String(e.ring)} ${String(e.verdict)}`)).toEqual(['canary skip', 'dev pass', 'stage pass', 'prod pass']);
    expect(events.filter((e) => e.type === 'status').map((e) => e.status)).toEqual(expect.arrayContaining(['scheduled', 'in_progress', 'completed']));
    expect(events.at(-1)).toMatchObject({ type: 'end', deploymentId: id, status: 'completed', exitCode: 0, outcome: { devices: 6 } });

    const [show, showJson, list, listJson, executions, again] = await Promise.all([
      cli(['deploy', 'show', id]),
      cli(['deploy', 'show', id, '--json']),
      cli(['deploy', 'list']),
      cli(['deploy', 'list', '--status', 'completed', '--json']),
      cli(['deploy', 'show', id, '--executions', '--limit', '2']),
      cli(['deploy', 'watch', id]),
    ]);
    expect(show.out).toMatch(new RegExp(`^Deployment  ${id} "agent 2\\.5" \\(rollout\\)\\nStatus      completed\\nPayload     health_check \\{\\}; automatic rollback off\\n`));
    expect(show.out).toMatch(/\n\ncanary {2}1\/4 {2}\[#{16}\] {2}no devices {2}gate skip\ndev {5}2\/4 {2}\[#{16}\] {2}100% {2}\d\/\d: .*gate pass\n/);
    expect(show.out).toMatch(/\nGate results \(\d+\)\n {2}\d\d:\d\d:\d\d {2}gate canary: skip: /);
    expect(json<{ id: string; status: string; evaluations: unknown[] }>(showJson)).toMatchObject({ id, status: 'completed' });
    const listLines = list.out.trimEnd().split('\n');
    expect(listLines[0]).toMatch(/^DEPLOYMENT\s+NAME\s+KIND\s+STATUS\s+RING\s+CREATED\s+ENDED\s+OUTCOME$/);
    expect(listLines.find((l) => l.startsWith(id))).toMatch(/ agent 2\.5 +rollout +completed +- +\S+ ago +\S+ ago +(all 6 devices updated|\d of 6 devices updated)/);
    expect(json<{ deployments: { id: string }[] }>(listJson).deployments.map((d) => d.id)).toContain(id);
    expect(executions.out).toMatch(/\nDEVICE\s+RING\s+STATE\s+STARTED\s+CPU Δ\s+MEM Δ\s+DRAIN Δ\s+REASON\n(slave-\w+\s+\w+\s+(succeeded|skipped) .*\n){2}$/);
    expect(executions.err).toBe('2 of 6 executions shown: --limit N for more\n');
    // Watching a deployment that has ended: its outcome at once.
    expect(again.code).toBe(0);
    expect(again.out.trimEnd().split('\n').at(-1)).toMatch(/^completed: /);
  });

  it.sequential('deploy watch exits 1 when the deployment halts; acknowledge, pause, resume, promote, rollback, abort; advise on it', async ({ expect }) => {
    const file = planFile('held back', [{ ring: 'prod', rate: { maxPerMinute: 6000 }, soakMs: 600_000, gate: { minDevices: 1, minJudged: 0 } }]);
    const created = json<{ id: string; status: string }>(await cli(['deploy', 'create', file, '--start', '--json']));
    expect(created.status).toBe('in_progress');
    const id = created.id;
    const watch = start(['deploy', 'watch', id]);
    await expect.poll(() => watch.out(), { timeout: 10_000 }).toMatch(/ {2}prod {2}1\/1 /);
    expect(await cli(['deploy', 'halt', id, '--reason', 'the vendor recalled this build'])).toEqual({
      code: 0,
      out: `${id} is halted: halted at ring prod by an operator: the vendor recalled this build\n`,
      err: '',
    });
    expect(await watch.exited).toBe(1);
    expect(watch.out()).toMatch(new RegExp(`\\d\\d:\\d\\d:\\d\\d  gate prod: override: ring prod: halted at ring prod by an operator: the vendor recalled this build\\n`));
    expect(watch.out()).toMatch(new RegExp(`\\d\\d:\\d\\d:\\d\\d  ${id} "held back": halted: halted at ring prod by an operator: the vendor recalled this build\\n`));
    expect(watch.out()).toMatch(/\nhalted: halted at ring prod by an operator: the vendor recalled this build\nadvice: .+ \(orchestrator advise show adv-[0-9a-f-]+\)\n$/);

    const act = async (verb: string, expected: RegExp): Promise<void> => {
      const r = await cli(['deploy', verb, id]);
      expect({ verb, code: r.code, err: r.err }).toEqual({ verb, code: 0, err: '' });
      expect(r.out).toMatch(expected);
    };
    await act('acknowledge', new RegExp(`^${id} is in_progress, ring prod `));
    await act('pause', new RegExp(`^${id} is paused \\(operator\\), ring prod\\n$`));
    await act('resume', new RegExp(`^${id} is in_progress, ring prod `));
    // The plan's only stage: promoting it completes the deployment.
    await act('promote', new RegExp(`^${id} is completed: `));
    const refused = await cli(['deploy', 'pause', id]);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^error: .*\(ORCH_DEPLOYMENT_STATE\)\n$/);

    const [advice, adviceJson] = await Promise.all([cli(['advise', '--deployment', id]), cli(['advise', '--json'])]);
    expect(advice.code).toBe(0);
    expect(advice.out).toMatch(new RegExp(`^Advice +adv-[0-9a-f-]+ on the deployment ${id} \\(request, just now\\)\\nDecision +(continue|pause|halt|rollback) \\(confidence \\d+%\\)\\nRisk +\\w+\\nSummary +.+\\nWritten by +analyser, in \\d+ ms\\nApplied +no\\n`));
    const fleet = json<{ id: string; subject: { fleet: boolean }; moves: unknown[] }>(adviceJson);
    expect(fleet.subject).toEqual({ fleet: true });
    const [listed, shown, applied, missing] = await Promise.all([
      cli(['advise', 'list', '--subject', `deployment:${id}`, '--json']),
      cli(['advise', 'show', fleet.id]),
      cli(['advise', 'apply', fleet.id]),
      cli(['advise', 'show', 'adv-none']),
    ]);
    // The halt's explanation and the advice asked for.
    expect(json<{ advice: { trigger: string }[] }>(listed).advice.map((a) => a.trigger).sort()).toEqual(['halt', 'request']);
    expect(shown.out).toMatch(new RegExp(`^Advice +${fleet.id} on the fleet `));
    expect(shown.out).toMatch(/\nRING\s+RISK\s+REASONS\ncanary /);
    expect(applied).toMatchObject({ code: 0, out: expect.stringMatching(new RegExp(`^applied ${fleet.id}: `)) as string });
    expect(missing.code).toBe(3);
    expect((await cli(['advise', 'apply', fleet.id])).code).toBe(1);

    await act('rollback', new RegExp(`^${id} is rolled_back`));
    const scheduled = json<{ id: string }>(await cli(['deploy', 'create', file, '--json']));
    expect(await cli(['deploy', 'abort', scheduled.id])).toMatchObject({ code: 0, out: expect.stringMatching(new RegExp(`^${scheduled.id} is cancelled: `)) as string, err: '' });
    const [watchCancelled, unknown, invalid] = await Promise.all([
      cli(['deploy', 'watch', scheduled.id]),
      cli(['deploy', 'start', 'dep-nope']),
      cli(['deploy', 'create', planFile('bad', [{ ring: 'moon' }])]),
    ]);
    expect(watchCancelled.code).toBe(1);
    expect(watchCancelled.out.trimEnd().split('\n').at(-1)).toBe('cancelled: no device was in any ring');
    expect(unknown).toEqual({ code: 3, out: '', err: 'error: deployment dep-nope not found (ORCH_DEPLOYMENT_NOT_FOUND, POST /api/v1/deployments/dep-nope/start)\n' });
    expect(invalid.code).toBe(2);
    expect(invalid.err).toBe('error: invalid deployment (ORCH_VALIDATION)\n  plan.stages[0].ring: must name one of the rings (canary, dev, stage, prod)\n');
  });
});

describe.concurrent('a watch across a restart', () => {
  it('deploy watch outlives its orchestrator\'s restart: it reconnects, reads the deployment again and follows it to its halt', async ({ expect }) => {
    // An orchestrator of its own (the shared one keeps serving the other tests), open on loopback, restarted on its port.
    const port = await closedPort();
    const env = { PORT: String(port), DATA_DIR: tempDir(), DEFAULT_AGENTS: '1', HEARTBEAT_INTERVAL: '250ms', AGENT_TIMEOUT: '3s' };
    let own = await startServerProcess(env);
    const local = { ORCH_SERVER: own.url, ORCH_TOKEN: '' };
    try {
      await expect.poll(async () => (await cli(['devices', '--ring', 'prod', '--json'], local)).out, { timeout: 10_000, interval: 200 }).toMatch(/"ring":"prod"/);
      const file = planFile('across a restart', [{ ring: 'prod', rate: { maxPerMinute: 6000 }, soakMs: 600_000, gate: { minDevices: 1, minJudged: 0 } }]);
      const id = json<{ id: string }>(await cli(['deploy', 'create', file, '--start', '--json'], local)).id;
      const watch = start(['deploy', 'watch', id], local);
      await expect.poll(() => watch.out(), { timeout: 10_000 }).toMatch(/ {2}prod {2}1\/1 /);
      own.child.kill('SIGTERM');
      expect(await own.exited).toBe(0);
      // Down for longer than the watch's reads are apart (5 s when not on a terminal): some of them fail meanwhile.
      await new Promise((r) => setTimeout(r, 6000));
      own = await startServerProcess(env);
      expect(own.url).toBe(local.ORCH_SERVER);
      // Once it is back, a halt reaches the watch.
      await new Promise((r) => setTimeout(r, 1500));
      expect((await cli(['deploy', 'halt', id, '--reason', 'after a restart'], local)).code).toBe(0);
      expect(await watch.exited).toBe(1);
      expect(watch.err()).toBe('');
      expect(watch.out()).toMatch(new RegExp(`\\d\\d:\\d\\d:\\d\\d  ${id} "across a restart": halted: halted at ring prod by an operator: after a restart\\n`));
      expect(watch.out().trimEnd().split('\n').at(-2)).toBe('halted: halted at ring prod by an operator: after a restart');
    } finally {
      own.child.kill('SIGKILL');
      await own.exited;
    }
    // Two starts of a server, 7.5 s of waiting on purpose and a watch: more than the default 30 s on a loaded
    // machine (CI ran it out once, two test files at a time).
  }, 90_000);
});

describe.concurrent('security through the API, and the local commands', () => {
  it('enrollment-tokens create, list, revoke; audit', async ({ expect }) => {
    const made = await cli(['enrollment-tokens', 'create', '--name', 'berlin-laptops', '--max-uses', '2', '--expires-in', '1h', '--require-approval']);
    expect(made.code).toBe(0);
    expect(made.out).toMatch(/^enr_\S+\n$/);
    const id = /^Created enrollment token (\S+) \(berlin-laptops, 2 uses, until \S+, approval required\)/.exec(made.err)?.[1] as string;
    expect(id).toBeDefined();
    const listed = await cli(['enrollment-tokens', 'list']);
    expect(listed.out.split('\n')[0]).toMatch(/^ID\s+NAME\s+USES\s+EXPIRES\s+APPROVAL\s+CREATED\s+BY\s+REVOKED$/);
    expect(listed.out).toMatch(new RegExp(`\\n${id}  berlin-laptops  +0/2  in (59m|1h) +required  .*ADMIN_TOKEN  -\\n`));
    expect(await cli(['enrollment-tokens', 'revoke', id])).toEqual({ code: 0, out: `revoked ${id} (berlin-laptops)\n`, err: '' });
    const audit = await cli(['audit', '--action', 'DELETE /api/v1/enrollment-tokens/:id']);
    expect(audit.out.split('\n')[0]).toMatch(/^WHEN\s+ACTOR\s+ROLE\s+ACTION\s+TARGET\s+OUTCOME\s+FROM$/);
    expect(audit.out).toMatch(new RegExp(`\\n\\S+( ago| now)\\s+ADMIN_TOKEN  admin  DELETE /api/v1/enrollment-tokens/:id  ${id}  ok 200 +127\\.0\\.0\\.1\\n`));
  });

  it('token create|list|revoke and backup open an existing database only (exit 2, saying where they looked), and are audited as cli:<user>', async ({ expect }) => {
    const fresh = join(tempDir(), 'not-here');
    const [refusedCreate, refusedList, refusedBackup] = await Promise.all([
      cli(['token', 'create', '--role', 'admin', '--name', 'ops', '--data-dir', fresh]),
      cli(['token', 'list'], { DATA_DIR: fresh }),
      cli(['backup', '--data-dir', fresh, '--to', join(tempDir(), 'b.db')]),
    ]);
    const where = `at ${join(fresh, 'orchestrator.db')}`;
    const how = "Point this command at the orchestrator's data: --data-dir DIR or DATA_DIR for its SQLite folder, DATABASE_URL for PostgreSQL";
    expect(refusedCreate).toEqual({ code: 2, out: '', err: `Database error: no orchestrator database ${where} (--data-dir ${fresh}). ${how}; or add --init to make a new database, for an orchestrator that has not started yet\n` });
    expect(refusedList).toEqual({ code: 2, out: '', err: `Database error: no orchestrator database ${where} (DATA_DIR=${fresh}). ${how}\n` });
    expect(refusedBackup).toEqual({ code: 2, out: '', err: `Database error: no orchestrator database ${where} (--data-dir ${fresh}). ${how}\n` });
    expect(existsSync(fresh)).toBe(false);

    // Beside the running orchestrator: the token works at once; its creation and revocation are in the audit log.
    const made = await cli(['token', 'create', '--role', 'operator', '--name', 'from-cli', '--data-dir', dataDir]);
    expect(made.code).toBe(0);
    const token = made.out.trim();
    const id = token.slice(5, 17);
    expect(await cli(['whoami', '--token', token])).toMatchObject({ code: 0, out: expect.stringMatching(/^from-cli \(operator\), token /) as string });
    const listed = await cli(['token', 'list', '--data-dir', dataDir]);
    expect(listed.out).toMatch(new RegExp(`\\n${id}  from-cli +operator +(just now|\\d+s ago) +${USER} +-\\n`));
    expectAligned(listed.out.trimEnd().split('\n'), ['ID', 'NAME', 'ROLE', 'CREATED', 'BY', 'REVOKED']);
    expect(await cli(['token', 'revoke', id, '--data-dir', dataDir])).toEqual({ code: 0, out: `revoked ${id}\n`, err: '' });
    expect(await cli(['token', 'revoke', 'nosuchtoken1', '--data-dir', dataDir])).toEqual({ code: 3, out: '', err: 'no API token nosuchtoken1\n' });
    expect((await cli(['whoami', '--token', token])).code).toBe(4);
    const backupFile = join(tempDir(), 'backup.db');
    const backup = await cli(['backup', '--data-dir', dataDir, '--to', backupFile]);
    expect(backup.code).toBe(0);
    expect(backup.out).toMatch(/^Backed up .* quick_check ok\n$/);

    const audit = json<{ entries: { actor: string; role: string; action: string; target: string; outcome: string; status: number }[] }>(await cli(['audit', '--actor', USER, '--json']));
    expect(audit.entries.map((e) => [e.action, e.target, e.outcome, e.status])).toEqual([
      ['CLI token create', id, 'ok', 201],
      ['CLI token revoke', id, 'ok', 200],
      ['CLI token revoke', 'nosuchtoken1', 'refused', 404],
      ['CLI backup', backupFile, 'ok', 201],
    ]);
    expect(audit.entries.every((e) => e.actor === USER && e.role === 'admin')).toBe(true);

    // --init makes a new database on purpose (a token before the first start).
    const init = await cli(['token', 'create', '--init', '--role', 'admin', '--name', 'first', '--data-dir', fresh, '--json']);
    expect(init.err).toBe(`Created a new database ${where} (--data-dir ${fresh}).\n`);
    expect(JSON.parse(init.out)).toMatchObject({ name: 'first', role: 'admin', token: expect.stringMatching(/^orch_/) as string });
    expect(existsSync(join(fresh, 'orchestrator.db'))).toBe(true);
  });

  it('on PostgreSQL (DATABASE_URL) too: no schema is made by mistake; --init makes it; the actions are audited there', async ({ expect }) => {
    const schema = testSchema('cli');
    const url = `${TEST_DATABASE_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
    const shown = url.replace(/^postgres:\/\/[^@]*@/, 'postgres://postgres@');
    const refused = await cli(['token', 'create', '--role', 'admin', '--name', 'pg'], { DATABASE_URL: url });
    expect(refused.code).toBe(2);
    expect(refused.err).toMatch(/^Database error: no orchestrator's schema in the PostgreSQL database at postgres:\/\/\S+ \(DATABASE_URL\)\. Point this command /);
    expect(refused.err).toContain(schema);
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      const schemas = async (): Promise<number> => Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM information_schema.schemata WHERE schema_name = $1', [schema])).rows[0]?.n);
      expect(await schemas()).toBe(0);
      const made = await cli(['token', 'create', '--init', '--role', 'admin', '--name', 'pg', '--json'], { DATABASE_URL: url });
      expect(made.code).toBe(0);
      expect(made.err).toBe(`Created a new orchestrator's schema in the PostgreSQL database at ${shown} (DATABASE_URL).\n`);
      const id = (JSON.parse(made.out) as { id: string }).id;
      expect(await schemas()).toBe(1);
      expect(await cli(['token', 'revoke', id], { DATABASE_URL: url })).toEqual({ code: 0, out: `revoked ${id}\n`, err: '' });
      const audit = await client.query<{ actor: string; action: string; target: string; status: number }>(`SELECT actor, action, target, status FROM ${pg.escapeIdentifier(schema)}.audit_log ORDER BY id`);
      expect(audit.rows).toEqual([
        { actor: USER, action: 'CLI token create', target: id, status: 201 },
        { actor: USER, action: 'CLI token revoke', target: id, status: 200 },
      ]);
    } finally {
      await client.end();
    }
  });
});

// Last, once everything else has ended: it changes the fleet.
describe('changing the fleet', () => {
  it('agents approve lets a pending agent work; agents remove decommissions it (unknown: 3)', async () => {
    // An agent enrolled with a token that holds it for approval (the agent protocol's enroll, as an agent sends it).
    const enrollToken = (await cli(['enrollment-tokens', 'create', '--name', 'held', '--require-approval'])).out.trim();
    const res = await fetch(`${server.url}/api/v1/agent/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: enrollToken, hostname: 'laptop-7', capabilities: ['health_check'], metrics: { battery: 70, charging: false, cpu: 12.5, memory: 40, disk: 55 } }),
    });
    expect(res.status).toBe(200);
    const { agentId } = (await res.json()) as { agentId: string };
    const pending = await cli(['agents', '--approval', 'pending']);
    const lines = pending.out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^AGENT\s+STATUS\s+APPROVAL\s+RING\s+HEALTHY\s+BATTERY /);
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 3).join(' '))).toEqual([`${agentId} idle pending`]);
    expect(await cli(['agents', 'approve', agentId])).toEqual({ code: 0, out: `approved ${agentId}: it now takes tasks\n`, err: '' });
    expect(await cli(['agents', '--approval', 'pending'])).toEqual({ code: 0, out: '', err: 'no agents match\n' });

    const before = json<{ agents: { slave_id: string }[] }>(await cli(['agents', '--json'])).agents;
    expect(before.map((a) => a.slave_id)).toContain(agentId);
    expect(await cli(['agents', 'remove', agentId])).toEqual({ code: 0, out: `${agentId} decommissioned\n`, err: '' });
    expect(await cli(['agents', 'remove', agentId])).toMatchObject({ code: 3, out: '' });
    expect(await cli(['agents', 'approve', 'no-such-agent'])).toMatchObject({ code: 3, out: '' });
    expect(json<{ agents: { slave_id: string }[] }>(await cli(['agents', '--json'])).agents.map((a) => a.slave_id)).toEqual(before.map((a) => a.slave_id).filter((id) => id !== agentId));
  });
});
