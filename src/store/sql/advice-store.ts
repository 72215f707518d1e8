import type { AdviceApplied, AdviceRecord } from '../../domain/advice.js';
import { subjectKey } from '../../domain/advice.js';
import type { AdviceFilter, AdviceStore } from '../advice-store.js';
import type { SqlContext } from './context.js';
import { whereOf } from './context.js';
import type { AdviceRow } from './rows.js';
import { toAdvice } from './rows.js';

/** The AdviceStore verbs, for any SQL adapter. A record is one row: its subject and trigger in columns to list by, the rest as JSON. */
export function sqlAdviceStore(ctx: SqlContext): AdviceStore {
  return {
    insertAdvice(a: Omit<AdviceRecord, 'seq'>): Promise<number> {
      const { id, trigger, createdAt, applied, ...body } = a;
      return ctx
        .write([{
          sql: 'INSERT INTO advice (id, subject, trigger, created_at, body, applied) VALUES (?, ?, ?, ?, ?, ?) RETURNING seq',
          params: [id, subjectKey(a.subject), trigger, createdAt, JSON.stringify(body), applied === null ? null : JSON.stringify(applied)],
          want: 'row',
        }])
        .then(([row]) => Number((row as { seq: number }).seq));
    },

    async getAdvice(id: string): Promise<AdviceRecord | null> {
      const row = await ctx.one<AdviceRow>('SELECT * FROM advice WHERE id = ?', [id]);
      return row ? toAdvice(row) : null;
    },

    async listAdvice(filter: AdviceFilter, limit: number, before?: number): Promise<AdviceRecord[]> {
      const { where, params } = whereOf([
        ['seq < ?', before ?? Number.MAX_SAFE_INTEGER],
        filter.subject !== undefined ? ['subject = ?', filter.subject] : null,
        filter.trigger !== undefined ? ['trigger = ?', filter.trigger] : null,
      ]);
      return (await ctx.all<AdviceRow>(`SELECT * FROM advice ${where} ORDER BY seq DESC LIMIT ?`, [...params, limit])).map(toAdvice);
    },

    recordAdviceApplied(id: string, applied: AdviceApplied): Promise<boolean> {
      return ctx
        .write([{ sql: 'UPDATE advice SET applied = ? WHERE id = ? AND applied IS NULL', params: [JSON.stringify(applied), id], want: 'changes' }])
        .then(([n]) => n === 1);
    },
  };
}
