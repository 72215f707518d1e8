/**
 * `npm run test:container`: builds the orchestrator's image (./Dockerfile) and runs ./compose.yaml with
 * podman on this machine, then checks them from outside, as an operator would:
 *
 *   1. The images (test/container/images.sh), each reused while podman's store holds it: local stand-ins
 *      for Debian, node:22-bookworm-slim and postgres (no registry is needed), and the app's image,
 *      `podman build --build-arg BASE=<the local Node image>` with its layers cached between runs.
 *   2. The image's settings (a non-root user, HOST=0.0.0.0, EXPOSE 8000, the HEALTHCHECK) and, without
 *      ADMIN_TOKEN, its refusal to start.
 *   3. One container on SQLite (a volume, ADMIN_TOKEN): ready, 401 without the token, healthy
 *      (`podman healthcheck run`), Node as PID 1 under the image's user; `podman stop` ends it with
 *      exit 0 and leaves only orchestrator.db in the volume (the write-ahead log folded in).
 *   4. compose.yaml with podman-compose (a project of its own, the local images through its variables):
 *      PostgreSQL, then the leader, then the follower (podman-compose 1.0.3 does not wait for
 *      `depends_on` conditions: created with --no-start, then started in order, each polled until ready).
 *      The seed's curl examples through the follower, with the token. Then `podman stop` of the leader:
 *      the follower leads (timed), still has the task submitted before, runs a new one; the old leader,
 *      started again, follows.
 *   5. Everything the run made (containers and their anonymous volumes, volumes, the network) is removed
 *      at the end, also on failure or Ctrl-C; the images stay for the next run. It prints the time of each part and the image's size.
 *
 * Needs, as root: podman, runc, podman-compose and debootstrap (`apt-get install podman runc
 * debootstrap podman-compose`; .ci/run installs them), Debian's archive and the npm registry. It writes
 * its own CONTAINERS_CONF (runc instead of crun, file limits within `ulimit -Hn`) and uses it for every
 * podman call. The first failed check ends it with exit 1 and one line saying what failed, after the
 * last commands' output and the containers' logs.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HERE = join(ROOT, 'test', 'container');
/** Set by images(): the app's image (test/container/images.sh names it). */
let APP_IMAGE = '';
/** The image's user (Dockerfile). */
const APP_UID = 10001;

class Failure extends Error {}

const started = Date.now();
const secondsSince = (t: number): string => `${((Date.now() - t) / 1000).toFixed(1)} s`;
const say = (line: string): void => console.log(`[container ${secondsSince(started)}] ${line}`);
function check(ok: unknown, what: string): asserts ok {
  if (!ok) throw new Failure(what);
}

// ---- processes ---------------------------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), 'orch-container-'));
const LOG = join(work, 'commands.log');
const env: NodeJS.ProcessEnv = { ...process.env, CONTAINERS_CONF: join(work, 'containers.conf') };

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command (its output into the log); a non-zero exit throws unless `allowFail`. */
function run(
  cmd: string,
  args: readonly string[],
  options: { allowFail?: boolean; cwd?: string; extraEnv?: NodeJS.ProcessEnv; log?: string; onStdout?: (chunk: string) => void } = {},
): Promise<Ran> {
  const log = options.log ?? LOG;
  appendFileSync(log, `\n$ ${cmd} ${args.join(' ')}\n`);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: options.cwd ?? ROOT, env: { ...env, ...options.extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => {
      out.push(b);
      appendFileSync(log, b);
      options.onStdout?.(b.toString());
    });
    child.stderr.on('data', (b: Buffer) => {
      err.push(b);
      appendFileSync(log, b);
    });
    child.on('error', (e) => reject(new Failure(`cannot run ${cmd}: ${e.message}`)));
    child.on('close', (code, signal) => {
      const ran = { code: code ?? 128, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (ran.code !== 0 && options.allowFail !== true) {
        const tail = (ran.stderr.trim() || ran.stdout.trim()).split('\n').slice(-15).join('\n');
        reject(new Failure(`${cmd} ${args.slice(0, 3).join(' ')} ... exited with ${signal ?? ran.code}${tail ? `:\n${tail}` : ''}`));
      } else resolve(ran);
    });
  });
}

const podman = (args: readonly string[], options: { allowFail?: boolean; log?: string; onStdout?: (chunk: string) => void } = {}): Promise<Ran> => run('podman', args, options);
const tail = (text: string, lines: number): string => text.trimEnd().split('\n').slice(-lines).join('\n');

