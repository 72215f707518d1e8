import type { DeploymentSpec, Gate, MaintenanceWindow, Payload, Preflight, Rate, Stage } from './deployment.js';

/** The bounds of every gate field, as a plan takes them (shares 0–1, points, %/h, counts, milliseconds). */
export const GATE_LIMITS: Readonly<Record<keyof Gate, readonly [number, number]>> = {
  maxFailureShare: [0, 1], maxTimeoutShare: [0, 1], maxCpuRegression: [0, 100], maxMemoryRegression: [0, 100],
  maxBatteryDrainRegression: [0, 1000], maxRegressedShare: [0, 1], minDevices: [1, 1_000_000], minJudged: [0, 1_000_000], minModelDevices: [0, 1_000_000],
  observeMs: [0, 86_400_000], stalledMs: [0, 86_400_000], confidence: [0, 0.999],
};

/** The gate fields that are whole numbers. */
export const GATE_INTEGERS: ReadonlySet<keyof Gate> = new Set(['minDevices', 'minJudged', 'minModelDevices', 'observeMs', 'stalledMs']);
import { DEFAULT_GATE, DEFAULT_PREFLIGHT, defaultStage } from './deployment.js';
import { TASK_TYPES } from './types.js';

/**
 * Checks a deployment request (parsed JSON) against the configured rings and
 * fills in defaults. Returns the spec, or every problem found with its place.
 */
export function parseDeploymentSpec(input: unknown, rings: readonly string[]): { spec: DeploymentSpec } | { errors: string[] } {
  const errors: string[] = [];
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { errors: ['the deployment must be an object'] };
  const doc = input as Record<string, unknown>;
  for (const key of Object.keys(doc)) {
    if (!['name', 'payload', 'plan', 'maintenanceWindows', 'autoRollback', 'rollbackPayload', 'start'].includes(key)) errors.push(`${key}: unknown field`);
  }
  const name = doc.name;
  if (typeof name !== 'string' || name.trim() === '' || name.length > 200) errors.push('name: must be a non-empty string of at most 200 characters');
  const payload = parsePayload(doc.payload, 'payload', errors);
  const rollbackPayload = doc.rollbackPayload === undefined ? (payload ? { type: payload.type, params: { ...payload.params, rollback: true } } : null) : parsePayload(doc.rollbackPayload, 'rollbackPayload', errors);
  if (doc.autoRollback !== undefined && typeof doc.autoRollback !== 'boolean') errors.push('autoRollback: must be true or false');
  if (doc.start !== undefined && typeof doc.start !== 'boolean') errors.push('start: must be true or false');

  let stages: Stage[] = rings.map((r, i) => defaultStage(r, i));
  if (doc.plan !== undefined) {
    const plan = doc.plan as Record<string, unknown> | null;
    if (typeof plan !== 'object' || plan === null || !Array.isArray(plan.stages) || plan.stages.length === 0) {
      errors.push('plan: must be an object { stages: [...] } with at least one stage');
    } else if (plan.stages.length > 16) {
      errors.push('plan.stages: at most 16 stages');
    } else {
      const seen = new Set<string>();
      stages = plan.stages.map((raw: unknown, i: number) => parseStage(raw, i, rings, seen, errors));
    }
  }
  const windows: MaintenanceWindow[] = [];
  if (doc.maintenanceWindows !== undefined) {
    if (!Array.isArray(doc.maintenanceWindows) || doc.maintenanceWindows.length > 50) errors.push('maintenanceWindows: must be a list of at most 50 windows');
    else doc.maintenanceWindows.forEach((raw: unknown, i: number) => {
      const w = parseWindow(raw, `maintenanceWindows[${i}]`, errors);
      if (w) windows.push(w);
    });
  }
  if (errors.length > 0 || !payload || !rollbackPayload) return { errors: errors.length > 0 ? errors : ['payload: required'] };
  return { spec: { name: (name as string).trim(), payload, stages, maintenanceWindows: windows, autoRollback: doc.autoRollback === true, rollbackPayload } };
}

function parsePayload(raw: unknown, at: string, errors: string[]): Payload | null {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    errors.push(`${at}: must be an object { type, params? }`);
    return null;
  }
  const p = raw as Record<string, unknown>;
  for (const key of Object.keys(p)) if (key !== 'type' && key !== 'params') errors.push(`${at}.${key}: unknown field`);
  if (typeof p.type !== 'string' || !(TASK_TYPES as readonly string[]).includes(p.type)) {
    errors.push(`${at}.type: must be one of ${TASK_TYPES.join(', ')}`);
    return null;
  }
  if (p.params !== undefined && (typeof p.params !== 'object' || p.params === null || Array.isArray(p.params))) {
    errors.push(`${at}.params: must be an object`);
    return null;
  }
  return { type: p.type, params: (p.params as Record<string, unknown> | undefined) ?? {} };
}

const isNum = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;

