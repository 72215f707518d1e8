/**
 * The seed's basic example, on this orchestrator: start it, spawn agents, submit a task of each type, print
 * each result and the cluster's status. Everything goes through the prototype's HTTP API (`/spawn_agent`,
 * `/submit_task`, `/status/{id}`, `/cluster_status`), which this orchestrator keeps, plus one read of
 * `/api/v1/agents` to show what each agent offers.
 *
 *   npm run example:basic                           # builds, then runs this file with tsx
 *   ORCH_SERVER=http://127.0.0.1:8000 npx tsx examples/basic.ts   # against an orchestrator already running
 *
 * With ORCH_SERVER the tasks go to whichever agents of that orchestrator offer their type (ORCH_TOKEN if it
 * wants a token). Exits 0 when every task completed, 1 (saying why) otherwise.
 */
import { compact, expectThat, runExample, startOrchestrator, step, table, waitFor } from './lib.js';

/** An agent as `/api/v1/agents` shows it (the fields this example prints). */
interface AgentView {
  slave_id: string;
  status: string;
  connectivity: string;
  capabilities: string[];
  ring_assignment: string;
  completed_tasks: number;
  device_info: { name: string; battery_level: number | null; battery_charging: boolean | null; cpu_usage: number; memory_usage: number; is_healthy: boolean };
}

/** A task as `/status/{task_id}` shows it. */
interface TaskStatus {
  task_id: string;
  task_type: string;
  status: 'pending' | 'in_progress' | 'completed' | 'failed' | 'cancelled';
  assigned_to: string | null;
  result: unknown;
  error: string | null;
  attempts: number;
  started_at: string | null;
  completed_at: string | null;
}

interface ClusterStatus {
  master_id: string;
  total_slaves: number;
  active_slaves: number;
  idle_slaves: number;
  offline_slaves: number;
  healthy_devices: number;
  total_devices: number;
  total_tasks: number;
  pending_tasks: number;
  in_progress_tasks: number;
  completed_tasks: number;
  failed_tasks: number;
  cancelled_tasks: number;
  ring_distribution: Record<string, number>;
  queue_stats: Record<string, { sent: number; received: number; dropped: number }>;
}

/** One task of each of the five types, as the seed's `/submit_task` takes them. */
const TASKS: { task_type: string; parameters: Record<string, unknown>; priority: number; what: string }[] = [
  { task_type: 'process_data', parameters: { data: [3, 1, 4, 1, 5, 9, 2, 6, 5, 3] }, priority: 5, what: 'statistics of a list of numbers' },
  { task_type: 'process_data', parameters: { report: 'weekly-usage', rows: 1200 }, priority: 1, what: 'a digest of parameters without data' },
  { task_type: 'health_check', parameters: {}, priority: 3, what: "the device's metrics and the seed's health rule" },
  { task_type: 'deploy', parameters: { version: '2.4.1' }, priority: 2, what: 'install version 2.4.1 on one device' },
  { task_type: 'analyze_risk', parameters: {}, priority: 3, what: "the risk of updating the device now" },
  { task_type: 'monitor', parameters: { durationSec: 2, intervalSec: 0.5 }, priority: 0, what: 'readings every 0.5 s for 2 s' },
];

