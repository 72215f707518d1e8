/**
 * The seed's advanced example, on this orchestrator: a staged deployment watched by health gates and
 * explained by the advisor.
 *
 *   npm run example:advanced      # builds, then runs this file with tsx
 *
 * The story:
 *   1. A fleet of 24 laptops (12 Dell Latitude 7440, 12 Lenovo ThinkPad T14) enrolls as agents, all on
 *      release 2.4.0, and is placed in rings canary → dev → prod by health, the least healthy first.
 *   2. A stage gate is written in words and read by the advisor into the plan's schema.
 *   3. Release 2.4.1 goes through every ring: the gates pass it.
 *   4. Release 2.5.0 is next. The advisor rates the risk before it starts; it starts; on the Latitudes (and
 *      only there) it pins a CPU core. The canary's gate sees those devices' CPU rise against their own
 *      baselines and halts the deployment before dev and prod get it.
 *   5. The advisor's analyser explains the halt (what moved, on which devices, which model carries it)
 *      and recommends a rollback; the example rolls back and shows each device back on 2.4.1 and its CPU
 *      back down.
 *
 * The laptops are simulated by this process (examples/fleet.ts), each one an agent of the agent protocol;
 * what 2.5.0 does to a Latitude is decided there (`releaseEffect`), and the orchestrator learns it only from
 * their heartbeats. Its gates and advisor judge what they see: nothing here tells them the release is bad.
 *
 * The advisor runs its built-in analyser (offline, no model). With Amazon Bedrock (Nova Pro by default) it
 * would have a language model write the advice on request instead, from the same figures:
 *   ADVISOR_PROVIDER=bedrock AWS_REGION=us-east-1 AWS_PROFILE=… npm run example:advanced
 * (or ADVISOR_PROVIDER=openai ADVISOR_BASE_URL=http://127.0.0.1:11434/v1 ADVISOR_MODEL=qwen2.5:7b for a
 * local model; see docs/advisor.md). Halt explanations are always the analyser's.
 *
 * Exits 0 when the good release completed, the bad one was halted by a gate, explained and rolled back;
 * 1, saying what was not so, otherwise.
 */
import type { LaptopSpec, ReleaseEffect } from './fleet.js';
import { enrollFleet } from './fleet.js';
import type { Api, EventStream } from './lib.js';
import { expectThat, openEventStream, runExample, startOrchestrator, step, table, waitFor } from './lib.js';

const BAD_MODEL = 'Latitude 7440';

/**
 * What each release does to a laptop: 2.5.0 ships a driver that spins on the Latitude 7440's chipset,
 * +40 points of CPU and +8 of memory; the others change nothing measurable.
 */
const releaseEffect: ReleaseEffect = (version, spec) => (version === '2.5.0' && spec.model === BAD_MODEL ? { cpu: 40, memory: 8 } : {});

// ------------------------------------------------------------------------------------------------ the API's shapes

interface GateEvaluation {
  stage: number;
  ring: string;
  /** An ISO date in the API's answers, ms since the epoch in the event stream. */
  at: string | number;
  verdict: 'pass' | 'fail' | 'wait' | 'override' | 'skip' | 'insufficient_evidence';
  reason: string;
  figures: Record<string, number>;
}

interface Execution {
  deviceId: string;
  ring: string;
  state: string;
  reason: string | null;
  taskId: string | null;
  rollbackTaskId: string | null;
  baseline: { cpu: number; memory: number } | null;
  observed: { cpu: number; memory: number } | null;
}

interface Deployment {
  id: string;
  name: string;
  status: 'scheduled' | 'in_progress' | 'paused' | 'halted' | 'completed' | 'cancelled' | 'rolled_back';
  stage: { index: number; ring: string; phase: string } | null;
  haltReason: string | null;
  outcome: { summary: string; updated: number; devices: number } | null;
  endedAt: string | null;
  progress: { rings: { ring: string; reached: boolean; devices: number; counts: Record<string, number> }[] };
  executions: Execution[];
  evaluations: GateEvaluation[];
  haltAdvice: { id: string; url: string; summary: string } | null;
}

