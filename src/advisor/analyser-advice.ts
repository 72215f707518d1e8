import type { RingAnalysis } from '../domain/analysis.js';
import type { AdviceRecord, AdviceSubject, MoveProposal, RingModels, RingRisk, RiskLevel } from '../domain/advice.js';
import { deploymentAdvice } from '../domain/advice.js';
import { TERMINAL_DEPLOYMENT_STATES } from '../domain/deployment.js';
import { OrchestratorError } from '../domain/errors.js';
import { seedRuleFailures } from '../domain/health.js';
import { HIGH_RISK, riskFromHealth, ringRisk } from '../domain/risk.js';
import type { DeploymentService, FleetService } from '../core/services.js';
import type { RingView } from '../fleet/fleet-views.js';
import type { EvidenceSources } from './evidence.js';
import { analyseDeployment } from './evidence.js';

/** What the analyser advises: the record's advice fields and the figures they rest on. */
export type AnalyserAdvice = Pick<AdviceRecord, 'decision' | 'risk' | 'confidence' | 'rings' | 'moves' | 'summary' | 'evidence'>;

/** At most this many ring moves are proposed at once (the riskiest first). */
export const MAX_MOVES = 100;
/** Devices looked at per ring for moves: the lowest scores first. */
const CANDIDATES_PER_RING = 200;
/** Impacted devices kept per ring in the evidence. */
const IMPACTED_IN_EVIDENCE = 10;

/** The fleet as the analyser's evidence reads it. */
export function fleetSources(fleet: FleetService): EvidenceSources {
  return {
    facts: (id) => {
      const a = fleet.attributesOf(id);
      return a ? { model: a.model ?? null, site: a.site ?? null, osName: a.osName ?? null } : null;
    },
    metrics: (id) => fleet.metrics(id),
    online: (id) => fleet.connectivityOf(id) === 'online',
  };
}

/** The analysis as the evidence keeps it: every figure, and only the devices hurt most. */
export function evidenceOf(a: RingAnalysis): RingAnalysis {
  return { ...a, impacted: a.impacted.slice(0, IMPACTED_IN_EVIDENCE) };
}

/** The built-in analyser's advice on a deployment, a ring or the fleet. Reads only. */
export async function analyserAdvice(subject: AdviceSubject, deployments: DeploymentService, fleet: FleetService, now: number): Promise<AnalyserAdvice> {
  if ('deployment' in subject) return deploymentAnalysis(subject.deployment, deployments, fleet, now);
  const view = fleet.rings();
  if ('ring' in subject) {
    const ring = view.rings.find((r) => r.name === subject.ring);
    if (!ring) throw new OrchestratorError('ORCH_UNKNOWN_RING', `ring ${subject.ring} is not configured; the rings are ${view.rings.map((r) => r.name).join(', ')}`);
    const risk = ringRisk(factsOf(ring));
    const moves = proposeMoves([ring], view.rings, fleet);
    return {
      decision: null,
      risk: risk.risk,
      confidence: ring.size === 0 ? 0.2 : 0.8,
      rings: [{ ring: ring.name, ...risk }],
      moves,
      summary: `Ring ${ring.name}: ${risk.risk} risk. ${risk.reasons[0] ?? ''}${moves.length > 0 ? ` ${moves.length} device${moves.length === 1 ? '' : 's'} proposed to move to an earlier ring.` : ''}`,
      evidence: { ring: ring, risk },
    };
  }
  const rings: RingRisk[] = view.rings.map((r) => ({ ring: r.name, ...ringRisk(factsOf(r)) }));
  const moves = proposeMoves(view.rings, view.rings, fleet);
  const worst = worstRisk(rings.map((r) => r.risk));
  const atRisk = rings.filter((r) => r.risk === 'high' || r.risk === 'medium');
  return {
    decision: null,
    risk: worst,
    confidence: view.total === 0 ? 0.2 : 0.8,
    rings,
    moves,
    summary:
      atRisk.length === 0
        ? `The fleet's ${view.total} devices fit their rings: no ring at risk.`
        : `${atRisk.length} of ${rings.length} rings at risk: ${atRisk.map((r) => `${r.ring} ${r.risk} (${r.reasons[0] ?? ''})`).join('; ')}.` +
          (moves.length > 0 ? ` ${moves.length} device${moves.length === 1 ? '' : 's'} proposed to move.` : ''),
    evidence: { rings: view.rings, policy: view.policy, total: view.total, unassigned: view.unassigned },
  };
}

