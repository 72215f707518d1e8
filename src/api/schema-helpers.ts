import { Type } from 'typebox';
import type { Static, TSchema } from 'typebox';

/* Helpers of the response schemas: enums, nullables, dates and references to components. */

/** Compile-time check that two types are the same (an enum listed here against the domain's union). */
export type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** An enum of strings, typed as their union. */
export function StringEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

/**
 * An enum of strings documented as such, typed as `string`: for fields the code types as a plain
 * string although only these values occur (the truthfulness tests check the values).
 */
export function DocumentedEnum(values: readonly string[], options: Record<string, unknown> = {}) {
  return Type.Unsafe<string>({ type: 'string', enum: [...values], ...options });
}

/**
 * An enum of strings or null. (Not `Nullable(StringEnum(...))`: in OpenAPI 3.0 a nullable enum must
 * list null among its values, or null is refused.)
 */
export function NullableEnum<const T extends readonly string[]>(values: T, options: Record<string, unknown> = {}) {
  return Type.Unsafe<T[number] | null>({ type: ['string', 'null'], enum: [...values, null], ...options });
}

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
export const DateTime = Type.String({ format: 'date-time' });
export const NullableDateTime = Nullable(DateTime);
export const Count = Type.Integer({ minimum: 0 });
export const Percent = Type.Number({ minimum: 0, maximum: 100 });

/** A reference to a component (a schema with an `$id`, in COMPONENTS), typed as the component. */
export function ref<T extends TSchema>(schema: T, description?: string) {
  const id = (schema as { $id?: unknown }).$id;
  if (typeof id !== 'string') throw new Error('ref() needs a component: a schema with an $id');
  return Type.Unsafe<Static<T>>(Type.Ref(id, description === undefined ? {} : { description }));
}