function parseStage(raw: unknown, i: number, rings: readonly string[], seen: Set<string>, errors: string[]): Stage {
  const at = `plan.stages[${i}]`;
  const s = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null) errors.push(`${at}: must be an object`);
  for (const key of Object.keys(s)) if (!['ring', 'rate', 'soakMs', 'gate', 'preflight'].includes(key)) errors.push(`${at}.${key}: unknown field`);
  const ring = s.ring;
  if (typeof ring !== 'string' || !rings.includes(ring)) errors.push(`${at}.ring: must name one of the rings (${rings.join(', ')})`);
  else if (seen.has(ring)) errors.push(`${at}.ring: ring ${ring} has two stages`);
  else seen.add(ring);
  const base = defaultStage(typeof ring === 'string' ? ring : '?', i);
  let rate: Rate = base.rate;
  if (s.rate !== undefined) {
    const r = s.rate as Record<string, unknown> | null;
    if (r !== null && typeof r === 'object' && 'maxPerMinute' in r && Object.keys(r).length === 1) {
      if (!isNum(r.maxPerMinute, 0.01, 1_000_000)) errors.push(`${at}.rate.maxPerMinute: must be a number from 0.01 to 1000000`);
      else rate = { maxPerMinute: r.maxPerMinute };
    } else if (r !== null && typeof r === 'object' && 'exponential' in r && Object.keys(r).length === 1) {
      const e = r.exponential as Record<string, unknown> | null;
      const ok = e !== null && typeof e === 'object' && isNum(e.base, 0.01, 1_000_000) && isNum(e.factor, 1, 100) && isNum(e.every, 1, 1_000_000) && (e.max === undefined || isNum(e.max, 0.01, 1_000_000));
      if (!ok) errors.push(`${at}.rate.exponential: must be { base: per minute, factor: 1–100, every: successes between increases, max?: per minute }`);
      else rate = { exponential: { base: e.base as number, factor: e.factor as number, every: e.every as number, max: (e.max as number | undefined) ?? 1_000_000 } };
    } else {
      errors.push(`${at}.rate: must be { maxPerMinute } or { exponential: { base, factor, every, max? } }`);
    }
  }
  let soakMs = base.soakMs;
  if (s.soakMs !== undefined) {
    if (!isNum(s.soakMs, 0, 30 * 86_400_000) || !Number.isInteger(s.soakMs)) errors.push(`${at}.soakMs: must be an integer from 0 to 30 days in ms`);
    else soakMs = s.soakMs;
  }
  const gate: Gate = { ...DEFAULT_GATE };
  if (s.gate !== undefined) {
    const g = s.gate as Record<string, unknown> | null;
    if (typeof g !== 'object' || g === null) errors.push(`${at}.gate: must be an object`);
    else {
      for (const [key, value] of Object.entries(g)) {
        const range = GATE_LIMITS[key as keyof Gate] as readonly [number, number] | undefined;
        if (!range) errors.push(`${at}.gate.${key}: unknown field`);
        else if (!isNum(value, range[0], range[1]) || (GATE_INTEGERS.has(key as keyof Gate) && !Number.isInteger(value))) errors.push(`${at}.gate.${key}: must be a number from ${range[0]} to ${range[1]}`);
        else gate[key as keyof Gate] = value;
      }
      // The evidence a pass needs follows the outcomes a verdict needs, unless the plan says otherwise.
      if (!('minJudged' in g)) gate.minJudged = gate.minDevices;
    }
  }
  const preflight: Preflight = { ...DEFAULT_PREFLIGHT };
  if (s.preflight !== undefined) {
    const p = s.preflight as Record<string, unknown> | null;
    if (typeof p !== 'object' || p === null) errors.push(`${at}.preflight: must be an object`);
    else {
      for (const [key, value] of Object.entries(p)) {
        if (key === 'requireCharging') {
          if (typeof value !== 'boolean') errors.push(`${at}.preflight.requireCharging: must be true or false`);
          else preflight.requireCharging = value;
        } else if (key === 'minBattery' || key === 'minFreeDisk') {
          if (!isNum(value, 0, 100)) errors.push(`${at}.preflight.${key}: must be a number from 0 to 100`);
          else preflight[key] = value;
        } else errors.push(`${at}.preflight.${key}: unknown field`);
      }
    }
  }
  return { ring: typeof ring === 'string' ? ring : '?', rate, soakMs, gate, preflight };
}

const HHMM = /^([01]\d|2[0-3]):[0-5]\d$/;

function parseWindow(raw: unknown, at: string, errors: string[]): MaintenanceWindow | null {
  const w = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  const days = w.days;
  const okDays = Array.isArray(days) && days.length > 0 && days.every((d) => Number.isInteger(d) && (d as number) >= 0 && (d as number) <= 6);
  if (!okDays) errors.push(`${at}.days: must be a non-empty list of weekdays 0 (Sunday) to 6`);
  if (typeof w.start !== 'string' || !HHMM.test(w.start)) errors.push(`${at}.start: must be "HH:MM" (UTC)`);
  if (typeof w.end !== 'string' || !HHMM.test(w.end)) errors.push(`${at}.end: must be "HH:MM" (UTC)`);
  if (!okDays || typeof w.start !== 'string' || typeof w.end !== 'string' || w.start === w.end) {
    if (typeof w.start === 'string' && w.start === w.end) errors.push(`${at}: start and end must differ`);
    return null;
  }
  return { days: days as number[], start: w.start, end: w.end };
}
