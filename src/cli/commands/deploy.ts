import type { Command } from 'commander';
import { ApiError, EXIT, usage } from '../client/errors.js';
import { EventFollower } from '../client/events.js';
import type { Api } from '../client/http.js';
import { path } from '../client/http.js';
import type { Output } from '../client/output.js';
import { ago, bar, count, duration, keyValues, LiveBlock, percent, plural, table } from '../client/output.js';
import { action, choice, clientOf, clientOptions, durationOption, intOption } from '../client/options.js';
import type { PagingFlags } from '../client/paging.js';
import { pagingOptions, printListing, wanted } from '../client/paging.js';
import type { DeploymentDetail, DeploymentSummary, ExecutionCounts, GateEvaluation } from '../client/types.js';
import { readJsonFile } from './fleet.js';
import { settled, stageText, statusText } from './status.js';

const STATUSES = ['scheduled', 'in_progress', 'paused', 'halted', 'completed', 'cancelled', 'rolled_back'] as const;
const EXECUTION_STATES = ['queued', 'in_progress', 'succeeded', 'failed', 'timed_out', 'rejected', 'skipped', 'cancelled', 'rolled_back'] as const;
/** Statuses a watch ends at: completed is the one success. */
const ENDED = new Set(['completed', 'cancelled', 'rolled_back', 'halted']);

interface Execution {
  deviceId: string;
  ring: string | null;
  state: string;
  reason: string | null;
  taskId: string | null;
  startedAt: string | null;
  endedAt: string | null;
  impact: { cpu: number; memory: number | null; batteryDrainPerHour: number | null } | null;
}