// ---- HTTP --------------------------------------------------------------------------------------------

type Json = Record<string, unknown>;
interface Answer {
  status: number;
  body: Json;
}

const TOKEN = randomBytes(32).toString('base64url'); // 43 characters: ADMIN_TOKEN wants 32 or more
const PG_PASSWORD = randomBytes(18).toString('hex');

async function call(base: string, method: 'GET' | 'POST', path: string, body?: unknown, token: string | null = TOKEN): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = { text };
  }
  return { status: res.status, body: (typeof parsed === 'object' && parsed !== null ? parsed : { value: parsed }) as Json };
}

/** One answer of the seed's API, which must be 200. */
async function seed(base: string, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Json> {
  const a = await call(base, method, path, body);
  check(a.status === 200, `${method} ${path} answered ${a.status}: ${JSON.stringify(a.body)}`);
  return a.body;
}

/** Polls `probe` until it returns a value (not undefined); fails after `ms` with the last thing seen. */
async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>, everyMs = 100): Promise<T> {
  const until = Date.now() + ms;
  let last: string;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
      last = 'not yet';
    } catch (err) {
      if (err instanceof Failure) throw err;
      last = (err as Error).cause instanceof Error ? `${(err as Error).message}: ${((err as Error).cause as Error).message}` : (err as Error).message;
    }
    if (Date.now() > until) throw new Failure(`timed out after ${ms / 1000} s waiting for ${what} (last: ${last})`);
    await sleep(everyMs);
  }
}

interface Replica {
  role: string;
  leader: string | null;
  epoch: number | null;
}

/** /readyz once it answers 200 with this role. */
function ready(base: string, role: 'leader' | 'follower', ms: number, everyMs = 100): Promise<Replica> {
  return waitFor(`${base}/readyz to say ready as ${role}`, ms, async () => {
    const a = await call(base, 'GET', '/readyz', undefined, null);
    const replica = a.body.replica as Replica | undefined;
    return a.status === 200 && replica?.role === role ? replica : undefined;
  }, everyMs);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

// ---- the run -----------------------------------------------------------------------------------------

const project = `orchtest${process.pid}${randomBytes(2).toString('hex')}`;
const sqliteName = `${project}-sqlite`;
const sqliteVolume = `${project}-sqlite-data`;
const containerOf = (service: string): string => `${project}_${service}_1`;
const timings: [string, string][] = [];
const composeEnv: NodeJS.ProcessEnv = {};
let composeUsed = false;

function compose(args: readonly string[]): Promise<Ran> {
  composeUsed = true;
  return run('podman-compose', ['-f', join(ROOT, 'compose.yaml'), '-p', project, ...args], { extraEnv: composeEnv });
}

async function preflight(): Promise<void> {
  check(process.getuid?.() === 0, 'run as root: rootful podman, and debootstrap for the base image');
  const missing: string[] = [];
  for (const tool of ['podman', 'runc', 'podman-compose', 'debootstrap']) {
    if ((await run('sh', ['-c', `command -v ${tool}`], { allowFail: true })).code !== 0) missing.push(tool);
  }
  check(missing.length === 0, `missing ${missing.join(', ')}: apt-get install podman runc debootstrap podman-compose`);
  // runc, not crun (which fails on this kind of host: cgroups v1 hybrid, no raising RLIMIT_NOFILE), and
  // default file limits that do not exceed the hard limit of this shell.
  const hard = (await run('sh', ['-c', 'ulimit -Hn'])).stdout.trim();
  const nofile = hard === 'unlimited' ? 65536 : Math.min(65536, Number(hard));
  writeFileSync(
    env.CONTAINERS_CONF as string,
    `[containers]\ndefault_ulimits = ["nofile=${nofile}:${nofile}", "nproc=32768:32768"]\n[engine]\nruntime = "runc"\n`,
  );
  say(`podman ${(await podman(['--version'])).stdout.trim().replace(/^podman version /, '')}, ${(await run('podman-compose', ['version'], { allowFail: true })).stdout.match(/podman-compose(?:r)? version\s+(\S+)/)?.[1] ?? '?'} of podman-compose; project ${project}; log ${LOG}`);
}

/**
 * The images (test/container/images.sh: the local base images and the app's, each reused when podman's
 * store holds it), its progress passed on; returns their names by role.
 */
async function images(): Promise<Record<'node' | 'postgres' | 'app', string>> {
  let pending = '';
  const made = await run('bash', [join(HERE, 'images.sh')], {
    allowFail: true,
    onStdout: (chunk) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.startsWith('[images')) console.log(line);
    },
  });
  if (made.code !== 0) throw new Failure(`test/container/images.sh failed (exit ${made.code}):\n${tail(made.stderr, 45)}`);
  const names: Partial<Record<string, string>> = {};
  for (const m of made.stdout.matchAll(/^image (\w+) (\S+)$/gm)) names[m[1] as string] = m[2];
  for (const m of made.stdout.matchAll(/^timing ([^:]+): (.*)$/gm)) timings.push([m[1] as string, m[2] as string]);
  const { node, postgres, app } = names;
  check(node && postgres && app, `test/container/images.sh named no node, postgres or app image:\n${tail(made.stdout, 10)}`);
  return { node, postgres, app };
}