runExample(async (cleanup) => {
  // 1. Start the orchestrator: on its first start it spawns DEFAULT_AGENTS simulated agents and adds the
  //    prototype's demo asset (which gets an agent of its own). Short heartbeats make a quick example.
  step(process.env.ORCH_SERVER ? `Using the orchestrator at ${process.env.ORCH_SERVER} (ORCH_SERVER)` : 'Starting the orchestrator');
  const orch = await startOrchestrator({ allowRunning: true, env: { DEFAULT_AGENTS: '2', HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '5s' } });
  cleanup(orch.stop);
  const api = orch.api;
  if (orch.stdout() !== '') console.log(orch.stdout().trimEnd().replace(/^/gm, '  | '));
  console.log(`  API at ${api.url}${api.token !== null ? ' (every request carries an API token: Authorization: Bearer …)' : ''}`);
  if (orch.dataDir !== null) console.log(`  data in ${orch.dataDir} (removed at the end)`);

  // 2. Spawn two more simulated agents. Each gets 1–3 of the five task types (types no agent offers yet go
  //    first, so the fleet can run every type) and random device metrics; it registers and heartbeats.
  step('Spawning agents');
  const spawned: string[] = [];
  for (let i = 0; i < 2; i++) {
    const { agent_id } = await api.post<{ agent_id: string }>('/spawn_agent');
    spawned.push(agent_id);
    console.log(`  POST /spawn_agent -> ${agent_id}`);
  }

  // 3. Wait until the new agents have registered and the orchestrator has placed them in a deployment ring
  //    (from their health score), then list the fleet.
  const agents = await waitFor(
    'the spawned agents to come online and be placed in a ring',
    async () => {
      const { agents } = await api.get<{ agents: AgentView[] }>('/api/v1/agents');
      const ours = agents.filter((a) => spawned.includes(a.slave_id));
      return ours.length === spawned.length && ours.every((a) => a.connectivity === 'online' && a.ring_assignment !== 'unassigned') ? agents : undefined;
    },
    10_000,
  );
  console.log(`  GET /list_agents -> ${(await api.get<{ agents: string[] }>('/list_agents')).agents.length} agents`);
  console.log(
    table(
      agents.map((a) => ({
        agent: a.slave_id,
        device: a.device_info.name,
        status: a.connectivity === 'online' ? a.status : a.connectivity,
        ring: a.ring_assignment,
        battery: a.device_info.battery_level === null ? null : `${a.device_info.battery_level}%${a.device_info.battery_charging ? '+' : ''}`,
        cpu: `${a.device_info.cpu_usage}%`,
        memory: `${a.device_info.memory_usage}%`,
        healthy: a.device_info.is_healthy ? 'yes' : 'no',
        offers: a.capabilities.join(','),
      })),
    ),
  );
  console.log('  (battery: + means charging)');

  // 4. Submit one task of each type. `/submit_task` answers once the task is committed to disk; the queue
  //    runs higher priorities first, each on an agent that offers its type.
  step('Submitting a task of each type');
  const submitted: { id: string; type: string; what: string }[] = [];
  for (const t of TASKS) {
    const { task_id } = await api.post<{ task_id: string }>('/submit_task', { task_type: t.task_type, parameters: t.parameters, priority: t.priority });
    submitted.push({ id: task_id, type: t.task_type, what: t.what });
    console.log(`  POST /submit_task ${compact({ task_type: t.task_type, parameters: t.parameters, priority: t.priority })} -> ${task_id}`);
  }

  // 5. Follow each task with `/status/{task_id}` until it ends, then print what its agent answered.
  step('Results');
  const ended = await waitFor(
    'every task to end',
    async () => {
      const all = await Promise.all(submitted.map((s) => api.get<TaskStatus>(`/status/${s.id}`)));
      return all.every((t) => t.status === 'completed' || t.status === 'failed' || t.status === 'cancelled') ? all : undefined;
    },
    20_000,
    250,
  );
  console.log(
    table(
      ended.map((t) => ({
        task: t.task_id.slice(0, 8),
        type: t.task_type,
        status: t.status,
        agent: t.assigned_to,
        attempts: t.attempts,
        ms: t.started_at && t.completed_at ? Date.parse(t.completed_at) - Date.parse(t.started_at) : null,
      })),
    ),
  );
  for (const [i, t] of ended.entries()) {
    console.log(`\n  ${t.task_type} (${submitted[i]?.what}):`);
    console.log(`    ${t.status === 'completed' ? describeResult(t.task_type, t.result) : `${t.status}: ${t.error}`}`);
    const raw = compact(t.result);
    console.log(`    result: ${raw.length > 150 ? `${raw.slice(0, 150)}…` : raw}`);
  }
  const notCompleted = ended.filter((t) => t.status !== 'completed');
  expectThat(notCompleted.length === 0, `${notCompleted.length} task(s) did not complete: ${notCompleted.map((t) => `${t.task_type} ${t.task_id} ${t.status}: ${t.error}`).join('; ')}`);

  // 6. The cluster's status, as the prototype reports it.
  step('Cluster status (GET /cluster_status)');
  const c = await api.get<ClusterStatus>('/cluster_status');
  console.log(`  master ${c.master_id}`);
  console.log(
    table([
      { what: 'agents', total: c.total_slaves, detail: `${c.active_slaves} busy, ${c.idle_slaves} idle, ${c.offline_slaves} offline` },
      { what: 'devices', total: c.total_devices, detail: `${c.healthy_devices} healthy` },
      { what: 'tasks', total: c.total_tasks, detail: `${c.completed_tasks} completed, ${c.failed_tasks} failed, ${c.pending_tasks} pending, ${c.in_progress_tasks} running, ${c.cancelled_tasks} cancelled` },
      { what: 'rings', total: Object.values(c.ring_distribution).reduce((a, b) => a + b, 0), detail: Object.entries(c.ring_distribution).map(([r, n]) => `${r} ${n}`).join(', ') },
    ]),
  );
  console.log('\n  Messages per agent (sent by the master, received from the agent, dropped):');
  console.log(table(Object.entries(c.queue_stats).map(([agent, q]) => ({ agent, sent: q.sent, received: q.received, dropped: q.dropped }))));
  expectThat(c.completed_tasks >= TASKS.length, `cluster_status counts ${c.completed_tasks} completed tasks, expected at least ${TASKS.length}`);
});

