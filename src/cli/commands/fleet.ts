import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { path } from '../client/http.js';
import type { Column } from '../client/output.js';
import { ago, count, duration, keyValues, num, percent, plural, score, table } from '../client/output.js';
import { action, choice, clientOf, clientOptions, usage } from '../client/options.js';
import type { PagingFlags } from '../client/paging.js';
import { pagingOptions, printListing, wanted } from '../client/paging.js';
import type { Agent, DeviceDetail, DeviceSummary, RingMove, Rings } from '../client/types.js';

/** `agents`, `devices`, `device ID`, `rings`: the fleet. */
export function registerFleet(program: Command): void {
  registerAgents(program);
  registerDevices(program);
  registerRings(program);
}

// ---------------------------------------------------------------- agents

interface AgentFlags extends PagingFlags {
  status?: string;
  ring?: string;
  approval?: string;
  capability?: string;
}

function registerAgents(program: Command): void {
  const agents = clientOptions(
    pagingOptions(
      program
        .command('agents')
        .description('the agents: one line each, with their device\'s metrics (filters apply here; the API answers every agent at once)')
        .option('--status <status>', 'idle, busy or offline')
        .option('--ring <ring>', 'a ring name, or unassigned')
        .option('--approval <approval>', 'approved or pending (waiting for an admin: agents approve ID)')
        .option('--capability <type>', 'agents that offer this task type'),
      50,
      'agents',
      false,
    ),
  ).action(
    action(async (opts: AgentFlags, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const status = choice('--status', opts.status, ['idle', 'busy', 'offline'] as const);
      const approval = choice('--approval', opts.approval, ['approved', 'pending'] as const);
      const want = wanted(opts, 50);
      const all = (await api.get<{ agents: Agent[] }>('/api/v1/agents', { approval })).agents;
      const matching = all.filter((a) => (status === undefined || a.status === status) && (opts.ring === undefined || a.ring_assignment === opts.ring) && (opts.capability === undefined || a.capabilities.includes(opts.capability)));
      const shown = matching.slice(0, want === Infinity ? undefined : want);
      if (out.json) {
        out.jsonLine({ agents: shown, total: matching.length });
        return;
      }
      if (matching.length === 0) {
        const filtered = [status, approval, opts.ring, opts.capability].some((f) => f !== undefined);
        out.note(!filtered ? 'no agents' : all.length === 0 ? 'no agents match' : `no agents match (of ${plural(all.length, approval === undefined ? 'agent' : `${approval} agent`)})`);
        return;
      }
      const now = Date.now();
      const pending = shown.some((a) => a.approval === 'pending');
      const columns: Column<Agent>[] = [
        { header: 'AGENT', cell: (a) => a.slave_id },
        { header: 'STATUS', cell: (a) => a.status },
        ...(pending ? [{ header: 'APPROVAL', cell: (a: Agent) => a.approval }] : []),
        { header: 'RING', cell: (a) => a.ring_assignment },
        { header: 'HEALTHY', cell: (a) => (a.device_info === null ? '-' : a.device_info.is_healthy ? 'yes' : 'no') },
        { header: 'BATTERY', cell: (a) => batteryText(a.device_info?.battery_level ?? null, a.device_info?.battery_charging ?? null, a.device_info === null), right: true },
        { header: 'CPU', cell: (a) => pct(a.device_info?.cpu_usage), right: true },
        { header: 'MEM', cell: (a) => pct(a.device_info?.memory_usage), right: true },
        { header: 'DISK', cell: (a) => pct(a.device_info?.disk_usage), right: true },
        { header: 'RUNNING', cell: (a) => String(a.assigned_tasks.length), right: true },
        { header: 'DONE', cell: (a) => count(a.completed_tasks), right: true },
        { header: 'FAILED', cell: (a) => count(a.failed_tasks), right: true },
        { header: 'LAST HEARD', cell: (a) => ago(a.last_heartbeat, now) },
        { header: 'TASK TYPES', cell: (a) => a.capabilities.join(',') },
      ];
      out.lines(table(shown, columns));
      if (shown.length < matching.length) out.note(`${count(shown.length)} of ${plural(matching.length, 'agent')} shown: --all for every one, or --limit N`);
    }),
  );

  clientOptions(agents.command('approve <id>').description('let an agent that waits for approval work (admin)')).action(
    action(async (id: string, _opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const agent = await api.post<Agent>(path('/api/v1/agents', id, 'approve'));
      if (out.json) out.jsonLine(agent);
      else out.line(`approved ${agent.slave_id}: it now takes tasks`);
    }),
  );

  clientOptions(agents.command('remove <id>').description('decommission an agent: it is told to shut down, and its running tasks go back to the queue')).action(
    action(async (id: string, _opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const answer = await api.delete<{ agent_id: string; status: string }>(path('/api/v1/agents', id));
      if (out.json) out.jsonLine(answer);
      else out.line(`${answer.agent_id} ${answer.status}`);
    }),
  );
}

function pct(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : `${Math.round(v)}%`;
}

