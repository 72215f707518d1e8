/**
 * Deployment rings as configuration: an ordered list of rings with target
 * shares, pins (rules that send matching devices to a ring), holds (rules
 * that exclude matching devices from every ring and rollout), the assignment
 * policy, and the anti-flapping settings.
 *
 * Rules are conjunctions of clauses over a device's attributes:
 *
 *     department = IT
 *     site != "Berlin HQ" and model in (X1, T14)
 *     tag = kiosk
 *
 * Fields: id, site, department, manufacturer, model, osName, and `tag` (true
 * when the device carries that tag). Values may be quoted with double quotes.
 */

export const RING_POLICIES = ['health', 'representative'] as const;
export type RingPolicy = (typeof RING_POLICIES)[number];

export interface RingSpec {
  name: string;
  /** Target share of the assignable fleet, 0–1; the shares of all rings sum to 1. */
  share: number;
  min?: number;
  max?: number;
  /**
   * Whether a device that fails the seed's yes/no health rule may sit here
   * (policy `health`). Default: true for the earlier half of the rings.
   */
  allowUnhealthy?: boolean;
}

export interface PinSpec {
  rule: string;
  ring: string;
}

export interface RingConfig {
  rings: RingSpec[];
  pins: PinSpec[];
  holds: string[];
  policy: RingPolicy;
  /** Score margin a device must cross beyond a ring boundary before it moves. */
  hysteresis: number;
  /** A device stays at least this long in a ring before it moves again. */
  dwellMs: number;
}

export const DEFAULT_RING_CONFIG: RingConfig = {
  rings: [
    { name: 'canary', share: 0.05, allowUnhealthy: true },
    { name: 'dev', share: 0.15, allowUnhealthy: true },
    { name: 'stage', share: 0.3, allowUnhealthy: false },
    { name: 'prod', share: 0.5, allowUnhealthy: false },
  ],
  pins: [],
  holds: [],
  policy: 'health',
  hysteresis: 5,
  dwellMs: 10 * 60_000,
};

export const MAX_RINGS = 16;
/** Pins and holds each: every rule is evaluated for every device when the configuration changes. */
export const MAX_RULES = 100;
export const RULE_FIELDS = ['id', 'site', 'department', 'manufacturer', 'model', 'osName', 'tag'] as const;
export type RuleField = (typeof RULE_FIELDS)[number];

export interface Clause {
  field: RuleField;
  op: '=' | '!=' | 'in' | 'not in';
  values: string[];
}

export type Rule = Clause[];

const RING_NAME = /^[a-z][a-z0-9_-]{0,31}$/;

/** The device facts a rule reads. */
export interface RuleSubject {
  id: string;
  site?: string | undefined;
  department?: string | undefined;
  manufacturer?: string | undefined;
  model?: string | undefined;
  osName?: string | undefined;
  tags?: readonly string[] | undefined;
}

export function matchesRule(rule: Rule, d: RuleSubject): boolean {
  for (const c of rule) {
    let hit: boolean;
    if (c.field === 'tag') {
      const tags = d.tags ?? [];
      hit = c.values.some((v) => tags.includes(v));
    } else {
      const value = d[c.field];
      hit = value !== undefined && c.values.includes(value);
    }
    const want = c.op === '=' || c.op === 'in';
    if (hit !== want) return false;
  }
  return true;
}

/** Splits a rule into tokens: words, quoted strings, operators, parentheses and commas. */
function tokenize(text: string): string[] | string {
  const tokens: string[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i] as string;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === '"') {
      const end = text.indexOf('"', i + 1);
      if (end < 0) return `unterminated quote at position ${i + 1}`;
      tokens.push(`"${text.slice(i + 1, end)}`);
      i = end + 1;
    } else if (ch === '(' || ch === ')' || ch === ',' || ch === '=') {
      tokens.push(ch);
      i++;
    } else if (ch === '!' && text[i + 1] === '=') {
      tokens.push('!=');
      i += 2;
    } else {
      let j = i;
      while (j < text.length && !/[\s"(),=!]/.test(text[j] as string)) j++;
      if (j === i) return `unexpected "${ch}" at position ${i + 1}`;
      tokens.push(text.slice(i, j));
      i = j;
    }
  }
  return tokens;
}

