import { Type } from 'typebox';
import { TASK_TYPES } from '../domain/types.js';
import { documentedAs } from './openapi.js';

/** Request schemas. TypeBox gives validation, handler types and the OpenAPI document from one definition. */

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

/**
 * A task type in a request: one of the five, but checked by the task engine rather than the schema, so that
 * any other is refused with its own code (400 ORCH_UNKNOWN_TASK_TYPE) and message; documented as the enum it is.
 */
export function taskTypeField(description: string) {
  return Type.String({ minLength: 1, maxLength: 100, description, ...documentedAs(Type.Enum([...TASK_TYPES], { type: 'string', description: `${description}; any other is a 400 ORCH_UNKNOWN_TASK_TYPE` })) });
}

export const SubmitTaskBody = Type.Object(
  {
    task_type: taskTypeField('the task type'),
    parameters: Type.Optional(Type.Object({}, { additionalProperties: true })),
    priority: Type.Optional(Type.Integer({ minimum: -1_000_000, maximum: 1_000_000 })),
  },
  { additionalProperties: false },
);

export const DeploymentBody = Type.Object({ deployment_id: Id }, { additionalProperties: false });

export const TaskParams = Type.Object({ task_id: Id });

/** `deployment_id` is required, but checked by the route, which answers the prototype's message (400 `deployment_id required`). */
export const DeploymentQuery = Type.Object(
  { deployment_id: Type.Optional(Type.String({ maxLength: 200 })) },
  { ...documentedAs(Type.Object({ deployment_id: Type.String({ minLength: 1, maxLength: 200 }) })) },
);

export const AssetQuery = Type.Object({ asset_id: Type.Optional(Type.String({ maxLength: 200 })) });

export const AgentParams = Type.Object({ id: Id });