/** The results of the five task types (docs/api.md, "Task types"). */
interface Results {
  process_data: { count: number; sum: number; mean: number | null; min: number | null; max: number | null; median: number | null } | { fields: number; bytes: number; sha256: string };
  health_check: { battery_level: number | null; battery_charging: boolean | null; cpu_usage: number; memory_usage: number; disk_usage: number; hostname: string; os_version: string; is_healthy: boolean; issues: string[] };
  deploy: { installed: string; previous: string | null };
  analyze_risk: { risk_score: number; level: string; factors: string[] };
  monitor: { durationSec: number; intervalSec: number; samples: unknown[]; average: { battery_level: number | null; cpu_usage: number; memory_usage: number } };
}

/** One line for a task's result, from the fields its type answers with. */
function describeResult(type: string, result: unknown): string {
  switch (type) {
    case 'process_data': {
      const r = result as Results['process_data'];
      return 'count' in r ? `count ${r.count}, sum ${r.sum}, mean ${r.mean}, min ${r.min}, max ${r.max}, median ${r.median}` : `${r.fields} fields, ${r.bytes} bytes of canonical JSON, sha256 ${r.sha256.slice(0, 16)}…`;
    }
    case 'health_check': {
      const r = result as Results['health_check'];
      const battery = r.battery_level === null ? 'no battery' : `battery ${r.battery_level}%${r.battery_charging ? ' (charging)' : ''}`;
      return `${r.hostname} (${r.os_version}): ${battery}, cpu ${r.cpu_usage}%, memory ${r.memory_usage}%, disk ${r.disk_usage}%; ${r.is_healthy ? 'healthy' : `unhealthy: ${r.issues.join(', ')}`}`;
    }
    case 'deploy': {
      const r = result as Results['deploy'];
      return `installed ${r.installed} (previously ${r.previous ?? 'nothing'})`;
    }
    case 'analyze_risk': {
      const r = result as Results['analyze_risk'];
      return `risk ${r.risk_score}/100 (${r.level})${r.factors.length > 0 ? `; ${r.factors.slice(0, 3).join('; ')}` : ''}`;
    }
    case 'monitor': {
      const r = result as Results['monitor'];
      return `${r.samples.length} readings over ${r.durationSec} s, every ${r.intervalSec} s; average cpu ${r.average.cpu_usage}%, memory ${r.average.memory_usage}%, battery ${r.average.battery_level ?? '-'}%`;
    }
    default:
      return compact(result);
  }
}