function batteryText(level: number | null, charging: boolean | null, unknown: boolean): string {
  if (unknown) return '-';
  if (level === null) return 'none';
  return `${Math.round(level)}%${charging === true ? '+' : ''}`;
}

// ---------------------------------------------------------------- devices

interface DeviceFlags extends PagingFlags {
  ring?: string;
  status?: string;
  healthBelow?: string;
  site?: string;
  department?: string;
  model?: string;
  sort?: string;
}

const DEVICE_COLUMNS: Column<DeviceSummary>[] = [
  { header: 'DEVICE', cell: (d) => d.id },
  { header: 'RING', cell: (d) => `${d.ring}${d.held ? ' (held)' : d.pinned ? ' (pinned)' : ''}` },
  { header: 'STATUS', cell: (d) => d.status },
  { header: 'SCORE', cell: (d) => score(d.score), right: true },
  { header: 'HEALTHY', cell: (d) => (d.healthy === null ? '-' : d.healthy ? 'yes' : 'no') },
  { header: 'SITE', cell: (d) => d.site ?? '-' },
  { header: 'DEPARTMENT', cell: (d) => d.department ?? '-' },
  { header: 'MODEL', cell: (d) => d.model ?? '-' },
  { header: 'OS', cell: (d) => d.osName ?? '-' },
  { header: 'TAGS', cell: (d) => d.tags.join(',') },
];

function registerDevices(program: Command): void {
  clientOptions(
    pagingOptions(
      program
        .command('devices')
        .description('the devices, page by page over a fleet of any size (filters and sorting by the API)')
        .option('--ring <ring>', 'a ring name, or unassigned')
        .option('--status <status>', 'online, offline or decommissioned')
        .option('--health-below <score>', 'devices whose health score is below this')
        .option('--site <site>', 'this site only')
        .option('--department <department>', 'this department only')
        .option('--model <model>', 'this model only')
        .option('--sort <order>', 'id (registration order, the default), score (worst first) or -score (best first)'),
      50,
      'devices',
    ),
  ).action(
    action(async (opts: DeviceFlags, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const status = choice('--status', opts.status, ['online', 'offline', 'decommissioned'] as const);
      const sort = choice('--sort', opts.sort, ['id', 'score', '-score'] as const);
      if (opts.healthBelow !== undefined && !/^\d{1,3}(\.\d+)?$/.test(opts.healthBelow)) throw usage(`--health-below: must be a score from 0 to 100 (got "${opts.healthBelow}")`);
      const want = wanted(opts, 50);
      const query = { ring: opts.ring, status, healthBelow: opts.healthBelow, site: opts.site, department: opts.department, model: opts.model, sort };
      const fetchPage = async (cursor: string | undefined, limit: number) => {
        const page = await api.get<{ devices: DeviceSummary[]; nextCursor: string | null }>('/api/v1/devices', { ...query, limit, cursor });
        return { items: page.devices, next: page.nextCursor };
      };
      await printListing(out, { fetchPage, want, pageMax: 1000, cursor: opts.cursor, key: 'devices', columns: DEVICE_COLUMNS, none: 'no devices match', what: 'devices', again: 'orchestrator devices (same filters)' });
    }),
  );

  clientOptions(program.command('device <id>').description("one device: its ring, health score factor by factor, metrics and ring moves")).action(
    action(async (id: string, _opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const device = await api.get<DeviceDetail>(path('/api/v1/devices', id));
      if (out.json) {
        out.jsonLine(device);
        return;
      }
      const moves = (await api.get<{ moves: RingMove[] }>(path('/api/v1/devices', id, 'ring-history'))).moves;
      const now = Date.now();
      const m = device.metrics;
      out.lines(
        keyValues([
          ['Device', device.id],
          ['Status', device.status],
          ['Ring', `${device.ring}${device.held ? ' (held by a rule: in no ring and no rollout)' : device.pin !== null ? ` (pinned by ${device.pin.source === 'manual' ? 'an operator' : 'a rule'} to ${device.pin.ring})` : ''}${device.movedAt === null || Date.parse(device.movedAt) <= 0 ? '' : `, moved ${ago(device.movedAt, now)}`}`],
          ['Health', device.score === null ? 'not scored yet' : `${score(device.score)} of 100${device.healthy === false ? ', failing the health rule' : ''}`],
          ['Attributes', attributesText(device)],
          m === null
            ? ['Metrics', 'none yet']
            : [
                'Metrics',
                `battery ${batteryText(m.battery, m.charging, false)}, CPU ${pct(m.cpu)}, memory ${pct(m.memory)}, disk ${pct(m.disk)}; drain ${num(m.batteryDrainPerHour)} %/h, CPU trend ${num(m.cpuTrendPerHour)} points/h, deployment impact ${num(m.deploymentImpact, 2)}; sampled ${ago(m.sampledAt, now)}`,
              ],
          device.inflightExecutions > 0 ? ['Updating', `${plural(device.inflightExecutions, 'deployment execution')} in flight (it does not move meanwhile)`] : null,
        ]),
      );
      if (device.health !== null && device.health.factors.length > 0) {
        out.line();
        out.lines(
          table(device.health.factors, [
            { header: 'FACTOR', cell: (f) => f.factor },
            { header: 'VALUE', cell: (f) => num(f.value), right: true },
            { header: 'WEIGHT', cell: (f) => num(f.weight), right: true },
            { header: 'BADNESS', cell: (f) => percent(f.badness), right: true },
            { header: 'POINTS', cell: (f) => (f.contribution === 0 ? '0' : num(f.contribution)), right: true },
          ]),
        );
      }
      out.line();
      if (moves.length === 0) out.line('Ring moves: none');
      else {
        out.line(`Ring moves (last ${Math.min(5, moves.length)} of ${moves.length}):`);
        out.lines(table(moves.slice(-5), [
          { header: '  WHEN', cell: (mv) => `  ${ago(mv.at, now)}` },
          { header: 'FROM', cell: (mv) => mv.from },
          { header: 'TO', cell: (mv) => mv.to },
          { header: 'REASON', cell: (mv) => mv.reason },
        ]));
      }
    }),
  );
}

