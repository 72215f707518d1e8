import { Type } from 'typebox';

/** Request schemas. TypeBox gives validation, handler types and (later) OpenAPI from one definition. */

/**
 * An id in a path or a body: 1 to 200 characters, none of them a slash, a
 * backslash or a control character (NUL included), so no id can read as a
 * path (`../`) or end a string early, wherever it goes next.
 */
export const SAFE_ID_PATTERN = '^[^\\u0000-\\u001f\\u007f/\\\\]+$';
export const Id = Type.String({ minLength: 1, maxLength: 200, pattern: SAFE_ID_PATTERN });

export const AssetBody = Type.Object(
  {
    id: Id,
    name: Type.Optional(Type.String({ maxLength: 500 })),
    manufacturer: Type.Optional(Type.String({ maxLength: 500 })),
    model: Type.Optional(Type.String({ maxLength: 500 })),
    osName: Type.Optional(Type.String({ maxLength: 500 })),
    site: Type.Optional(Type.String({ maxLength: 500 })),
    department: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: true },
);

export const SubmitTaskBody = Type.Object(
  {
    task_type: Type.String({ minLength: 1, maxLength: 100 }),
    parameters: Type.Optional(Type.Object({}, { additionalProperties: true })),
    priority: Type.Optional(Type.Integer({ minimum: -1_000_000, maximum: 1_000_000 })),
  },
  { additionalProperties: false },
);

export const DeploymentBody = Type.Object({ deployment_id: Id }, { additionalProperties: false });

export const TaskParams = Type.Object({ task_id: Id });

export const DeploymentQuery = Type.Object({ deployment_id: Type.Optional(Type.String({ maxLength: 200 })) });

export const AssetQuery = Type.Object({ asset_id: Type.Optional(Type.String({ maxLength: 200 })) });

export const AgentParams = Type.Object({ id: Id });
