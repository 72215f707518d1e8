/**
 * Advice: what the advisor proposes about a deployment, a ring or the fleet, with its evidence. The analyser
 * writes it from its figures (here); a model may write it instead (src/advisor/), checked against the same
 * rules before it is stored. Nothing here acts: an operator applies advice, and the advisor on its own at
 * most halts (ADVISOR_AUTO=halt).
 */
import type { AnalysedMetric, RingAnalysis } from './analysis.js';
import { attributionText } from './analysis.js';

export const DEPLOYMENT_DECISIONS = ['continue', 'pause', 'halt', 'rollback'] as const;
export type DeploymentDecision = (typeof DEPLOYMENT_DECISIONS)[number];
export const RISK_LEVELS = ['low', 'medium', 'high', 'unknown'] as const;
export type RiskLevel = (typeof RISK_LEVELS)[number];

export type AdviceSubject = { deployment: string } | { ring: string } | { fleet: true };

/** The key advice is listed by: `deployment:<id>`, `ring:<name>` or `fleet`. */
export function subjectKey(s: AdviceSubject): string {
  return 'deployment' in s ? `deployment:${s.deployment}` : 'ring' in s ? `ring:${s.ring}` : 'fleet';
}

export interface RingRisk {
  ring: string;
  risk: RiskLevel;
  reasons: string[];
}

export interface MoveProposal {
  deviceId: string;
  from: string;
  to: string;
  reason: string;
}

/** Who wrote the advice, with what, and what it cost. */
export interface AdviceProvider {
  /** `analyser`: the built-in analyser alone. */
  name: 'analyser' | 'bedrock' | 'openai';
  model: string | null;
  /** Why the analyser's advice stands instead of the model's (a provider error, a timeout, an invalid or refused answer); null when it does not. */
  fallback: string | null;
}

export interface AdviceCost {
  inputTokens: number;
  outputTokens: number;
  ms: number;
}

/** What applying an advice did: each action through the API's own paths, with its result. */
export interface AppliedAction {
  action: 'pause' | 'halt' | 'rollback' | 'move';
  target: string;
  ok: boolean;
  detail: string;
}

export type AdviceTrigger = 'request' | 'halt' | 'watch';

export interface AdviceRecord {
  /** The store's order of advice (paging cursors). */
  seq: number;
  id: string;
  subject: AdviceSubject;
  /** What asked for it: an operator, a deployment's halt (failure analysis), or the advisor's own watch. */
  trigger: AdviceTrigger;
  createdAt: number;
  /** For deployments. */
  decision: DeploymentDecision | null;
  risk: RiskLevel;
  /** 0–1. */
  confidence: number;
  rings: RingRisk[];
  moves: MoveProposal[];
  summary: string;
  /** The analyser's figures the advice rests on. */
  evidence: Record<string, unknown>;
  provider: AdviceProvider;
  cost: AdviceCost;
  applied: AdviceApplied | null;
}

/** When advice was applied, by whom, and what each of its actions did. */
export interface AdviceApplied {
  at: number;
  by: string;
  actions: AppliedAction[];
}

const CRITICAL: ReadonlySet<AnalysedMetric> = new Set(['failures', 'timeouts', 'offline']);

/** A verdict's risk. */
export function riskOf(a: RingAnalysis): RiskLevel {
  return a.verdict === 'fail' ? 'high' : a.verdict === 'marginal' ? 'medium' : a.verdict === 'pass' ? 'low' : 'unknown';
}

/** Devices per model in each ring the deployment has not reached: to say where a model's harm would spread. */
export type RingModels = ReadonlyMap<string, ReadonlyMap<string, number>>;

/**
 * The analyser's advice on a deployment from its rings' analyses (in plan order, the reached ones):
 * - a ring that fails: `rollback` when what it found hurts the devices that run the release (their health,
 *   or updates that hang and leave the device away), `halt` when updates fail to install (the devices still
 *   run the old release);
 * - a marginal ring: `pause`, for an operator to look;
 * - otherwise `continue`; with too few devices to judge, `continue` at a low confidence, saying so.
 * Rings not reached yet are rated by where the root cause's model is: a ring with many of its devices is at risk.
 */
export function deploymentAdvice(analyses: readonly RingAnalysis[], unreached: readonly string[], ringModels: RingModels): Pick<AdviceRecord, 'decision' | 'risk' | 'confidence' | 'rings' | 'summary'> {
  const failing = analyses.find((a) => a.verdict === 'fail');
  const marginal = analyses.find((a) => a.verdict === 'marginal');
  const last = analyses.at(-1);
  const rings: RingRisk[] = analyses.map((a) => ({ ring: a.ring, risk: riskOf(a), reasons: a.verdict === 'pass' ? [`${a.ring}: passed, score ${a.score}`] : a.reasons.slice(0, 3) }));
  const cause = failing?.rootCause ?? marginal?.rootCause ?? null;
  const model = cause?.groups.find((g) => g.attribute === 'model');
  for (const ring of unreached) {
    const n = model ? (ringModels.get(ring)?.get(model.value) ?? 0) : 0;
    const total = [...(ringModels.get(ring)?.values() ?? [])].reduce((x, y) => x + y, 0);
    if (model && n > 0) rings.push({ ring, risk: failing ? 'high' : 'medium', reasons: [`${n} of its ${total} devices are ${model.value}, the model that carries the ${cause?.metric ?? 'harm'}`] });
    else rings.push({ ring, risk: failing ? 'high' : marginal ? 'medium' : 'unknown', reasons: [failing ? 'not reached; the release failed an earlier ring' : 'not reached yet'] });
  }
  if (failing) {
    const metric = failing.rootCause?.metric ?? 'failures';
    const decision = metric === 'failures' ? 'halt' : 'rollback';
    const p = failing.metrics.find((m) => m.metric === metric)?.p ?? 0.05;
    const what = decision === 'rollback' ? 'roll back the devices already updated' : 'halt before more devices get it';
    return {
      decision,
      risk: 'high',
      confidence: round(clamp(1 - p, 0.5, 0.99)),
      rings,
      summary: `${cap(what)}: the release fails ring ${failing.ring} (score ${failing.score} of 100${CRITICAL.has(metric) ? ', a critical metric' : ''}). ${failing.rootCause?.reason ?? failing.reasons[0] ?? ''}`.trim(),
    };
  }
  if (marginal) {
    return { decision: 'pause', risk: 'medium', confidence: 0.6, rings, summary: `Pause and look: ring ${marginal.ring} is marginal (score ${marginal.score} of 100). ${marginal.reasons[0] ?? ''}`.trim() };
  }
  if (!last || last.verdict === 'inconclusive') {
    const n = last?.devices.updated ?? 0;
    return { decision: 'continue', risk: 'unknown', confidence: 0.2, rings, summary: `Inconclusive: ${n} device${n === 1 ? '' : 's'} updated so far in ${last?.ring ?? 'the first ring'}, too few to judge; the gates still watch every ring.` };
  }
  const judged = last.devices.updated;
  return {
    decision: 'continue',
    risk: 'low',
    confidence: round(0.5 + 0.45 * Math.min(1, judged / 100)),
    rings,
    summary: `Continue: every metric passes on ${judged} updated devices of ring ${last.ring} (score ${last.score} of 100).`,
  };
}

/** The root cause in a few words, for lists: "cpu", "failures on t14". */
export function causeText(a: RingAnalysis): string | null {
  if (!a.rootCause) return null;
  const g = a.rootCause.groups[0];
  return g ? `${a.rootCause.metric} (${attributionText(g)})` : a.rootCause.metric;
}

function clamp(x: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, x));
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
