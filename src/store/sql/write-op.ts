/** One SQL statement of a write, with `?` placeholders. `want` says what to hand back from it. */
export interface Step {
  sql: string;
  params?: unknown[];
  /** `changes`: how many rows it changed; `row`: the first row it returned (`RETURNING ...`). */
  want?: 'changes' | 'row';
}

/**
 * A write: its steps run in order, in one transaction with the writes committed beside it.
 * Writes of one row's state may carry its `key`: a write marked `supersedable` (it only sets state)
 * is skipped when a later write in the same batch with the same key is `full` (it sets all of that
 * state), since the later one leaves the row exactly as both together would.
 */
export interface WriteOp {
  steps: Step[];
  key?: string;
  supersedable?: boolean;
  full?: boolean;
}

export type StepResult = number | Record<string, unknown> | null | undefined;

/** The statement a probe writes: it proves that a commit can reach the disk (or the database) again. */
export const PROBE_SQL = "INSERT INTO meta (key, value) VALUES ('storage_probe', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value";

/** Sets a meta value (key, value). */
export const META_SQL = 'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value';

/**
 * The positions of the writes of a batch that a later write of the same batch makes needless (see WriteOp).
 * Self-contained (no outside references): the SQLite writer thread runs it from its source text.
 */
export function supersededWrites(ops: readonly WriteOp[]): Set<number> {
  const superseded = new Set<number>();
  const fullLater = new Set<string>();
  for (let i = ops.length - 1; i >= 0; i--) {
    const op = ops[i] as WriteOp;
    if (op.key === undefined) continue;
    if (op.supersedable && fullLater.has(op.key)) superseded.add(i);
    if (op.full) fullLater.add(op.key);
  }
  return superseded;
}
