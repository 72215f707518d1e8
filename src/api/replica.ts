import { Type } from 'typebox';
import { DocumentedEnum } from './schema-helpers.js';

/** A replica's role and what it knows of the leader, as /healthz and /readyz report it. */
export interface ReplicaStatus {
  role: 'leader' | 'follower';
  /** This replica's id. */
  id: string;
  /** The leader's URL, when one is known (null on SQLite, where the one process always leads). */
  leader: string | null;
  /** The lease's epoch as this replica last saw it (null on SQLite). */
  epoch: number | null;
}

export const ReplicaSchema = Type.Object(
  {
    role: DocumentedEnum(['leader', 'follower']),
    id: Type.String({ description: "this process's replica id" }),
    leader: Type.Union([Type.String(), Type.Null()], { description: "the leader's URL, where replicas share PostgreSQL; null on SQLite" }),
    epoch: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: "the leader lease's epoch (it grows by one at each change of leader); null on SQLite" }),
  },
  { additionalProperties: false, description: 'this process in a group of replicas (see docs/operations.md)' },
);

/** The one process of an SQLite store: it always leads. */
export function soleLeader(id: string): () => ReplicaStatus {
  return () => ({ role: 'leader', id, leader: null, epoch: null });
}