async function deploymentAnalysis(id: string, deployments: DeploymentService, fleet: FleetService, now: number): Promise<AnalyserAdvice> {
  const view = await deployments.get(id);
  const rec = view.deployment;
  const analyses = analyseDeployment(view, fleetSources(fleet), now);
  const ended = TERMINAL_DEPLOYMENT_STATES.has(rec.status);
  const unreached = ended ? [] : rec.spec.stages.slice(rec.stage + 1).map((s) => s.ring);
  const ringModels: RingModels = new Map(fleet.rings().rings.map((r) => [r.name, new Map(Object.entries(r.byModel))]));
  let advice = deploymentAdvice(analyses, unreached, ringModels);
  if (rec.status === 'halted' && advice.decision === 'continue' && advice.risk === 'unknown') {
    // Halted on evidence too thin for the analyser's tests: the gate's reason stands, and so does the halt.
    advice = { ...advice, decision: 'halt', summary: `Keep it halted: the gate's reason stands; ${advice.summary.replace(/^Inconclusive: /, 'the analyser cannot judge yet: ')}` };
  }
  const status = rec.status === 'in_progress' ? '' : `The deployment is ${rec.status}${rec.haltReason ? ` (${rec.haltReason})` : ''}. `;
  return {
    ...advice,
    moves: [],
    summary: `${status}${advice.summary}`,
    evidence: {
      deployment: { id: rec.id, name: rec.spec.name, status: rec.status, stage: rec.stage, ring: rec.spec.stages[rec.stage]?.ring ?? null, haltReason: rec.haltReason },
      analyses: analyses.map(evidenceOf),
    },
  };
}

function factsOf(r: RingView) {
  return { name: r.name, size: r.size, target: r.target, allowUnhealthy: r.allowUnhealthy, p10: r.health.p10, p50: r.health.p50, unhealthy: r.health.unhealthy, unknown: r.health.unknown };
}

const ORDER: readonly RiskLevel[] = ['unknown', 'low', 'medium', 'high'];

export function worstRisk(levels: readonly RiskLevel[]): RiskLevel {
  return levels.reduce<RiskLevel>((w, r) => (ORDER.indexOf(r) > ORDER.indexOf(w) ? r : w), 'unknown');
}

/**
 * Ring categorisation: devices at high risk (failing the seed's rule, or scoring below 100 − HIGH_RISK) in a
 * ring meant for healthy devices are proposed to move to the latest earlier ring that takes unhealthy ones.
 * The ring policy already places free devices so; what is left is pinned, in its dwell time, or placed by a
 * rule, and the reason says which. Devices in the middle of an update are left alone. Proposals only.
 */
function proposeMoves(rings: readonly RingView[], all: readonly RingView[], fleet: FleetService): MoveProposal[] {
  const moves: { move: MoveProposal; risk: number }[] = [];
  for (const ring of rings) {
    if (ring.allowUnhealthy) continue;
    const at = all.findIndex((r) => r.name === ring.name);
    const to = all.slice(0, at).reverse().find((r) => r.allowUnhealthy);
    if (!to) continue;
    const { devices } = fleet.list({ ring: ring.name }, 'score', CANDIDATES_PER_RING, undefined);
    for (const d of devices) {
      if (d.score === null || (d.score >= 100 - HIGH_RISK && d.healthy !== false)) continue;
      if (d.held) continue;
      const detail = fleet.device(d.id);
      if (detail.inflightExecutions > 0 || !detail.health || !detail.metrics) continue;
      const m = detail.metrics;
      const risk = riskFromHealth(detail.health, seedRuleFailures(m.battery, m.cpu, m.memory));
      if (risk.level !== 'high') continue;
      const why = detail.pin?.source === 'manual' ? `; pinned to ${ring.name} by an operator` : detail.pin?.source === 'rule' ? `; placed in ${ring.name} by a pin rule` : '';
      moves.push({
        risk: risk.risk_score,
        move: { deviceId: d.id, from: ring.name, to: to.name, reason: `risk ${risk.risk_score} (${risk.factors.slice(0, 3).join(', ')}) in ${ring.name}, which is meant for healthy devices${why}` },
      });
    }
  }
  return moves
    .sort((a, b) => b.risk - a.risk || (a.move.deviceId < b.move.deviceId ? -1 : 1))
    .slice(0, MAX_MOVES)
    .map((m) => m.move);
}