async function checkImage(): Promise<void> {
  const inspect = JSON.parse((await podman(['image', 'inspect', APP_IMAGE])).stdout) as { Size: number; Config: { User?: string; Env?: string[]; ExposedPorts?: Json }; Healthcheck?: { Test?: string[] } }[];
  const image = inspect[0];
  check(image, `podman image inspect ${APP_IMAGE} found nothing`);
  timings.push(['image size', `${Math.round(image.Size / 1e6)} MB (${Math.round(image.Size / 2 ** 20)} MiB)`]);
  check(image.Config.User === `${APP_UID}:${APP_UID}`, `the image's USER is "${image.Config.User}", not ${APP_UID}:${APP_UID} (non-root)`);
  for (const e of ['HOST=0.0.0.0', 'PORT=8000', 'DATA_DIR=/data']) check(image.Config.Env?.includes(e), `the image's environment lacks ${e}: ${JSON.stringify(image.Config.Env)}`);
  check(image.Config.ExposedPorts && '8000/tcp' in image.Config.ExposedPorts, 'the image does not EXPOSE 8000');
  check(image.Healthcheck?.Test?.join(' ').includes('/healthz'), `the image has no HEALTHCHECK on /healthz (built in OCI format?): ${JSON.stringify(image.Healthcheck)}`);
  // HOST=0.0.0.0 without authentication: refused, exit 2, saying what to set.
  const open = await podman(['run', '--rm', APP_IMAGE], { allowFail: true });
  check(open.code === 2 && /Configuration error: HOST: 0\.0\.0\.0 exposes the API.*ADMIN_TOKEN/.test(open.stderr), `without ADMIN_TOKEN the image should refuse to start with exit 2 and say why; it exited ${open.code}: ${tail(open.stderr, 5)}`);
  say(`image: ${image.Config.User}, HOST=0.0.0.0, HEALTHCHECK on /healthz, ${Math.round(image.Size / 1e6)} MB; without ADMIN_TOKEN it refuses to start (exit 2)`);
}

/** Node is PID 1 (SIGTERM reaches it) and runs as the image's user; the image's HEALTHCHECK passes. */
async function checkContainer(name: string): Promise<void> {
  const status = (await podman(['exec', name, 'cat', '/proc/1/status'])).stdout;
  const uid = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
  const comm = /^Name:\s+(\S+)/m.exec(status)?.[1];
  check(uid && Number(uid[1]) === APP_UID && Number(uid[2]) === APP_UID, `${name}: PID 1 runs as uid ${uid?.[1]}, not ${APP_UID}`);
  check(comm === 'node', `${name}: PID 1 is ${comm}, not node (SIGTERM would not reach the server)`);
  const health = await podman(['healthcheck', 'run', name], { allowFail: true });
  check(health.code === 0, `${name}: podman healthcheck run says ${(health.stdout + health.stderr).trim() || `exit ${health.code}`}`);
}