/** `deploy create|list|show|start|pause|resume|promote|abort|rollback|acknowledge|halt|watch`. */
export function registerDeploy(program: Command): void {
  const deploy = program.command('deploy').description('staged deployments: create one from a JSON plan, act on it, and watch it ring by ring');

  clientOptions(
    deploy
      .command('create <file>')
      .description('create a deployment from a JSON file (- for standard input): the body of POST /api/v1/deployments (docs/api.md); scheduled unless --start')
      .option('--start', 'start it at once')
      .option('--watch', 'then follow it to its end (with --start; a scheduled one is followed until it is started and ends)'),
  ).action(
    action(async (file: string, opts: { start?: boolean; watch?: boolean }, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const body = readJsonFile(file);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw usage(`${file}: must hold a JSON object (a deployment: {"name", "payload", "plan"?, ...})`);
      const created = await api.post<DeploymentDetail>('/api/v1/deployments', opts.start === true ? { ...body, start: true } : body);
      if (out.json) out.jsonLine(created);
      else {
        out.line(`created ${created.id} "${created.name}": ${created.plan.payload.type} ${JSON.stringify(created.plan.payload.params)} over ${created.plan.stages.map((s) => s.ring).join(' → ')}; ${statusText(created)}`);
        if (created.status === 'scheduled' && opts.watch !== true) out.note(`start it: orchestrator deploy start ${created.id}`);
        else if (opts.watch !== true) out.note(`follow it: orchestrator deploy watch ${created.id}`);
      }
      if (opts.watch === true) return watchDeployment(api, out, created.id, {});
    }),
  );

  clientOptions(
    pagingOptions(deploy.command('list').description('deployments, newest first').option('--status <status>', STATUSES.join(', ')), 20, 'deployments'),
  ).action(
    action(async (opts: PagingFlags & { status?: string }, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const status = choice('--status', opts.status, STATUSES);
      const want = wanted(opts, 20);
      const fetchPage = async (cursor: string | undefined, limit: number) => {
        // The status filter is applied here: pages are asked full and filtered.
        const page = await api.get<{ deployments: DeploymentSummary[]; nextCursor: string | null }>('/api/v1/deployments', { limit: status === undefined ? limit : 500, cursor });
        return { items: page.deployments.filter((d) => status === undefined || d.status === status), next: page.nextCursor };
      };
      const now = Date.now();
      await printListing<DeploymentSummary>(out, {
        fetchPage,
        want,
        pageMax: 500,
        cursor: opts.cursor,
        key: 'deployments',
        columns: [
        { header: 'DEPLOYMENT', cell: (d) => d.id },
        { header: 'NAME', cell: (d) => d.name },
        { header: 'KIND', cell: (d) => d.kind },
        { header: 'STATUS', cell: (d) => statusText(d) },
        { header: 'RING', cell: (d) => (ENDED.has(d.status) && d.status !== 'halted' ? '-' : stageText(d)) },
        { header: 'CREATED', cell: (d) => ago(d.createdAt, now) },
        { header: 'ENDED', cell: (d) => ago(d.endedAt, now) },
        { header: 'OUTCOME', cell: (d) => d.outcome?.summary ?? d.haltReason ?? '' },
        ],
        none: 'no deployments',
        what: 'deployments',
        again: 'orchestrator deploy list',
      });
    }),
  );

  clientOptions(
    deploy
      .command('show <id>')
      .description('a deployment: its status, progress ring by ring, gate results and outcome')
      .option('--executions [state]', `also list its executions (one per device), or those in one state: ${EXECUTION_STATES.join(', ')}`)
      .option('--limit <n>', 'with --executions: how many (default 50)'),
  ).action(
    action(async (id: string, opts: { executions?: string | true; limit?: string }, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const state = typeof opts.executions === 'string' ? choice('--executions', opts.executions, EXECUTION_STATES) : undefined;
      const limit = opts.executions === undefined ? 0 : (intOption('--limit', opts.limit, 1, 100_000) ?? 50);
      const d = await api.get<DeploymentDetail>(path('/api/v1/deployments', id), { state, limit: opts.executions === undefined && out.json ? undefined : limit });
      if (out.json) {
        out.jsonLine(d);
        return;
      }
      out.lines(renderDeployment(d, out.tty));
      if (opts.executions !== undefined) {
        const now = Date.now();
        const executions = d.executions as Execution[];
        out.line();
        out.lines(
          table(executions, [
            { header: 'DEVICE', cell: (e) => e.deviceId },
            { header: 'RING', cell: (e) => e.ring ?? '-' },
            { header: 'STATE', cell: (e) => e.state },
            { header: 'STARTED', cell: (e) => ago(e.startedAt, now) },
            { header: 'CPU Δ', cell: (e) => (e.impact === null ? '-' : signed(e.impact.cpu)), right: true },
            { header: 'MEM Δ', cell: (e) => (e.impact?.memory === null || e.impact === null ? '-' : signed(e.impact.memory)), right: true },
            { header: 'DRAIN Δ', cell: (e) => (e.impact?.batteryDrainPerHour === null || e.impact === null ? '-' : signed(e.impact.batteryDrainPerHour)), right: true },
            { header: 'REASON', cell: (e) => e.reason ?? '' },
          ]),
        );
        if (executions.length < d.executionsTotal) out.note(`${executions.length} of ${plural(d.executionsTotal, 'execution')} shown: --limit N for more`);
      }
    }),
  );

  const actions: [string, string, boolean][] = [
    ['start', 'start a scheduled deployment', true],
    ['pause', 'pause it: updates running finish, none start', false],
    ['resume', 'resume a paused deployment (after a pause for evidence: one more soak of the ring)', true],
    ['promote', 'go on to the next stage now, skipping the soak or accepting missing evidence (recorded as an override)', true],
    ['abort', 'cancel it: queued and running updates are cancelled', false],
    ['rollback', 'send the rollback payload to every device the update reached', false],
    ['acknowledge', 'acknowledge a halt and resume: the halted ring\'s gate starts over', true],
  ];
  for (const [verb, help, watchable] of actions) {
    const c = deploy.command(`${verb} <id>`).description(help);
    if (watchable) c.option('--watch', 'then follow it to its end');
    clientOptions(c).action(
      action(async (id: string, opts: { watch?: boolean }, cmd: Command) => {
        const { api, out } = clientOf(cmd);
        const d = await api.post<DeploymentSummary>(path('/api/v1/deployments', id, verb));
        printAction(out, d);
        if (opts.watch === true) return watchDeployment(api, out, d.id, {});
      }),
    );
  }

  clientOptions(
    deploy
      .command('halt <id>')
      .description('halt it as a failing gate would: it waits for an acknowledgement, a rollback or an abort')
      .option('--reason <text>', 'why, kept in the halt reason (1 to 500 characters)'),
  ).action(
    action(async (id: string, opts: { reason?: string }, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const d = await api.post<DeploymentSummary>(path('/api/v1/deployments', id, 'halt'), opts.reason === undefined ? undefined : { reason: opts.reason });
      printAction(out, d);
    }),
  );

  clientOptions(
    deploy
      .command('watch <id>')
      .description('follow a deployment (the event stream): progress bars per ring and gate results as they happen; exit 0 when it completes, 1 when it halts, is aborted or rolled back')
      .option('--timeout <duration>', 'stop waiting after this long (exit 1)'),
  ).action(
    action(async (id: string, opts: { timeout?: string }, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const timeoutMs = durationOption('--timeout', opts.timeout);
      return watchDeployment(api, out, id, timeoutMs === undefined ? {} : { timeoutMs });
    }),
  );
}