function attributesText(d: DeviceSummary): string {
  const pairs: [string, string | null][] = [['site', d.site], ['department', d.department], ['manufacturer', d.manufacturer], ['model', d.model], ['OS', d.osName]];
  const set = pairs.filter(([, v]) => v !== null).map(([k, v]) => `${k} ${v ?? ''}`);
  if (d.tags.length > 0) set.push(`tags ${d.tags.join(', ')}`);
  return set.length === 0 ? 'none' : set.join(', ');
}

// ---------------------------------------------------------------- rings

function ringTable(r: Rings): string[] {
  const rows = [...r.rings];
  return [
    ...table(rows, [
      { header: 'RING', cell: (g) => g.name },
      { header: 'SHARE', cell: (g) => percent(g.share), right: true },
      { header: 'TARGET', cell: (g) => count(g.target), right: true },
      { header: 'DEVICES', cell: (g) => count(g.size), right: true },
      { header: 'ONLINE', cell: (g) => count(g.online), right: true },
      { header: 'UNHEALTHY', cell: (g) => count(g.health.unhealthy), right: true },
      { header: 'SCORE P10', cell: (g) => score(g.health.p10), right: true },
      { header: 'P50', cell: (g) => score(g.health.p50), right: true },
      { header: 'P90', cell: (g) => score(g.health.p90), right: true },
      { header: 'UNHEALTHY OK', cell: (g) => (g.allowUnhealthy ? 'yes' : 'no') },
      { header: 'MIN-MAX', cell: (g) => (g.min === null && g.max === null ? '-' : `${g.min ?? 0}-${g.max ?? '∞'}`) },
    ]),
    '',
    ...keyValues([
      ['Policy', `${r.policy}, hysteresis ${num(r.hysteresis)} points, dwell ${duration(r.dwellMs)}`],
      ['Devices', `${count(r.total)} total, ${count(r.unassigned)} unassigned, ${count(r.held)} held`],
      ['Pins', r.config.pins.length === 0 ? 'none' : r.config.pins.map((p) => `${p.rule} → ${p.ring}`).join('; ')],
      ['Holds', r.config.holds.length === 0 ? 'none' : r.config.holds.join('; ')],
    ]),
  ];
}

/** A JSON file's value (`-`: standard input), or a usage error naming the file. */
export function readJsonFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw usage(`${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw usage(`${file}: not JSON (${(err as Error).message})`);
  }
}

function registerRings(program: Command): void {
  const rings = clientOptions(program.command('rings').description('the deployment rings: each ring against its target, with its health; the policy, pins and holds')).action(
    action(async (_opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const r = await api.get<Rings>('/api/v1/rings');
      if (out.json) out.jsonLine(r);
      else out.lines(ringTable(r));
    }),
  );

  clientOptions(
    rings
      .command('set <file>')
      .description('replace the ring configuration with a JSON file (- for standard input; the body of PUT /api/v1/rings, admin): checked whole, stored, and every ring rebalanced'),
  ).action(
    action(async (file: string, _opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const body = readJsonFile(file);
      const answer = await api.put<{ moves: number; rings: Rings['rings'] }>('/api/v1/rings', body);
      if (out.json) {
        out.jsonLine(answer);
        return;
      }
      out.line(`Ring configuration stored; ${plural(answer.moves, 'device')} moved.`);
      out.line();
      out.lines(ringTable(await api.get<Rings>('/api/v1/rings')));
    }),
  );

  clientOptions(rings.command('rebalance').description('rebalance every ring now (operator)')).action(
    action(async (_opts: unknown, cmd: Command) => {
      const { api, out } = clientOf(cmd);
      const answer = await api.post<{ moves: number; planMs: number; totalMs: number }>('/api/v1/rings/rebalance');
      if (out.json) out.jsonLine(answer);
      else out.line(`Rebalanced: ${plural(answer.moves, 'device')} moved (planned in ${num(answer.planMs)} ms, ${num(answer.totalMs)} ms in all).`);
    }),
  );
}