async function sqliteContainer(): Promise<void> {
  const t = Date.now();
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // The token from the environment (`-e NAME` passes this process's value), not on the command line.
  await run('podman', ['run', '-d', '--name', sqliteName, '-e', 'ADMIN_TOKEN', '-v', `${sqliteVolume}:/data`, '-p', `127.0.0.1:${port}:8000`, APP_IMAGE], { extraEnv: { ADMIN_TOKEN: TOKEN } });
  await ready(base, 'leader', 60_000);
  check((await call(base, 'GET', '/cluster_status', undefined, null)).status === 401, 'SQLite container: /cluster_status without a token should be 401');
  const cluster = await seed(base, 'GET', '/cluster_status');
  check(cluster.total_slaves === 3, `SQLite container: a first start has 3 agents, /cluster_status says ${String(cluster.total_slaves)}`);
  await checkContainer(sqliteName);
  const s = Date.now();
  await podman(['stop', '-t', '20', sqliteName]);
  const stopMs = Date.now() - s;
  const state = (await podman(['inspect', sqliteName, '--format', '{{.State.ExitCode}}'])).stdout.trim();
  const logs = await podman(['logs', sqliteName]);
  check(state === '0' && logs.stdout.includes('Orchestrator stopped.'), `SQLite container: podman stop should end it cleanly (exit 0, "Orchestrator stopped."); exit ${state}: ${tail(logs.stdout + logs.stderr, 5)}`);
  const files = (await podman(['run', '--rm', '--entrypoint', 'ls', '-v', `${sqliteVolume}:/data`, APP_IMAGE, '-A', '/data'])).stdout.trim().split('\n');
  check(files.length === 1 && files[0] === 'orchestrator.db', `SQLite container: after a clean stop the volume should hold orchestrator.db alone, it holds ${files.join(', ')}`);
  await podman(['rm', '-f', '-v', sqliteName]);
  await podman(['volume', 'rm', sqliteVolume]);
  say(`SQLite container: ready, 401 without the token, healthy, node as PID 1 (uid ${APP_UID}); stopped by SIGTERM in ${(stopMs / 1000).toFixed(1)} s, exit 0, the volume holds orchestrator.db alone (${secondsSince(t)})`);
}

async function composeUp(postgres: string): Promise<{ leader: string; follower: string }> {
  const [leaderPort, followerPort] = [await freePort(), await freePort()];
  Object.assign(composeEnv, {
    ORCHESTRATOR_IMAGE: APP_IMAGE,
    POSTGRES_IMAGE: postgres,
    ADMIN_TOKEN: TOKEN,
    POSTGRES_PASSWORD: PG_PASSWORD,
    LEADER_PORT: `127.0.0.1:${leaderPort}`,
    FOLLOWER_PORT: `127.0.0.1:${followerPort}`,
  });
  const leader = `http://127.0.0.1:${leaderPort}`;
  const follower = `http://127.0.0.1:${followerPort}`;
  const t = Date.now();
  // Created, not started (without -d: podman-compose 1.0.3 would pass it to podman create), then started in order.
  await compose(['up', '--no-start']);
  await podman(['start', containerOf('postgres')]);
  await waitFor('PostgreSQL to be healthy (its compose healthcheck)', 60_000, async () => ((await podman(['healthcheck', 'run', containerOf('postgres')], { allowFail: true })).code === 0 ? true : undefined), 250);
  say(`compose: PostgreSQL healthy (${secondsSince(t)})`);
  await podman(['start', containerOf('leader')]);
  const led = await ready(leader, 'leader', 60_000);
  say(`compose: the leader leads, epoch ${String(led.epoch)} (${secondsSince(t)})`);
  await podman(['start', containerOf('follower')]);
  const follows = await ready(follower, 'follower', 60_000);
  check(follows.leader === 'http://leader:8000', `the follower's leader is ${follows.leader}, not http://leader:8000 (the leader's ADVERTISE_URL)`);
  timings.push(['compose up to ready', secondsSince(t)]);
  say(`compose: the follower follows ${follows.leader} (${secondsSince(t)})`);
  return { leader, follower };
}

