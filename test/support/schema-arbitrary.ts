import fc from 'fast-check';

/** The JSON Schema keywords TypeBox emits for our routes. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  format?: string;
}

const SHORT = 12;

/**
 * Values that follow a route's schema (TypeBox's JSON Schema): what a client
 * that read the OpenAPI document would send. Lengths and sizes are kept small
 * (an oversized value is one of the mutations instead), patterns are honoured.
 */
export function fromSchema(schema: JsonSchema | undefined, depth = 0): fc.Arbitrary<unknown> {
  if (schema === undefined || depth > 5) return fc.jsonValue({ maxDepth: 2 });
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum !== undefined) return fc.constantFrom(...schema.enum);
  const union = schema.anyOf ?? schema.oneOf;
  if (union !== undefined) return fc.oneof(...union.map((s) => fromSchema(s, depth + 1)));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer':
      return fc.integer({ min: Math.max(schema.minimum ?? -1000, -1_000_000), max: Math.min(schema.maximum ?? 1000, 1_000_000) });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1000, noNaN: true, noDefaultInfinity: true });
    case 'string': {
      if (schema.format === 'date-time') return fc.date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true }).map((d) => d.toISOString());
      const min = schema.minLength ?? 0;
      const max = Math.max(min, Math.min(schema.maxLength ?? SHORT, SHORT));
      if (schema.pattern !== undefined) return fc.stringMatching(new RegExp(schema.pattern, 'u')).filter((v) => v.length >= min && v.length <= (schema.maxLength ?? 10_000));
      return fc.string({ minLength: min, maxLength: max });
    }
    case 'array':
      return fc.array(fromSchema(schema.items, depth + 1), { minLength: schema.minItems ?? 0, maxLength: Math.max(schema.minItems ?? 0, Math.min(schema.maxItems ?? 3, 3)) });
    case 'object': {
      const props = schema.properties ?? {};
      const required = new Set(schema.required ?? []);
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [k, s] of Object.entries(props)) record[k] = fromSchema(s, depth + 1);
      return fc.record(record, { requiredKeys: [...required].filter((k) => k in props) });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Fields a client must never set itself; a body carrying one must be refused where the schema is closed. */
export const PRIVILEGED_FIELDS = ['ring', 'status', 'owner', 'role', 'approval', 'assignedTo', 'attempts', 'createdBy', '__proto__', 'constructor'];

/**
 * A body that follows the schema, then perhaps one mutation: a required
 * field dropped, a privileged or unknown field added, a field of the wrong
 * type, an oversized string, or something that is not the right JSON at all.
 */
export function mutatedBody(schema: JsonSchema | undefined): fc.Arbitrary<string> {
  const valid = fromSchema(schema);
  const asObject = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? { ...(v as Record<string, unknown>) } : {});
  const keys = Object.keys(schema?.properties ?? {});
  return fc.oneof(
    { weight: 4, arbitrary: valid.map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.tuple(valid, fc.constantFrom(...(schema?.required ?? ['x']))).map(([v, k]) => JSON.stringify({ ...asObject(v), [k]: undefined })) },
    { weight: 2, arbitrary: fc.tuple(valid, fc.constantFrom(...PRIVILEGED_FIELDS), fc.jsonValue({ maxDepth: 1 })).map(([v, k, x]) => JSON.stringify(asObject(v)).replace(/^\{/, `{${JSON.stringify(k)}:${JSON.stringify(x ?? null)}${Object.keys(asObject(v)).length > 0 ? ',' : ''}`)) },
    { weight: 1, arbitrary: fc.tuple(valid, fc.constantFrom(...(keys.length > 0 ? keys : ['x'])), fc.oneof(fc.jsonValue({ maxDepth: 1 }), fc.constant('x'.repeat(5000)))).map(([v, k, x]) => JSON.stringify({ ...asObject(v), [k]: x })) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
    { weight: 1, arbitrary: fc.oneof(fc.string(), fc.constant('{"a":'), fc.constant(''), fc.constant('\u0000'), fc.constant('[]'), fc.constant('null')) },
  );
}

/** A path parameter: mostly a real id, else hostile: traversal, NUL, control bytes, oversized, odd encodings. */
export function pathParam(real: string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...real).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.string({ minLength: 1, maxLength: 20 }).map(encodeURIComponent) },
    {
      weight: 2,
      arbitrary: fc.constantFrom('..%2F..%2Fetc%2Fpasswd', '..%2f', '%2e%2e%2f', '..\\..\\', '%00', 'abc%00def', '%0a%0d', '%ff%fe', 'x'.repeat(201), 'y'.repeat(257), 'z'.repeat(5000), '%', '%zz', '.', '..', '__proto__', 'constructor'),
    },
  );
}
