import type { AdviceSubject } from '../domain/advice.js';
import type { AnalyserAdvice } from './analyser-advice.js';
import type { AdvisorServices } from './advisor.js';

export interface ModelUsage {
  inputTokens: number;
  outputTokens: number;
}

/** A model's answer: advice that passed the checks, or why there is none (the analyser's advice stands). */
export type ModelAnswer = { ok: true; advice: AnalyserAdvice; usage: ModelUsage } | { ok: false; reason: string; usage: ModelUsage };

/** A model's reading of gating factors: a proposed gate (checked afterwards by the plan's bounds), or why there is none. */
export type GateProposal =
  | { ok: true; proposal: Record<string, unknown>; understood: { phrase: string; as: string }[]; notUnderstood: { phrase: string; why: string }[]; usage: ModelUsage }
  | { ok: false; reason: string; usage: ModelUsage };

/** A language model that writes advice, given the analyser's advice and read-only tools over the services. */
export interface ModelAdvisor {
  readonly name: 'bedrock' | 'openai';
  readonly model: string;
  advise(subject: AdviceSubject, analysis: AnalyserAdvice, services: AdvisorServices): Promise<ModelAnswer>;
  proposeGate(text: string): Promise<GateProposal>;
}