const isValueToken = (t: string | undefined): t is string => t !== undefined && !['(', ')', ',', '=', '!='].includes(t) && t.length > 0;
const valueOf = (t: string): string => (t.startsWith('"') ? t.slice(1) : t);

/** Parses a rule; returns an error message naming what is wrong. */
export function parseRule(text: string): Rule | { error: string } {
  if (typeof text !== 'string' || text.trim() === '') return { error: 'a rule must not be empty' };
  if (text.length > 1000) return { error: 'a rule must be at most 1000 characters' };
  const tokens = tokenize(text);
  if (typeof tokens === 'string') return { error: tokens };
  const rule: Rule = [];
  let i = 0;
  for (;;) {
    const field = tokens[i++];
    if (field === undefined || !(RULE_FIELDS as readonly string[]).includes(field)) {
      return { error: `expected a field (${RULE_FIELDS.join(', ')}) but found ${field === undefined ? 'the end' : `"${field}"`}` };
    }
    let op = tokens[i++];
    if (op === 'not' && tokens[i] === 'in') {
      op = 'not in';
      i++;
    }
    if (op === '=' || op === '!=') {
      const v = tokens[i++];
      if (!isValueToken(v)) return { error: `expected a value after "${field} ${op}"` };
      rule.push({ field: field as RuleField, op, values: [valueOf(v)] });
    } else if (op === 'in' || op === 'not in') {
      if (tokens[i++] !== '(') return { error: `expected "(" after "${field} ${op}"` };
      const values: string[] = [];
      for (;;) {
        const v = tokens[i++];
        if (!isValueToken(v)) return { error: `expected a value in the list of "${field} ${op}"` };
        values.push(valueOf(v));
        const sep = tokens[i++];
        if (sep === ')') break;
        if (sep !== ',') return { error: `expected "," or ")" in the list of "${field} ${op}"` };
      }
      rule.push({ field: field as RuleField, op, values });
    } else {
      return { error: `expected =, !=, in or not in after "${field}" but found ${op === undefined ? 'the end' : `"${op}"`}` };
    }
    if (i >= tokens.length) return rule;
    const conj = tokens[i++];
    if (conj !== 'and') return { error: `expected "and" between clauses but found "${conj ?? ''}"` };
  }
}

/** A configuration with its rules parsed, ready to apply. */
export interface CompiledRingConfig extends RingConfig {
  pinRules: { rule: Rule; ring: number }[];
  holdRules: Rule[];
  /** allowUnhealthy of each ring, defaults applied. */
  unhealthyOk: boolean[];
}

export function ringIndex(config: RingConfig, name: string): number {
  return config.rings.findIndex((r) => r.name === name);
}

/**
 * Validates a ring configuration (as parsed JSON) and compiles it, or returns
 * every problem found, each naming its place in the document.
 */