/** The seed README's curl examples (and its other routes), through the follower, with the token. */
async function seedExamples(via: string): Promise<void> {
  const denied = await call(via, 'GET', '/cluster_status', undefined, null);
  check(denied.status === 401, `through the follower without a token: ${denied.status}, not 401`);
  const cluster = await seed(via, 'GET', '/cluster_status');
  check(cluster.running === true && cluster.total_slaves === 3, `/cluster_status: ${JSON.stringify(cluster)}`);
  const agents = (await seed(via, 'GET', '/list_agents')).agents as string[];
  check(Array.isArray(agents) && agents.length === 3, `/list_agents: ${JSON.stringify(agents)}`);

  const asset = { id: '7712...328', name: 'LAPTOP-RCK72RHH', manufacturer: 'LENOVO', model: 'IdeaPad Slim 5', osName: 'Win 11 Home', site: 'Coimbatore', department: 'Marketing' };
  const added = await seed(via, 'POST', '/add_asset', asset);
  check(typeof added.agent_id === 'string' && added.message === 'Asset added and agent created with metrics', `/add_asset: ${JSON.stringify(added)}`);
  const one = await seed(via, 'GET', `/asset_details?asset_id=${encodeURIComponent(asset.id)}`);
  check(one.agent_id === added.agent_id && (one.asset as Json).name === asset.name, `/asset_details?asset_id=: ${JSON.stringify(one)}`);
  const all = (await seed(via, 'GET', '/asset_details')).assets as unknown[];
  check(Array.isArray(all) && all.length >= 2, `/asset_details: ${JSON.stringify(all)}`);
  const spawned = await seed(via, 'POST', '/spawn_agent');
  check(typeof spawned.agent_id === 'string' && spawned.agent_id.startsWith('slave-'), `/spawn_agent: ${JSON.stringify(spawned)}`);

  const started = await seed(via, 'POST', '/start_deployment', { deployment_id: 'deploy-001' });
  check(started.status === 'active' && Array.isArray(started.affected_agents) && started.affected_agents.length >= 1, `/start_deployment: ${JSON.stringify(started)}`);
  const during = await seed(via, 'GET', '/deployment_status?deployment_id=deploy-001');
  check(during.deployment_id === 'deploy-001' && during.status === 'active', `/deployment_status: ${JSON.stringify(during).slice(0, 300)}`);
  const done = await seed(via, 'POST', '/complete_deployment', { deployment_id: 'deploy-001' });
  check(done.status === 'completed' && Array.isArray(done.recovered_agents), `/complete_deployment: ${JSON.stringify(done).slice(0, 300)}`);
  const activity = await seed(via, 'POST', '/simulate_activity');
  check(activity.status === 'success', `/simulate_activity: ${JSON.stringify(activity).slice(0, 300)}`);
  say('the seed\'s curl examples through the follower: cluster_status, list_agents, add_asset, asset_details, spawn_agent, start_deployment, deployment_status, complete_deployment, simulate_activity (401 without the token)');
}

/** Submits a task and waits for it to complete; returns it as /status/{id} shows it. */
async function taskRuns(via: string, what: string): Promise<Json> {
  const submitted = await seed(via, 'POST', '/submit_task', { task_type: 'process_data', parameters: { data: [5, 1, 3] }, priority: 2 });
  const id = submitted.task_id;
  check(typeof id === 'string', `/submit_task (${what}): ${JSON.stringify(submitted)}`);
  const task = await waitFor(`task ${id} (${what}) to complete`, 30_000, async () => {
    const t = await seed(via, 'GET', `/status/${id}`);
    return t.status === 'completed' ? t : undefined;
  });
  const result = task.result as Json | null;
  check(result?.count === 3 && result.sum === 9 && result.min === 1 && result.max === 5 && result.median === 3, `task ${id}: result ${JSON.stringify(result)}`);
  return task;
}

async function failover(urls: { leader: string; follower: string }): Promise<void> {
  const before = await taskRuns(urls.follower, 'submitted through the follower');
  const agentsBefore = ((await seed(urls.follower, 'GET', '/list_agents')).agents as string[]).slice().sort();
  // podman stop: SIGTERM to the leader's node (PID 1), which releases the lease as it stops.
  const t = Date.now();
  const stopping = podman(['stop', '-t', '20', containerOf('leader')]);
  const took = await ready(urls.follower, 'leader', 30_000, 25);
  const takeoverMs = Date.now() - t;
  await stopping;
  const stopMs = Date.now() - t;
  const exit = (await podman(['inspect', containerOf('leader'), '--format', '{{.State.ExitCode}}'])).stdout.trim();
  check(exit === '0', `the leader's container exited ${exit} on podman stop, not 0 (a clean stop on SIGTERM)`);
  timings.push(['takeover after podman stop of the leader', `${(takeoverMs / 1000).toFixed(2)} s (the old leader's container stopped in ${(stopMs / 1000).toFixed(1)} s, exit 0)`]);
  say(`failover: the follower leads (epoch ${String(took.epoch)}) ${(takeoverMs / 1000).toFixed(2)} s after podman stop of the leader`);

  const kept = await seed(urls.follower, 'GET', `/status/${String(before.task_id)}`);
  check(kept.status === 'completed' && JSON.stringify(kept.result) === JSON.stringify(before.result), `after the failover, task ${String(before.task_id)} is ${JSON.stringify(kept)}`);
  const agentsAfter = ((await seed(urls.follower, 'GET', '/list_agents')).agents as string[]).slice().sort();
  check(JSON.stringify(agentsAfter) === JSON.stringify(agentsBefore), `after the failover the agents are ${agentsAfter.join(', ')}, before ${agentsBefore.join(', ')}`);
  await taskRuns(urls.follower, 'submitted to the new leader');
  say(`failover: task ${String(before.task_id)} submitted before is still there, the ${agentsAfter.length} agents too, and a new task runs to completion`);

  // The old leader, started again, follows the new one (and serves through it).
  const t2 = Date.now();
  await podman(['start', containerOf('leader')]);
  const rejoined = await ready(urls.leader, 'follower', 60_000);
  check(rejoined.leader === 'http://follower:8000', `the old leader, restarted, follows ${rejoined.leader}, not http://follower:8000`);
  const cluster = await seed(urls.leader, 'GET', '/cluster_status');
  check(cluster.total_tasks === 2, `/cluster_status through the restarted old leader: ${JSON.stringify(cluster).slice(0, 300)}`);
  say(`failover: the old leader, started again, follows http://follower:8000 (${secondsSince(t2)})`);
}