interface Advice {
  id: string;
  trigger: string;
  decision: string | null;
  risk: string;
  confidence: number;
  rings: { ring: string; risk: string; reasons: string[] }[];
  summary: string;
  evidence: Record<string, unknown>;
  provider: { name: string; model: string | null; fallback: string | null };
}

interface DeviceSummary {
  id: string;
  ring: string;
  model: string | null;
  score: number | null;
}

// ------------------------------------------------------------------------------------------------ the example

runExample(async (cleanup) => {
  // 1. An orchestrator of our own with no simulated agents of its own (DEFAULT_AGENTS=0): the fleet is the
  //    laptops below. Heartbeats every 500 ms, so that a gate can watch each device for two seconds after its
  //    update and see several heartbeats of the release in that time.
  step('Starting the orchestrator');
  const provider = process.env.ADVISOR_PROVIDER || 'none';
  const orch = await startOrchestrator({ env: { DEFAULT_AGENTS: '0', HEARTBEAT_INTERVAL: '500ms', AGENT_TIMEOUT: '5s', ADVISOR_PROVIDER: provider } });
  cleanup(orch.stop);
  const api = orch.api;
  console.log(`  data in ${orch.dataDir} (removed at the end)`);
  console.log(`  API at ${api.url}`);
  if (provider === 'none') {
    console.log('  advisor: the built-in analyser (offline). For a language model on requested advice, Amazon Nova on Bedrock:');
    console.log('    ADVISOR_PROVIDER=bedrock AWS_REGION=us-east-1 AWS_PROFILE=<profile> npm run example:advanced');
  } else {
    console.log(`  advisor: ${provider} writes requested advice, checked against the built-in analyser (which writes halt explanations)`);
  }

  // 2. Rings for a small fleet: three rings instead of the default four (canary 5%, dev 15%, stage 30%,
  //    prod 50%), so that the canary has six devices. The default policy, `health`, fills the rings in
  //    order from the least healthy devices up: the devices a release is most likely to hurt go first.
  step('Ring configuration (PUT /api/v1/rings)');
  await api.put('/api/v1/rings', {
    rings: [
      { name: 'canary', share: 0.25 },
      { name: 'dev', share: 0.25 },
      { name: 'prod', share: 0.5 },
    ],
  });
  console.log('  canary 25%, dev 25%, prod 50%; policy health (the least healthy devices first)');

  // 3. The fleet: 24 laptops enroll with the enrollment token and heartbeat their metrics.
  step('Enrolling 24 laptops on release 2.4.0');
  const specs = fleetSpecs();
  const laptops = await enrollFleet(api, orch.enrollToken ?? '', specs, '2.4.0', releaseEffect);
  cleanup(() => Promise.all(laptops.map((l) => l.stop())).then(() => undefined));
  console.log(`  ${laptops.length} laptops enrolled (POST /api/v1/agent/enroll); each heartbeats its metrics every ${laptops[0]?.heartbeatMs} ms, as the orchestrator asked`);
  // Each device is placed by its first heartbeat; once all are, one full rebalance orders the whole fleet.
  await waitFor('every laptop to be placed in a ring', async () => ((await api.get<{ unassigned: number; total: number }>('/api/v1/rings')).total === laptops.length && (await api.get<{ unassigned: number }>('/api/v1/rings')).unassigned === 0 ? true : undefined), 10_000);
  await api.post('/api/v1/rings/rebalance');
  await printRings(api);

  // 4. The gate, in words. The advisor's grammar (or a model, when one is configured) reads it into the
  //    plan's gate fields; what it did not understand is said, never guessed.
  step('The stage gate, in words (POST /api/v1/gating/parse)');
  const words = 'halt if cpu rises more than 20 points, or memory grows more than 15 points, or if more than 5% fail; observe 2 seconds';
  const parsed = await api.post<{ gate: Record<string, number>; understood: unknown[]; notUnderstood: { phrase: string; why: string }[] }>('/api/v1/gating/parse', { text: words });
  console.log(`  "${words}"`);
  console.log(`  -> gate ${JSON.stringify(parsed.gate)}`);
  for (const n of parsed.notUnderstood) console.log(`  not understood: "${n.phrase}": ${n.why}`);
  expectThat(parsed.gate.maxCpuRegression === 20 && parsed.gate.observeMs === 2000, `the gate was not read as expected: ${JSON.stringify(parsed.gate)}`);
  // One stage per ring: 10 devices a second, the gate above, and a soak of one second once the ring is done.
  const plan = { stages: ['canary', 'dev', 'prod'].map((ring) => ({ ring, rate: { maxPerMinute: 600 }, soakMs: 1000, gate: parsed.gate })) };

  // 5. A good release: 2.4.1 goes ring by ring; every gate passes it.
  step('Release 2.4.1: canary -> dev -> prod');
  const good = await rollout(api, { name: 'agent 2.4.1', payload: { type: 'deploy', params: { version: '2.4.1' } }, plan, start: true }, ['completed', 'halted', 'paused', 'cancelled']);
  expectThat(good.status === 'completed', `release 2.4.1 should have completed, but it is ${good.status}: ${good.haltReason ?? ''}`);
  console.log(`  completed: ${good.outcome?.summary}`);

  // 6. The bad release, created without starting it, so that the advisor can rate it first: the fleet's
  //    risk per ring (from each device's health), and the deployment's (nothing updated yet to judge).
  step('Release 2.5.0: the risk before it starts (POST /api/v1/advice)');
  const created = await api.post<Deployment>('/api/v1/deployments', {
    name: 'agent 2.5.0',
    payload: { type: 'deploy', params: { version: '2.5.0' } },
    // If it is rolled back, devices go back to the release they ran.
    rollbackPayload: { type: 'deploy', params: { version: '2.4.1' } },
    plan,
  });
  printAdvice(await api.post<Advice>('/api/v1/advice', { subject: { fleet: true } }), 1);
  console.log();
  printAdvice(await api.post<Advice>('/api/v1/advice', { subject: { deployment: created.id } }), 1);

  // 7. Start it and follow it on the event stream: each gate evaluation as it is made, until it ends.
  step('Release 2.5.0: canary -> dev -> prod');
  const bad = await rollout(api, created.id, ['completed', 'halted', 'paused', 'cancelled']);
  expectThat(bad.status === 'halted', `release 2.5.0 should have been halted by a gate, but it is ${bad.status}${bad.outcome ? `: ${bad.outcome.summary}` : ''}`);
  const failed = bad.evaluations.find((e) => e.verdict === 'fail');
  expectThat(failed !== undefined, 'the deployment halted without a failing gate evaluation');
  console.log(`\n  HALTED: ${bad.haltReason}`);
  console.log(`  rings reached: ${bad.progress.rings.filter((r) => r.reached).map((r) => r.ring).join(', ')}; not reached: ${bad.progress.rings.filter((r) => !r.reached).map((r) => r.ring).join(', ') || 'none'}`);

  // 8. The explanation: the analyser writes it as soon as the deployment halts, and the deployment links it
  //    as `haltAdvice` once it is stored.
  step("The advisor's explanation of the halt (haltAdvice)");
  const link = await waitFor('the explanation of the halt', async () => (await api.get<Deployment>(`/api/v1/deployments/${bad.id}`)).haltAdvice ?? undefined, 10_000, 100);
  const explanation = await api.get<Advice>(link.url);
  expectThat(explanation.decision === 'rollback' || explanation.decision === 'halt', `the explanation of the halt decides ${explanation.decision}`);
  printAdvice(explanation);
  // The devices the release touched, worst first, with the model the orchestrator knows them by.
  const devices = await api.get<{ devices: DeviceSummary[] }>('/api/v1/devices?limit=100');
  const modelOf = new Map(devices.devices.map((d) => [d.id, d.model]));
  const impact = await api.get<{ devices: { deviceId: string; ring: string; cpuDelta: number; memoryDelta: number; score: number }[] }>(`/api/v1/deployments/${bad.id}/impact?limit=10`);
  console.log('\n  Most affected devices (GET /api/v1/deployments/{id}/impact):');
  console.log(table(impact.devices.map((d) => ({ device: d.deviceId, model: modelOf.get(d.deviceId), ring: d.ring, 'cpu +': round1(d.cpuDelta), 'memory +': round1(d.memoryDelta) }))));

  // 9. Roll back: every device the release reached gets the rollback payload (2.4.1). The deployment is
  //    rolled_back at once, and `endedAt` is set when every one of those devices has answered.
  //    (POST /api/v1/advice/{id}/apply would apply the advisor's decision the same way.)
  step('Rollback (POST /api/v1/deployments/{id}/rollback)');
  const rolled = await api.post<Deployment>(`/api/v1/deployments/${bad.id}/rollback`);
  console.log(`  status: ${rolled.status}`);
  const done = await waitFor('every device to answer the rollback', async () => {
    const d = await api.get<Deployment>(`/api/v1/deployments/${bad.id}`);
    return d.endedAt !== null ? d : undefined;
  }, 20_000, 250);
  const touched = done.executions.filter((e) => e.rollbackTaskId !== null);
  expectThat(touched.length > 0, 'the rollback sent nothing to any device');
  const rows: Record<string, unknown>[] = [];
  for (const e of touched) {
    // What the device answered to its rollback task (a deploy of 2.4.1), and its CPU in its first heartbeat
    // after that.
    const task = await api.get<{ status: string; completedAt: string | null; result: { installed: string; previous: string } | null }>(`/api/v1/tasks/${e.rollbackTaskId}`);
    expectThat(e.state === 'rolled_back' && task.result?.installed === '2.4.1', `device ${e.deviceId} was not rolled back to 2.4.1: execution ${e.state}, rollback task ${task.status}`);
    const now = await waitFor(`a heartbeat of ${e.deviceId} after its rollback`, async () => {
      const d = await api.get<{ metrics: { cpu: number; sampledAt: string } }>(`/api/v1/devices/${e.deviceId}`);
      return Date.parse(d.metrics.sampledAt) > Date.parse(task.completedAt ?? '') ? d : undefined;
    }, 5000, 100);
    rows.push({ device: e.deviceId, model: modelOf.get(e.deviceId), ring: e.ring, execution: e.state, rollback: task.status, runs: task.result.installed, was: task.result.previous, 'cpu before': round1(e.baseline?.cpu), 'cpu on 2.5.0': round1(e.observed?.cpu), 'cpu now': round1(now.metrics.cpu) });
  }
  console.log(`  status: ${done.status}, every device answered by ${done.endedAt}`);
  console.log(table(rows));
  // The laptops' own view agrees: no device of the fleet runs 2.5.0 any more.
  const still = laptops.filter((l) => l.version === '2.5.0');
  expectThat(still.length === 0, `${still.length} laptop(s) still run 2.5.0: ${still.map((l) => l.agentId).join(', ')}`);
  const versions = new Map<string, number>();
  for (const l of laptops) versions.set(l.version, (versions.get(l.version) ?? 0) + 1);
  console.log(`\n  The laptops themselves: ${[...versions].map(([v, n]) => `${n} run ${v}`).join(', ')}`);
});

