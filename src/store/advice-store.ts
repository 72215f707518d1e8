import type { AdviceApplied, AdviceRecord, AdviceTrigger } from '../domain/advice.js';

export interface AdviceFilter {
  /** A subject key: `deployment:<id>`, `ring:<name>` or `fleet`. */
  subject?: string;
  trigger?: AdviceTrigger;
}

/**
 * The advisor's records: what it advised, on what evidence, by which provider, and what applying it did.
 * Every verb is atomic, and a write's promise resolves once it is durably committed, after every write made
 * before it (see Store).
 */
export interface AdviceStore {
  /** Stores new advice; resolves with its `seq`. */
  insertAdvice(advice: Omit<AdviceRecord, 'seq'>): Promise<number>;
  getAdvice(id: string): Promise<AdviceRecord | null>;
  /** Newest first, matching the filter; `before` is the `seq` of the last advice of the previous page. */
  listAdvice(filter: AdviceFilter, limit: number, before?: number): Promise<AdviceRecord[]>;
  /** Records what applying the advice did, once: resolves false (nothing written) when it was applied already. */
  recordAdviceApplied(id: string, applied: AdviceApplied): Promise<boolean>;
}