export function compileRingConfig(input: unknown): { config: CompiledRingConfig } | { errors: string[] } {
  const errors: string[] = [];
  if (typeof input !== 'object' || input === null || Array.isArray(input)) return { errors: ['the ring configuration must be an object'] };
  const doc = input as Record<string, unknown>;
  for (const key of Object.keys(doc)) {
    if (!['rings', 'pins', 'holds', 'policy', 'hysteresis', 'dwellMs'].includes(key)) errors.push(`${key}: unknown setting`);
  }
  const rings: RingSpec[] = [];
  if (!Array.isArray(doc.rings) || doc.rings.length === 0) {
    errors.push('rings: must be a non-empty list');
  } else if (doc.rings.length > MAX_RINGS) {
    errors.push(`rings: at most ${MAX_RINGS} rings`);
  } else {
    const names = new Set<string>();
    let sum = 0;
    doc.rings.forEach((raw: unknown, i: number) => {
      const at = `rings[${i}]`;
      if (typeof raw !== 'object' || raw === null) {
        errors.push(`${at}: must be an object { name, share, min?, max? }`);
        return;
      }
      const r = raw as Record<string, unknown>;
      for (const key of Object.keys(r)) if (!['name', 'share', 'min', 'max', 'allowUnhealthy'].includes(key)) errors.push(`${at}.${key}: unknown field`);
      if (typeof r.name !== 'string' || !RING_NAME.test(r.name) || r.name === 'unassigned') {
        errors.push(`${at}.name: must match ${RING_NAME.source} and not be "unassigned"`);
      } else if (names.has(r.name)) {
        errors.push(`${at}.name: "${r.name}" is used twice; ring names must be unique`);
      } else {
        names.add(r.name);
      }
      if (typeof r.share !== 'number' || !Number.isFinite(r.share) || r.share < 0 || r.share > 1) errors.push(`${at}.share: must be a number from 0 to 1`);
      else sum += r.share;
      for (const bound of ['min', 'max'] as const) {
        const v = r[bound];
        if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) errors.push(`${at}.${bound}: must be a non-negative integer`);
      }
      if (typeof r.min === 'number' && typeof r.max === 'number' && r.min > r.max) errors.push(`${at}: min must not exceed max`);
      if (r.allowUnhealthy !== undefined && typeof r.allowUnhealthy !== 'boolean') errors.push(`${at}.allowUnhealthy: must be true or false`);
      rings.push({
        name: String(r.name),
        share: Number(r.share),
        ...(typeof r.min === 'number' ? { min: r.min } : {}),
        ...(typeof r.max === 'number' ? { max: r.max } : {}),
        ...(typeof r.allowUnhealthy === 'boolean' ? { allowUnhealthy: r.allowUnhealthy } : {}),
      });
    });
    if (errors.length === 0 && Math.abs(sum - 1) > 1e-6) errors.push(`rings: the shares must sum to 1 (they sum to ${Math.round(sum * 1e6) / 1e6})`);
  }
  const pinRules: CompiledRingConfig['pinRules'] = [];
  const pins: PinSpec[] = [];
  if (doc.pins !== undefined && !Array.isArray(doc.pins)) errors.push('pins: must be a list of { rule, ring }');
  if (Array.isArray(doc.pins) && doc.pins.length > MAX_RULES) errors.push(`pins: at most ${MAX_RULES} pins`);
  if (Array.isArray(doc.holds) && doc.holds.length > MAX_RULES) errors.push(`holds: at most ${MAX_RULES} holds`);
  (Array.isArray(doc.pins) ? doc.pins : []).forEach((raw: unknown, i: number) => {
    const p = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const rule = parseRule(p.rule as string);
    if ('error' in rule) errors.push(`pins[${i}].rule: ${rule.error}`);
    const ring = typeof p.ring === 'string' ? rings.findIndex((r) => r.name === p.ring) : -1;
    if (ring < 0) errors.push(`pins[${i}].ring: must name one of the rings (${rings.map((r) => r.name).join(', ')})`);
    if (!('error' in rule) && ring >= 0) {
      pinRules.push({ rule, ring });
      pins.push({ rule: p.rule as string, ring: p.ring as string });
    }
  });
  const holdRules: Rule[] = [];
  const holds: string[] = [];
  if (doc.holds !== undefined && !Array.isArray(doc.holds)) errors.push('holds: must be a list of rules');
  (Array.isArray(doc.holds) ? doc.holds : []).forEach((raw: unknown, i: number) => {
    const rule = parseRule(raw as string);
    if ('error' in rule) errors.push(`holds[${i}]: ${rule.error}`);
    else {
      holdRules.push(rule);
      holds.push(raw as string);
    }
  });
  const policy = doc.policy ?? DEFAULT_RING_CONFIG.policy;
  if (!(RING_POLICIES as readonly unknown[]).includes(policy)) errors.push(`policy: must be one of ${RING_POLICIES.join(', ')}`);
  const hysteresis = doc.hysteresis ?? DEFAULT_RING_CONFIG.hysteresis;
  if (typeof hysteresis !== 'number' || !Number.isFinite(hysteresis) || hysteresis < 0 || hysteresis > 100) errors.push('hysteresis: must be a score margin from 0 to 100');
  const dwellMs = doc.dwellMs ?? DEFAULT_RING_CONFIG.dwellMs;
  if (typeof dwellMs !== 'number' || !Number.isInteger(dwellMs) || dwellMs < 0 || dwellMs > 30 * 86_400_000) errors.push('dwellMs: must be an integer number of milliseconds from 0 to 30 days');
  if (errors.length > 0) return { errors };
  const half = Math.ceil(rings.length / 2);
  return {
    config: {
      rings,
      pins,
      holds,
      policy: policy as RingPolicy,
      hysteresis: hysteresis as number,
      dwellMs: dwellMs as number,
      pinRules,
      holdRules,
      unhealthyOk: rings.map((r, i) => r.allowUnhealthy ?? (rings.length === 1 || i < half)),
    },
  };
}