function printAction(out: Output, d: DeploymentSummary): void {
  if (out.json) {
    out.jsonLine(d);
    return;
  }
  const where = d.stage === null || ENDED.has(d.status) || d.status === 'scheduled' ? '' : `, ring ${stageText(d)}`;
  out.line(`${d.id} is ${statusText(d)}${where}${d.haltReason !== null ? `: ${d.haltReason}` : ''}${d.outcome !== null ? `: ${d.outcome.summary}` : ''}`);
}

function signed(v: number): string {
  const r = Math.round(v * 10) / 10;
  return `${r > 0 ? '+' : ''}${r}`;
}

/** The execution counts of a ring in words: `3 ok, 1 failed, 2 running`. */
function countsText(c: ExecutionCounts): string {
  const names: [string, string][] = [
    ['succeeded', 'ok'],
    ['failed', 'failed'],
    ['rejected', 'rejected'],
    ['timed_out', 'timed out'],
    ['skipped', 'skipped'],
    ['cancelled', 'cancelled'],
    ['rolled_back', 'rolled back'],
    ['in_progress', 'running'],
    ['queued', 'queued'],
  ];
  return names
    .filter(([k]) => (c[k] ?? 0) > 0)
    .map(([k, word]) => `${count(c[k] ?? 0)} ${word}`)
    .join(', ');
}

type Ring = DeploymentDetail['progress']['rings'][number];

/** One ring's line: its bar, how many of its devices have an outcome, and its gate. */
function ringLine(r: Ring, d: DeploymentDetail, width: number, tty: boolean): string {
  const unicode = tty;
  const name = r.ring.padEnd(width);
  const stage = `${r.stage + 1}/${d.plan.stages.length}`;
  const gate = r.lastEvaluation === null ? '' : `  gate ${r.lastEvaluation.verdict.replace(/_/g, ' ')}`;
  if (!r.reached) return `${name}  ${stage}  ${bar(0, 16, unicode)}  waiting`;
  if (r.devices === 0) return `${name}  ${stage}  ${bar(1, 16, unicode)}  no devices${gate}`;
  const done = settled(r.counts);
  const soakUntil = d.stage?.index === r.stage && d.stage.phase === 'soaking' && d.status === 'in_progress' ? d.stage.soakUntil : null;
  // The countdown on a terminal only: elsewhere each change is a line, and a clock would be one a second.
  const soaking = soakUntil === null ? '' : !tty ? '  soaking' : `  soaking, ${(duration(Math.max(0, Date.parse(soakUntil) - Date.now())).split(' ')[0] as string)} left`;
  return `${name}  ${stage}  ${bar(done / r.devices, 16, unicode)}  ${percent(done / r.devices).padStart(4)}  ${count(done)}/${count(r.devices)}: ${countsText(r.counts)}${gate}${soaking}`;
}

function evaluationLine(e: GateEvaluation): string {
  return `${new Date(e.at).toTimeString().slice(0, 8)}  gate ${e.ring}: ${e.verdict.replace(/_/g, ' ')}: ${e.reason}`;
}

function statusLine(d: DeploymentDetail): string {
  const where = d.stage === null || ENDED.has(d.status) || d.status === 'scheduled' ? '' : `, ring ${stageText(d, d.plan.stages.length)}`;
  return `${d.id} "${d.name}": ${statusText(d)}${where}`;
}

