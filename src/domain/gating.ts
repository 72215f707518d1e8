/**
 * Natural-language gating factors: a sentence such as "halt if battery drain rises more than 5% per hour, or
 * if more than 2% fail" turned into a stage gate in the plan's own schema (Gate), checked and clamped by the
 * plan's own bounds (GATE_LIMITS), with what was understood and what was not. Offline, the small grammar
 * below handles the common phrasings; a model may propose a gate instead, and `checkGate` decides on it the
 * same way (src/advisor/). Pure.
 *
 * The grammar (case does not matter; clauses are split at commas, semicolons, " or " and " and "; a leading
 * "halt if", "stop when", "pause if" is skipped):
 * - failures: "more than 2% fail", "failures above 2%", "failure rate over 2 percent"   → maxFailureShare 0.02
 * - timeouts: "more than 3% time out", "timeouts above 3%"                              → maxTimeoutShare
 * - CPU: "cpu rises more than 15 points", "cpu up by 15%"                                → maxCpuRegression 15
 * - memory: "memory grows more than 10 points"                                           → maxMemoryRegression
 * - battery drain: "battery drain rises more than 5% per hour", "drain over 5 %/h"       → maxBatteryDrainRegression 5
 * - regressed devices: "more than 10% of devices regress"                                → maxRegressedShare 0.1
 * - evidence: "after at least 20 devices", "wait for 20 devices"                         → minDevices 20
 * - watching: "watch each device for 10 minutes", "observe 90 seconds"                   → observeMs
 * - stalls: "stalled after 5 minutes"                                                    → stalledMs
 * - confidence: "at 95% confidence"                                                      → confidence 0.95
 * Anything else (a site, a model, a device class: gates judge a ring's devices, not a part of them) is
 * returned as not understood, with why.
 */
import type { Gate } from './deployment.js';
import { DEFAULT_GATE } from './deployment.js';
import { GATE_INTEGERS, GATE_LIMITS } from './deployment-spec.js';

export interface GateUnderstanding {
  /** The phrase, as written. */
  phrase: string;
  /** What it set, e.g. "maxFailureShare = 0.02". */
  as: string;
}

export interface ParsedGate {
  /** The fields the text set, checked and clamped: a stage's `gate` in a plan. */
  gate: Partial<Gate>;
  /** That gate over the defaults: what the stage would judge with. */
  effective: Gate;
  understood: GateUnderstanding[];
  notUnderstood: { phrase: string; why: string }[];
  /** Values outside the plan's bounds, brought within them. */
  clamped: string[];
}

type Rule = { field: keyof Gate; pattern: RegExp; value: (n: number, unit: string) => number };

const NUM = String.raw`(\d+(?:\.\d+)?)`;
const PCT = String.raw`\s*(?:%|percent|per\s*cent)`;
const MORE = String.raw`(?:more\s+than|over|above|exceeds?|greater\s+than|beyond|>)\s*`;
const RISE = String.raw`(?:rises?|increases?|grows?|goes\s+up|climbs?|jumps?|is\s+up|up)\s+(?:by\s+)?(?:more\s+than\s+|over\s+)?`;
const share = (n: number): number => n / 100;
const minutes = (n: number, unit: string): number => Math.round(n * (/^s/.test(unit) ? 1000 : /^h/.test(unit) ? 3_600_000 : 60_000));

const RULES: Rule[] = [
  { field: 'maxFailureShare', pattern: new RegExp(String.raw`${MORE}${NUM}${PCT}(?:\s+of\s+(?:the\s+)?(?:devices|updates))?\s+(?:fail|failed|failures?)\b`), value: share },
  { field: 'maxFailureShare', pattern: new RegExp(String.raw`\bfail(?:ures?|ure\s+rate|ed\s+updates)?\s+(?:rate\s+)?(?:is\s+)?${MORE}${NUM}${PCT}`), value: share },
  { field: 'maxTimeoutShare', pattern: new RegExp(String.raw`${MORE}${NUM}${PCT}(?:\s+of\s+(?:the\s+)?(?:devices|updates))?\s+(?:time\s*out|timed\s+out|timeouts?)\b`), value: share },
  { field: 'maxTimeoutShare', pattern: new RegExp(String.raw`\btime\s*outs?\s+(?:rate\s+)?(?:is\s+)?${MORE}${NUM}${PCT}`), value: share },
  { field: 'maxBatteryDrainRegression', pattern: new RegExp(String.raw`\b(?:battery\s+)?drain\s+(?:${RISE}|${MORE})${NUM}\s*(?:%|percent)?\s*(?:per\s+hour|/\s*h(?:our)?|an\s+hour|%/h)?`), value: (n) => n },
  { field: 'maxCpuRegression', pattern: new RegExp(String.raw`\bcpu(?:\s+(?:use|usage|load))?\s+(?:${RISE}|${MORE})${NUM}\s*(?:points?|%|percent)?`), value: (n) => n },
  { field: 'maxMemoryRegression', pattern: new RegExp(String.raw`\b(?:memory|ram)(?:\s+(?:use|usage))?\s+(?:${RISE}|${MORE})${NUM}\s*(?:points?|%|percent)?`), value: (n) => n },
  { field: 'maxRegressedShare', pattern: new RegExp(String.raw`${MORE}${NUM}${PCT}\s+of\s+(?:the\s+)?devices\s+(?:regress|regressed|get\s+worse|degrade)`), value: share },
  { field: 'minDevices', pattern: new RegExp(String.raw`\b(?:after\s+(?:at\s+least\s+)?|wait\s+for\s+(?:at\s+least\s+)?|at\s+least\s+|judge\s+(?:after\s+)?)${NUM}\s+devices\b`), value: (n) => n },
  { field: 'observeMs', pattern: new RegExp(String.raw`\b(?:watch|observe)(?:\s+each\s+device)?(?:\s+for)?\s+${NUM}\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|h)\b`), value: minutes },
  { field: 'stalledMs', pattern: new RegExp(String.raw`\bstall(?:ed|s)?\s+(?:after|beyond)\s+${NUM}\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|h)\b`), value: minutes },
  { field: 'confidence', pattern: new RegExp(String.raw`\b(?:at|with)\s+${NUM}${PCT}\s+confidence\b`), value: share },
];