/** The configuration as stored and shown (no compiled parts). */
export function plainRingConfig(c: RingConfig): RingConfig {
  return { rings: c.rings.map((r) => ({ ...r })), pins: c.pins.map((p) => ({ ...p })), holds: [...c.holds], policy: c.policy, hysteresis: c.hysteresis, dwellMs: c.dwellMs };
}

/** Splits `n` over `weights` in proportion, rounding by largest remainder so that the parts sum to `n`. */
export function apportion(weights: readonly number[], n: number): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  if (weights.length === 0) return [];
  const raw = weights.map((w) => (total > 0 ? (w / total) * n : n / weights.length));
  const out = raw.map(Math.floor);
  let left = n - out.reduce((a, b) => a + b, 0);
  const order = raw.map((x, i) => ({ i, frac: x - Math.floor(x) })).sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (let k = 0; left > 0; k = (k + 1) % order.length, left--) out[(order[k] as { i: number }).i]! += 1;
  return out;
}

/**
 * Target sizes for `n` assignable devices: each ring its share of `n`, rounded
 * by largest remainder, with rings held to their min and max (water-filling:
 * a ring pushed to a bound keeps it, and the rest is shared again among the
 * others). When the bounds cannot all be met the targets may not sum to `n`.
 */
export function ringTargets(rings: readonly RingSpec[], n: number): number[] {
  const fixed: (number | null)[] = rings.map(() => null);
  for (;;) {
    const open = rings.map((_, i) => i).filter((i) => fixed[i] === null);
    const rest = Math.max(0, n - fixed.reduce<number>((a, b) => a + (b ?? 0), 0));
    const parts = apportion(open.map((i) => (rings[i] as RingSpec).share), rest);
    // Rings over their max are fixed first (what they give up may lift others above their min), then rings under their min.
    const over = open.filter((i, k) => (parts[k] as number) > ((rings[i] as RingSpec).max ?? Infinity));
    const under = open.filter((i, k) => (parts[k] as number) < ((rings[i] as RingSpec).min ?? 0));
    const fix = over.length > 0 ? over : under;
    for (const i of fix) fixed[i] = over.length > 0 ? ((rings[i] as RingSpec).max as number) : ((rings[i] as RingSpec).min as number);
    const changed = fix.length > 0;
    if (!changed || open.length === 0) return rings.map((_, i) => fixed[i] ?? (parts[open.indexOf(i)] as number));
  }
}