// ------------------------------------------------------------------------------------------------ helpers

/**
 * 12 Latitudes and 12 ThinkPads in three conditions, half of each model in each: 6 on battery at 45% with
 * busy memory (the least healthy), 6 on battery at 75%, and 12 on their chargers with little load.
 */
function fleetSpecs(): LaptopSpec[] {
  const specs: LaptopSpec[] = [];
  for (let i = 0; i < 24; i++) {
    const dell = i % 2 === 0;
    const condition = i < 6 ? { battery: 45, charging: false, memory: 60 } : i < 12 ? { battery: 75, charging: false, memory: 52 } : { battery: 90, charging: true, memory: 40 };
    specs.push({
      hostname: `${dell ? 'LAT' : 'TPD'}-${String(100 + i)}`,
      manufacturer: dell ? 'Dell Inc.' : 'LENOVO',
      model: dell ? BAD_MODEL : 'ThinkPad T14 Gen 4',
      osName: 'Windows 11 24H2',
      cpu: 8 + ((i * 7) % 15),
      disk: 40 + ((i * 11) % 15),
      ...condition,
    });
  }
  return specs;
}

/**
 * Creates a deployment (a body) or starts one (an id), following the event stream and printing each gate
 * evaluation and status change as it comes, until the deployment is in one of `until`; returns it then.
 */