/** `deploy show`: the summary, the rings with their bars, the evaluations, the outcome. */
export function renderDeployment(d: DeploymentDetail, unicode: boolean): string[] {
  const now = Date.now();
  const lines = keyValues([
    ['Deployment', `${d.id} "${d.name}" (${d.kind})`],
    ['Status', `${statusText(d)}${d.stage === null || ENDED.has(d.status) ? '' : `, ring ${stageText(d, d.plan.stages.length)}${d.stage.soakUntil !== null && d.stage.phase === 'soaking' ? ` until ${d.stage.soakUntil} (${ago(d.stage.soakUntil, now)})` : ''}`}`],
    ['Payload', `${d.plan.payload.type} ${JSON.stringify(d.plan.payload.params)}; automatic rollback ${d.plan.autoRollback ? 'on' : 'off'}`],
    ['Created', `${ago(d.createdAt, now)}${d.startedAt === null ? '' : `, started ${ago(d.startedAt, now)}`}${d.endedAt === null ? '' : `, ended ${ago(d.endedAt, now)}`}`],
    d.haltReason !== null ? [d.status === 'paused' ? 'Paused' : 'Halt', d.haltReason] : null,
    d.outcome !== null ? ['Outcome', d.outcome.summary] : null,
    d.haltAdvice !== null ? ['Advice', `${d.haltAdvice.summary} (orchestrator advise show ${d.haltAdvice.id})`] : null,
  ]);
  const width = Math.max(4, ...d.progress.rings.map((r) => r.ring.length));
  lines.push('', ...d.progress.rings.map((r) => ringLine(r, d, width, unicode)));
  if (d.evaluations.length > 0) {
    const shown = d.evaluations.slice(-10);
    lines.push('', `Gate results (${shown.length < d.evaluations.length ? `last ${shown.length} of ${d.evaluations.length}` : String(d.evaluations.length)})`);
    lines.push(...shown.map((e) => `  ${evaluationLine(e)}`));
  }
  return lines;
}

/**
 * Follows a deployment until it ends: the event stream (`kinds=deployment,task`) says when something changed,
 * and the deployment is then read again (`GET /api/v1/deployments/{id}`), so that what is shown is always the
 * server's own figures, and nothing is missed across a lost connection. Gate results and status changes are
 * printed as they happen; the rings' bars redraw in place on a terminal (a line per change otherwise).
 * Exit 0 when it completes; 1 when it halts (after its automatic rollback, if it has one), is cancelled or
 * rolled back, or at the timeout; 3 for an unknown id.
 */
