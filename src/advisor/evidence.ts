import type { AnalysisLimits, DeviceFacts, RingAnalysis, RingEvidence, UpdatedDevice } from '../domain/analysis.js';
import { analyseRing, DISK_LIMIT, EvidenceBuilder } from '../domain/analysis.js';
import type { Execution, Gate } from '../domain/deployment.js';
import type { DeviceMetrics } from '../domain/metrics.js';
import type { DeploymentView } from '../core/rollout-state.js';

/** Where the evidence of a deployment's devices comes from: the fleet (or a simulator's virtual fleet). */
export interface EvidenceSources {
  /** A device's model, site and OS; null for a device the fleet does not know. */
  facts(deviceId: string): Omit<DeviceFacts, 'id'> | null;
  /** Its metrics now, null before its first report. */
  metrics(deviceId: string): DeviceMetrics | null;
  online(deviceId: string): boolean;
}

/** The analyser's limits from a stage's gate: what the gate allows is what the analyser allows. */
export function limitsOf(g: Gate): AnalysisLimits {
  return {
    failures: g.maxFailureShare,
    timeouts: g.maxTimeoutShare,
    offline: g.maxTimeoutShare,
    cpu: g.maxCpuRegression,
    memory: g.maxMemoryRegression,
    drain: g.maxBatteryDrainRegression,
    disk: DISK_LIMIT,
    regressedShare: g.maxRegressedShare,
  };
}

const OFFLINE_AFTER = 'not observed after the update';

/**
 * One ring of a deployment as the analyser reads it. Devices that received the release: their outcome (an
 * update running past the gate's `stalledMs`, or whose device went offline, counts as timed out, as the gate
 * counts it), whether they were away after it, and their readings before and after. Devices not updated
 * (queued, skipped, or never started): their metrics now. Updates still running are left out. Of the
 * deployment's current stage, only what came after the gate was last reset (an operator's acknowledgement).
 */
export function ringEvidence(view: DeploymentView, stage: number, src: EvidenceSources, now: number): RingEvidence {
  const rec = view.deployment;
  const st = rec.spec.stages[stage];
  const stalledMs = st?.gate.stalledMs ?? 0;
  const since = stage === rec.stage ? rec.gateResetAt : 0;
  let inStage = 0;
  for (const e of view.executions) if (e.stage === stage) inStage++;
  const out = new EvidenceBuilder(st?.ring ?? `stage ${stage}`, Math.max(16, inStage));
  for (const e of view.executions) {
    if (e.stage !== stage) continue;
    if (e.startedAt === null) {
      out.addWaiting(src.metrics(e.deviceId), src.online(e.deviceId));
      continue;
    }
    if (e.startedAt < since) continue;
    const outcome = outcomeOf(e, src, now, stalledMs);
    if (outcome === null) continue;
    const offlineAfter = outcome === 'timed_out' ? !src.online(e.deviceId) : (e.reason ?? '').startsWith(OFFLINE_AFTER);
    const f = src.facts(e.deviceId);
    out.addUpdated({ id: e.deviceId, model: f?.model ?? null, site: f?.site ?? null, osName: f?.osName ?? null }, outcome, offlineAfter, e.baseline, e.observed);
  }
  return out.build();
}

function outcomeOf(e: Execution, src: EvidenceSources, now: number, stalledMs: number): UpdatedDevice['outcome'] | null {
  switch (e.state) {
    case 'succeeded':
    case 'rolled_back':
      return 'succeeded';
    case 'failed':
    case 'rejected':
      return 'failed';
    case 'timed_out':
      return 'timed_out';
    case 'in_progress':
      return stalledMs > 0 && e.startedAt !== null && (now - e.startedAt >= stalledMs || !src.online(e.deviceId)) ? 'timed_out' : null;
    default:
      return null;
  }
}

/** Every ring the deployment has reached, analysed, in plan order. */
export function analyseDeployment(view: DeploymentView, src: EvidenceSources, now: number): RingAnalysis[] {
  const out: RingAnalysis[] = [];
  const reached = Math.min(view.deployment.stage, view.deployment.spec.stages.length - 1);
  for (let s = 0; s <= reached; s++) {
    const st = view.deployment.spec.stages[s];
    if (!st) continue;
    out.push(analyseRing(ringEvidence(view, s, src, now), limitsOf(st.gate)));
  }
  return out;
}