async function rollout(api: Api, what: Record<string, unknown> | string, until: Deployment['status'][]): Promise<Deployment> {
  // The stream is opened first, so that nothing the deployment does is missed.
  const stream: EventStream = await openEventStream(api, 'deployment');
  const t0 = Date.now();
  const at = (ms: number): string => `+${((ms - t0) / 1000).toFixed(1)}s`.padStart(7);
  const printed = new Set<string>();
  const print = (ev: GateEvaluation): void => {
    const key = `${ev.stage}|${ev.verdict}|${ev.reason}`;
    if (printed.has(key)) return;
    printed.add(key);
    console.log(`  ${at(typeof ev.at === 'number' ? ev.at : Date.parse(ev.at))}  ${ev.ring.padEnd(6)} ${ev.verdict.toUpperCase().padEnd(5)} ${ev.reason}`);
  };
  try {
    const d = typeof what === 'string' ? await api.post<Deployment>(`/api/v1/deployments/${what}/start`) : await api.post<Deployment>('/api/v1/deployments', what);
    console.log(`  ${at(Date.now())}  ${d.name} (${d.id}): ${d.status}`);
    let last: { status: string; action: string; at: number } | null = null;
    const deadline = setTimeout(() => stream.close(), 45_000);
    for await (const e of stream.events) {
      if (e.data.deploymentId !== d.id) continue;
      if (e.event === 'deployment.gate_evaluated') print(e.data.evaluation as GateEvaluation);
      else if (e.event === 'deployment.changed') {
        last = { status: e.data.status as string, action: e.data.action as string, at: e.data.at as number };
        if ((until as string[]).includes(last.status)) break;
        console.log(`  ${at(last.at)}  ${last.status} (${last.action})`);
      }
    }
    clearTimeout(deadline);
    // The deployment as it ended, with every evaluation (the one that ended it is announced just after the
    // status change it caused, so it is printed from here).
    const final = await api.get<Deployment>(`/api/v1/deployments/${d.id}`);
    expectThat((until as string[]).includes(final.status), `deployment ${d.name} is still ${final.status} after 45 s`);
    for (const ev of final.evaluations) print(ev);
    if (last) console.log(`  ${at(last.at)}  ${last.status} (${last.action})`);
    console.log(table(final.progress.rings.map((r) => ({ ring: r.ring, reached: r.reached ? 'yes' : 'no', devices: r.devices, ...Object.fromEntries(Object.entries(r.counts).filter(([, n]) => n > 0)) }))));
    return final;
  } finally {
    stream.close();
  }
}