/** Words that carry no gate: the verb of the sentence and its joints. */
const FILLER = /^(?:(?:halt|stop|pause|abort|fail|roll\s*back)(?:\s+the\s+(?:rollout|deployment|release))?\s+(?:if|when|once)\s+|if\s+|when\s+|or\s+|and\s+|also\s+)+/;

/** Scopes a gate cannot hold, and why, by what they look like. */
const SCOPE = /\b(?:on|for|in|at)\s+([a-z][\w .-]*)/;

/** Checks a proposed gate (from the grammar or a model) against the plan's bounds: unknown fields dropped and said, values clamped and said. */
export function checkGate(proposed: Record<string, unknown>): { gate: Partial<Gate>; clamped: string[]; rejected: string[] } {
  const gate: Partial<Gate> = {};
  const clamped: string[] = [];
  const rejected: string[] = [];
  for (const [key, raw] of Object.entries(proposed)) {
    const range = GATE_LIMITS[key as keyof Gate] as readonly [number, number] | undefined;
    if (!range) {
      rejected.push(`${key}: not a gate field`);
      continue;
    }
    if (typeof raw !== 'number' || !Number.isFinite(raw)) {
      rejected.push(`${key}: must be a number`);
      continue;
    }
    let v = GATE_INTEGERS.has(key as keyof Gate) ? Math.round(raw) : raw;
    if (v < range[0] || v > range[1]) {
      const was = v;
      v = Math.min(range[1], Math.max(range[0], v));
      clamped.push(`${key} ${was} is outside ${range[0]}–${range[1]}: ${v}`);
    }
    gate[key as keyof Gate] = v;
  }
  return { gate, clamped, rejected };
}

/** Reads gating factors from text with the grammar above. */
export function parseGatingText(text: string): ParsedGate {
  const understood: GateUnderstanding[] = [];
  const notUnderstood: { phrase: string; why: string }[] = [];
  const proposed: Record<string, number> = {};
  const clauses = text
    .toLowerCase()
    .split(/[,;]|\s+or\s+|\s+and\s+|\.\s+|\.$/)
    .map((c) => c.trim())
    .filter((c) => c.length > 0);
  for (const raw of clauses) {
    let rest = raw.replace(FILLER, '').trim();
    let matched = false;
    for (const rule of RULES) {
      const m = rule.pattern.exec(rest);
      if (!m) continue;
      const value = rule.value(Number(m[1]), m[2] ?? '');
      proposed[rule.field] = value;
      understood.push({ phrase: m[0].trim(), as: `${rule.field} = ${value}` });
      rest = (rest.slice(0, m.index) + ' ' + rest.slice(m.index + m[0].length)).trim();
      matched = true;
    }
    rest = rest.replace(FILLER, '').trim();
    if (rest.length === 0) continue;
    const scope = SCOPE.exec(rest);
    if (matched && scope) {
      notUnderstood.push({ phrase: scope[0].trim(), why: 'a gate judges every device of its ring; to treat these devices apart, place them in a ring of their own with a pin rule (PUT /api/v1/rings)' });
    } else if (!matched) {
      notUnderstood.push({ phrase: rest, why: 'no gating factor recognised (see docs/advisor.md for the phrasings understood)' });
    }
  }
  const checked = checkGate(proposed);
  for (const r of checked.rejected) notUnderstood.push({ phrase: r, why: 'not a gate field' });
  return { gate: checked.gate, effective: { ...DEFAULT_GATE, ...checked.gate }, understood, notUnderstood, clamped: checked.clamped };
}