export async function watchDeployment(api: Api, out: Output, id: string, opts: { timeoutMs?: number }): Promise<number> {
  const live = new LiveBlock(out);
  let printed = 0;
  let lastStatus: string | null = null;
  let lastProgress = '';
  let latest: DeploymentDetail | null = null;
  let haltedAt: number | null = null;
  let finish: (code: number) => void = () => undefined;
  let fail: (err: unknown) => void = () => undefined;
  const finished = new Promise<number>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  // Awaited below (in a race); a failure before that is not an unhandled rejection.
  finished.catch(() => undefined);

  const refreshOnce = async (): Promise<void> => {
    const d = await api.get<DeploymentDetail>(path('/api/v1/deployments', id), { limit: 0 });
    latest = d;
    for (const e of d.evaluations.slice(printed)) {
      if (out.json) out.jsonLine({ type: 'gate', deploymentId: d.id, ...e });
      else live.log(evaluationLine(e));
    }
    printed = d.evaluations.length;
    const statusKey = `${d.status}|${d.stage?.index ?? ''}|${d.haltReason ?? ''}`;
    if (statusKey !== lastStatus) {
      lastStatus = statusKey;
      if (out.json) out.jsonLine({ type: 'status', deploymentId: d.id, status: d.status, stage: d.stage, pauseReason: d.pauseReason, haltReason: d.haltReason, at: new Date().toISOString() });
      else live.log(`${new Date().toTimeString().slice(0, 8)}  ${statusLine(d)}${d.haltReason !== null ? `: ${d.haltReason}` : ''}`);
    }
    if (out.json) {
      const progress = JSON.stringify(d.progress.rings.map((r) => ({ ring: r.ring, reached: r.reached, devices: r.devices, counts: r.counts })));
      if (progress !== lastProgress) {
        lastProgress = progress;
        out.jsonLine({ type: 'progress', deploymentId: d.id, rings: JSON.parse(progress) as unknown, counts: d.progress.counts });
      }
    } else {
      const width = Math.max(4, ...d.progress.rings.map((r) => r.ring.length));
      live.update(d.progress.rings.map((r) => ({ key: r.ring, text: `  ${ringLine(r, d, width, out.tty)}` })));
    }
    if (!ENDED.has(d.status)) {
      haltedAt = null;
      return;
    }
    // A halt with automatic rollback becomes rolled_back at once: wait a little for it.
    if (d.status === 'halted' && d.plan.autoRollback) {
      haltedAt ??= Date.now();
      if (Date.now() - haltedAt < 10_000) {
        schedule(500);
        return;
      }
    }
    finish(d.status === 'completed' ? EXIT.ok : EXIT.failed);
  };

  let timer: NodeJS.Timeout | null = null;
  let running = false;
  let again = false;
  /** Since when reads have failed for want of a server (a restart, a failover): tolerated for a minute. */
  let failingSince: number | null = null;
  const refresh = async (): Promise<void> => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await refreshOnce();
        failingSince = null;
      } while (again);
    } catch (err) {
      // An answer that says no (the deployment is gone, the token was revoked) ends the watch; a server that
      // cannot be reached, or fails, may come back (the stream reconnects meanwhile): the next tick reads again.
      const lasting = err instanceof ApiError && err.status < 500;
      failingSince ??= Date.now();
      if (lasting || Date.now() - failingSince > 60_000) fail(err);
    } finally {
      running = false;
    }
  };
  const schedule = (delayMs: number): void => {
    if (timer !== null) return;
    timer = setTimeout(() => {
      timer = null;
      void refresh();
    }, delayMs);
  };

  const follower = new EventFollower(api, {
    kinds: 'deployment,task',
    onEvent: (e) => {
      if (e.kind.startsWith('deployment.')) {
        if (e.data.deploymentId === id) schedule(0);
        return;
      }
      // A task of this deployment's payload (or its rollback) may be one of its updates.
      const type = (e.data.task as { type?: unknown } | undefined)?.type;
      if (latest === null || type === latest.plan.payload.type || type === latest.plan.rollbackPayload?.type) schedule(300);
    },
    onGap: () => schedule(0),
  });
  await follower.start();
  // A soak's countdown, and a safety net: read it again now and then even without events.
  const tick = setInterval(() => schedule(0), out.tty ? 1000 : 5000);
  const timers: NodeJS.Timeout[] = [tick];
  try {
    await refresh();
    const stopped = new Promise<number>((resolve) => {
      process.once('SIGINT', () => resolve(EXIT.failed));
      if (opts.timeoutMs !== undefined) {
        timers.push(
          setTimeout(() => {
            out.note(`stopped waiting after ${duration(opts.timeoutMs ?? 0)}: the deployment is ${latest === null ? 'unknown' : statusText(latest)}`);
            resolve(EXIT.failed);
          }, opts.timeoutMs),
        );
      }
    });
    const code = await Promise.race([finished, stopped, follower.failed]);
    const d = latest as DeploymentDetail | null;
    if (d !== null && ENDED.has(d.status)) {
      // The halt's explanation is written as it halts: read it once more if it was not there yet.
      let final: DeploymentDetail = d;
      if (d.status !== 'completed' && d.haltAdvice === null) {
        await new Promise((r) => setTimeout(r, 500));
        final = await api.get<DeploymentDetail>(path('/api/v1/deployments', id), { limit: 0 }).catch(() => d);
      }
      if (out.json) out.jsonLine({ type: 'end', deploymentId: final.id, status: final.status, haltReason: final.haltReason, outcome: final.outcome, haltAdvice: final.haltAdvice, exitCode: code });
      else {
        out.line(`${final.status}: ${final.outcome?.summary ?? final.haltReason ?? ''}`);
        if (final.haltAdvice !== null) out.line(`advice: ${final.haltAdvice.summary} (orchestrator advise show ${final.haltAdvice.id})`);
      }
    }
    return code;
  } finally {
    for (const t of timers) clearTimeout(t);
    if (timer !== null) clearTimeout(timer);
    follower.close();
  }
}