async function dumpLogs(): Promise<void> {
  const names = (await podman(['ps', '-a', '--format', '{{.Names}}', '--filter', `name=${project}`], { allowFail: true })).stdout.trim().split('\n').filter(Boolean);
  for (const name of names) {
    const logs = await podman(['logs', '--tail', '25', name], { allowFail: true });
    console.error(`---- ${name} (last lines of its log) ----\n${tail(logs.stdout + logs.stderr, 25)}`);
  }
}

let tornDown: Promise<void> | null = null;
/**
 * Removes the containers (with their anonymous volumes: the image's VOLUME /data), the volumes and the
 * network of this run, by podman-compose's project label: `podman-compose down -v` (1.0.3) leaves the
 * anonymous volumes and the network behind.
 */
function teardown(): Promise<void> {
  tornDown ??= (async () => {
    const quiet = { allowFail: true };
    const lines = (r: Ran): string[] => r.stdout.trim().split('\n').filter(Boolean);
    const label = `label=io.podman.compose.project=${project}`;
    const containers = [...lines(await podman(['ps', '-a', '-q', '--filter', label], quiet)), ...lines(await podman(['ps', '-a', '-q', '--filter', `name=^${sqliteName}$`], quiet))];
    if (containers.length > 0) await podman(['rm', '-f', '-v', '-t', '2', ...containers], quiet);
    const volumes = [...lines(await podman(['volume', 'ls', '-q', '--filter', label], quiet)), ...lines(await podman(['volume', 'ls', '-q', '--filter', `name=^${sqliteVolume}$`], quiet))];
    if (volumes.length > 0) await podman(['volume', 'rm', '-f', ...volumes], quiet);
    if (composeUsed) await podman(['network', 'rm', '-f', `${project}_default`], quiet);
    const left = [...lines(await podman(['ps', '-a', '-q', '--filter', `name=${project}`], quiet)), ...lines(await podman(['volume', 'ls', '-q', '--filter', `name=${project}`], quiet))];
    if (left.length > 0) console.error(`[container] could not remove every container and volume of ${project}: ${left.join(' ')}`);
    rmSync(work, { recursive: true, force: true });
  })();
  return tornDown;
}

async function main(): Promise<void> {
  await preflight();
  const built = await images();
  APP_IMAGE = built.app;
  await checkImage();
  await sqliteContainer();

  const urls = await composeUp(built.postgres);
  await seedExamples(urls.follower);
  await checkContainer(containerOf('leader'));
  await checkContainer(containerOf('follower'));
  say('compose: both replicas run node as PID 1 under the image\'s user and are healthy');
  await failover(urls);

  const t = Date.now();
  await teardown();
  timings.push(['teardown', secondsSince(t)]);
  console.log(`\n[container] passed in ${secondsSince(started)}`);
  for (const [what, value] of timings) console.log(`  ${what}: ${value}`);
}

// Ctrl-C reaches this process twice (from the terminal, and relayed by tsx's parent process): the first
// one starts the teardown, and the others must not end the process before it is done.
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (interrupted) return;
    interrupted = true;
    console.error(`\n[container] ${signal}: removing what this run made`);
    void teardown().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

main().then(
  () => process.exit(0),
  async (err: unknown) => {
    const message = err instanceof Failure ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    if (existsSync(LOG)) console.error(`---- the last commands and their output ----\n${tail(readFileSync(LOG, 'utf8'), 30)}`);
    await dumpLogs().catch(() => undefined);
    await teardown().catch((e: unknown) => console.error(`[container] teardown failed: ${String(e)}`));
    console.error(`\n[container] FAILED after ${secondsSince(started)}: ${message}`);
    process.exit(1);
  },
);
