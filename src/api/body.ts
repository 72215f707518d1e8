import { OrchestratorError } from '../domain/errors.js';

/** The largest request body taken, on every route. */
export const BODY_LIMIT = 1024 * 1024;

/**
 * The deepest nesting of objects and arrays a body may have. Everything that walks a value recursively
 * (validation, the forbidden-key check, serialising it for the store) stays far from the stack's limit.
 */
export const MAX_JSON_DEPTH = 64;

/** Whether the JSON text nests objects and arrays deeper than `max`: one pass over the text, before it is parsed. */
export function nestsDeeperThan(text: string, max: number): boolean {
  if (text.length <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // a backslash escapes the next character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      if (++depth > max) return true;
    } else if (c === 125 || c === 93) depth--;
  }
  return false;
}

/** Keys that could reach an object's prototype; a body holding one is refused. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** A body without any of these strings (escaped or not) cannot hold a forbidden key: no need to walk it. */
const SUSPECT_KEY = /__proto__|constructor|prototype|\\u/;
const NOT_BLANK = /\S/;

function hasForbiddenKey(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some(hasForbiddenKey);
  for (const [k, v] of Object.entries(value)) if (FORBIDDEN_KEYS.has(k) || hasForbiddenKey(v)) return true;
  return false;
}

/**
 * A request body as JSON, whatever its content type, as the seed's server
 * parsed it (curl without `-H 'Content-Type: application/json'` still works).
 * An empty body is no body. Throws an OrchestratorError for what is not JSON,
 * nests deeper than MAX_JSON_DEPTH, or holds a key that could reach an object's prototype.
 */
export function parseJsonBody(body: string): unknown {
  if (!NOT_BLANK.test(body)) return undefined;
  if (nestsDeeperThan(body, MAX_JSON_DEPTH)) {
    throw new OrchestratorError('ORCH_VALIDATION', `the body nests objects and arrays deeper than ${MAX_JSON_DEPTH} levels`);
  }
  let value: unknown;
  try {
    value = JSON.parse(body) as unknown;
  } catch {
    throw OrchestratorError.of('ORCH_INVALID_JSON');
  }
  if (SUSPECT_KEY.test(body) && hasForbiddenKey(value)) {
    throw new OrchestratorError('ORCH_VALIDATION', 'field names __proto__, constructor and prototype are not allowed');
  }
  return value;
}

