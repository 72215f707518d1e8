import type { Command } from 'commander';
import type { Output } from '../client/output.js';
import { ago, bar, count, keyValues, percent, plural, score, table } from '../client/output.js';
import { action, clientOf, clientOptions } from '../client/options.js';
import type { DeploymentSummary, ExecutionCounts, Overview, Whoami } from '../client/types.js';

/** `orchestrator status`: the fleet at a glance (GET /api/v1/overview), as the dashboard's first page shows it. */
export function registerStatus(program: Command): void {
  clientOptions(
    program
      .command('status')
      .description('the fleet at a glance: devices by connectivity and ring, health, the queue, deployments in progress and recent halts'),
  ).action(
    action(async (_opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const overview = await api.get<Overview>('/api/v1/overview');
      if (out.json) {
        out.jsonLine(overview);
        return;
      }
      const who = await api.get<Whoami>('/api/v1/whoami');
      out.lines(renderStatus(overview, who, api.server, out));
    }),
  );
}

export function renderStatus(o: Overview, who: Whoami, server: string, out: Output): string[] {
  const d = o.devices;
  const now = Date.parse(o.at);
  const identity = who.open ? 'open to this machine (no token needed)' : `as ${who.actor} (${who.role})`;
  const lines = keyValues([
    ['Orchestrator', `${server}  ${identity}`],
    [
      'Devices',
      `${count(d.total)} total: ${count(d.online)} online, ${count(d.offline)} offline (${count(d.missing)} of them missing: silent for over ${durationText(d.missingAfterSeconds)})` +
        `${d.decommissioned > 0 ? `, ${count(d.decommissioned)} decommissioned` : ''}`,
    ],
    ['Health', `${count(d.unhealthy)} unhealthy (failing the health rule)${d.unscored > 0 ? `, ${count(d.unscored)} not scored yet` : ''}`],
    ['Tasks', taskLine(o.tasks)],
  ]);
  lines.push('');
  const ringRows = [...o.rings.map((r) => ({ ...r, target: String(r.target) })), { name: 'unassigned', size: o.unassigned, target: '-', online: null, p10: null, p50: null, p90: null, unhealthy: null }];
  lines.push(
    ...table(ringRows, [
      { header: 'RING', cell: (r) => r.name },
      { header: 'DEVICES', cell: (r) => count(r.size), right: true },
      { header: 'TARGET', cell: (r) => r.target, right: true },
      { header: 'ONLINE', cell: (r) => (r.online === null ? '' : count(r.online)), right: true },
      { header: 'UNHEALTHY', cell: (r) => (r.unhealthy === null ? '' : count(r.unhealthy)), right: true },
      { header: 'SCORE P10', cell: (r) => (r.online === null ? '' : score(r.p10)), right: true },
      { header: 'P50', cell: (r) => (r.online === null ? '' : score(r.p50)), right: true },
      { header: 'P90', cell: (r) => (r.online === null ? '' : score(r.p90)), right: true },
    ]),
  );
  lines.push('', ...healthHistogram(d.health, out.tty));
  lines.push('');
  if (o.deployments.length === 0) lines.push('Deployments  none in progress');
  else {
    lines.push(
      ...table(o.deployments, [
        { header: 'DEPLOYMENT', cell: (x) => x.id },
        { header: 'NAME', cell: (x) => x.name },
        { header: 'STATUS', cell: (x) => statusText(x) },
        { header: 'RING', cell: (x) => stageText(x) },
        { header: 'PROGRESS', cell: (x) => progressText(x.progress.devices, x.progress.counts, out.tty) },
        { header: 'STARTED', cell: (x) => ago(x.startedAt, now) },
      ]),
    );
  }
  if (o.halts.length > 0) {
    lines.push('', 'Recent halts');
    for (const h of o.halts) lines.push(`  ${h.id}  ${h.name}  ${h.status}: ${h.haltReason ?? ''}`);
  }
  return lines;
}

function durationText(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

export function taskLine(t: Record<string, number>): string {
  const n = (k: string): number => t[k] ?? 0;
  return [
    `${count(n('pending'))} pending`,
    `${count(n('in_progress'))} running`,
    `${count(n('completed'))} completed`,
    `${count(n('failed'))} failed`,
    `${count(n('dead'))} dead`,
    `${count(n('cancelled'))} cancelled`,
    `${count(n('expired'))} expired`,
  ].join(', ');
}

/** The 20 bands of 5 points as 5 bands of 20, each with a bar and its share. */
function healthHistogram(health: readonly number[], unicode: boolean): string[] {
  const bands = [0, 1, 2, 3, 4].map((k) => health.slice(k * 4, k * 4 + 4).reduce((a, b) => a + b, 0));
  const total = bands.reduce((a, b) => a + b, 0);
  const most = Math.max(1, ...bands);
  const width = Math.max(...bands.map((b) => count(b).length));
  const lines = ['HEALTH SCORE'];
  bands.forEach((b, k) => {
    const label = `${k * 20}–${k * 20 + 20}`.padStart(6);
    lines.push(`${label}  ${bar(b / most, 24, unicode)}  ${count(b).padStart(width)}  ${total === 0 ? '' : percent(b / total).padStart(4)}`.trimEnd());
  });
  return lines;
}

/** `in_progress`, or `paused (insufficient evidence)`. */
export function statusText(d: Pick<DeploymentSummary, 'status' | 'pauseReason'>): string {
  return d.status === 'paused' && d.pauseReason !== null ? `paused (${d.pauseReason.replace(/_/g, ' ')})` : d.status;
}

/** `dev (2/4), soaking`, or `-` before it starts. */
export function stageText(d: Pick<DeploymentSummary, 'stage' | 'status'>, stages?: number): string {
  if (d.stage === null || d.status === 'scheduled') return '-';
  const k = stages === undefined ? '' : ` ${d.stage.index + 1}/${stages}`;
  // The phase (dispatching, soaking) means something only while it rolls out.
  return `${d.stage.ring ?? '-'}${k}${d.status === 'in_progress' ? ` ${d.stage.phase}` : ''}`;
}

/** Executions that have an outcome (or were skipped), out of all. */
export function settled(counts: ExecutionCounts): number {
  return Object.entries(counts).reduce((sum, [state, n]) => (state === 'queued' || state === 'in_progress' ? sum : sum + n), 0);
}

export function progressText(devices: number, counts: ExecutionCounts, unicode: boolean): string {
  if (devices === 0) return 'no devices yet';
  const done = settled(counts);
  return `${bar(done / devices, 10, unicode)} ${percent(done / devices)} of ${plural(devices, 'device')}`;
}