function round1(x: number | undefined): number | undefined {
  return x === undefined ? undefined : Math.round(x * 10) / 10;
}

async function printRings(api: Api): Promise<void> {
  const rings = await api.get<{ rings: { name: string; size: number; target: number; health: { p50: number | null }; byModel: Record<string, number> }[] }>('/api/v1/rings');
  console.log(table(rings.rings.map((r) => ({ ring: r.name, devices: r.size, target: r.target, 'health p50': r.health.p50, models: Object.entries(r.byModel).sort(([a], [b]) => a.localeCompare(b)).map(([m, n]) => `${n} ${m}`).join(', ') }))));
}

/** Advice as the advisor wrote it: who wrote it, the decision, the summary, and each ring's risk with its reasons. */
function printAdvice(a: Advice, reasonsPerRing = 10): void {
  console.log(`  advice ${a.id} (trigger: ${a.trigger}; written by the ${a.provider.name}${a.provider.model ? ` ${a.provider.model}` : ''}${a.provider.fallback ? `; fallback: ${a.provider.fallback}` : ''})`);
  if (a.decision !== null) console.log(`  decision: ${a.decision.toUpperCase()}, risk ${a.risk}, confidence ${a.confidence}`);
  else console.log(`  risk ${a.risk}, confidence ${a.confidence}`);
  console.log(`  ${a.summary}`);
  for (const r of a.rings) {
    const reasons = r.reasons.slice(0, reasonsPerRing);
    if (r.reasons.length > reasons.length) reasons.push(`(${r.reasons.length - reasons.length} more)`);
    reasons.forEach((why, i) => console.log(i === 0 ? `    ${r.ring.padEnd(7)} ${r.risk.padEnd(8)} ${why}` : `    ${''.padEnd(16)} ${why}`));
  }
}
