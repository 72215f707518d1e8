/**
 * Risk outside a deployment: of one device (what updating it now would risk, from its metrics, trends and
 * deployment history: the seed's `analyze_risk`), and of a ring (how its devices fit what the ring is for).
 * Both rest on the health score (health-score.ts) and the seed's rule (health.ts); pure.
 */
import type { FactorScore, HealthFactor, HealthInputs, HealthScore, HealthScoreConfig } from './health-score.js';
import { DEFAULT_HEALTH_SCORE_CONFIG, explainHealth } from './health-score.js';
import { seedRuleFailures } from './health.js';
import { readingOf, type Reading } from './metrics.js';
import type { RiskLevel } from './advice.js';

/** A device's risk, in the seed's `analyze_risk` names: 0 (none) to 100, its level, and what makes it. */
export interface DeviceRisk {
  risk_score: number;
  level: 'low' | 'medium' | 'high';
  factors: string[];
}

export const HIGH_RISK = 50;
export const MEDIUM_RISK = 25;
/** A factor that takes at least this many points off the score is named. */
const NAMED_FACTOR = 2;

const round1 = (x: number): number => Math.round(x * 10) / 10;

const FACTOR_TEXT: Record<HealthFactor, (v: number) => string> = {
  battery: (v) => `battery ${round1(v)}% and not charging`,
  charging: () => 'not charging',
  cpu: (v) => `CPU ${round1(v)}%`,
  memory: (v) => `memory ${round1(v)}%`,
  disk: (v) => `disk ${round1(v)}% full`,
  batteryDrain: (v) => `battery draining ${round1(v)}%/h`,
  cpuTrend: (v) => `CPU rising ${round1(v)} points/h`,
  impact: (v) => `hurt by recent deployments (impact ${round1(v)})`,
};

/** What a factor's value means, in words ("CPU 95%"). */
export function factorText(f: FactorScore): string {
  return FACTOR_TEXT[f.factor](f.value);
}

/**
 * A device's risk from its health explained: 100 less its score, and at least HIGH_RISK when it fails the
 * seed's rule (the ring policy counts such a device unhealthy whatever its score); the seed rule's failures
 * and the factors that take points off the score, the heaviest first.
 */
export function riskFromHealth(h: HealthScore, seedFailures: readonly string[]): DeviceRisk {
  const risk = Math.max(Math.round((100 - h.score) * 10) / 10, seedFailures.length > 0 ? HIGH_RISK : 0);
  const named = h.factors
    .filter((f) => -f.contribution >= NAMED_FACTOR)
    .sort((a, b) => a.contribution - b.contribution)
    .map(factorText);
  const factors = [...seedFailures.map((f) => `fails the seed health rule: ${f}`), ...named];
  return { risk_score: risk, level: risk >= HIGH_RISK ? 'high' : risk >= MEDIUM_RISK ? 'medium' : 'low', factors };
}

/** A device's risk from its metrics (trends and deployment impact 0 when it is its own only witness: an agent's `analyze_risk`). */
export function deviceRisk(x: HealthInputs, config: HealthScoreConfig = DEFAULT_HEALTH_SCORE_CONFIG): DeviceRisk {
  return riskFromHealth(explainHealth(x, config), seedRuleFailures(x.battery, x.cpu, x.memory));
}

/**
 * The risk a device runs if updated now, from its own reading alone (the seed's `analyze_risk` task, run by
 * the device's agent): an agent is its own only witness, so its trends and deployment impact count as none.
 */
export function readingRisk(m: Reading): DeviceRisk {
  return deviceRisk({ ...readingOf(m), drain: 0, cpuTrend: 0, impact: 0 });
}

const devices = (n: number): string => `${n} device${n === 1 ? '' : 's'}`;

/** What the advisor reads of a ring to judge its risk. */
export interface RingFacts {
  name: string;
  size: number;
  target: number;
  /** Whether the ring may hold devices that fail the seed's rule (the earlier rings). */
  allowUnhealthy: boolean;
  p10: number | null;
  p50: number | null;
  /** Devices failing the seed's rule, and devices without a score yet. */
  unhealthy: number;
  unknown: number;
}

/**
 * A ring's risk: devices that fail the seed's rule in a ring meant for healthy ones (high from 1%), a low
 * tenth of scores (p10 below 30 high, below 50 medium), and a size far from its target (medium beyond 10%).
 */
export function ringRisk(r: RingFacts): { risk: RiskLevel; reasons: string[] } {
  const reasons: string[] = [];
  let level = 0;
  const raise = (to: number, reason: string): void => {
    level = Math.max(level, to);
    reasons.push(reason);
  };
  if (r.size === 0) return { risk: 'unknown', reasons: [`${r.name} has no devices`] };
  if (!r.allowUnhealthy && r.unhealthy > 0) {
    const share = r.unhealthy / r.size;
    raise(share >= 0.01 ? 2 : 1, `${r.unhealthy} of its ${r.size} devices (${round1(share * 100)}%) fail the seed health rule, in a ring meant for healthy devices`);
  }
  if (r.p10 !== null && r.p10 < 50) raise(r.p10 < 30 ? 2 : 1, `a tenth of its devices score below ${round1(r.p10)} (median ${r.p50 === null ? '–' : round1(r.p50)})`);
  if (r.target > 0 && Math.abs(r.size - r.target) / r.target > 0.1) raise(1, `holds ${devices(r.size)} against a target of ${r.target}`);
  if (r.unknown > 0 && r.unknown / r.size >= 0.1) raise(1, `${r.unknown} of its devices have not reported their health yet`);
  if (reasons.length === 0) reasons.push(`${devices(r.size)}, median score ${r.p50 === null ? '–' : round1(r.p50)}, tenth ${r.p10 === null ? '–' : round1(r.p10)}; none fails the seed rule where it should not`);
  return { risk: (['low', 'medium', 'high'] as const)[level] as RiskLevel, reasons };
}
