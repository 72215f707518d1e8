import type { AdviceApplied, AdviceRecord } from '../../domain/advice.js';
import { subjectKey } from '../../domain/advice.js';
import type { AdviceFilter, AdviceStore } from '../advice-store.js';
import type { SqliteContext } from './context.js';
import { run } from './context.js';
import type { AdviceRow } from './rows.js';
import { toAdvice } from './rows.js';

/** The AdviceStore verbs on SQLite. A record is one row: its subject and trigger in columns to list by, the rest as JSON. */
export function sqliteAdviceStore(ctx: SqliteContext): AdviceStore {
  const db = ctx.db;
  let prepared: ReturnType<typeof prepare> | undefined;
  const prepare = () => ({
    get: db.prepare<[string], AdviceRow>('SELECT * FROM advice WHERE id = ?'),
    list: db.prepare<[{ subject: string | null; trigger: string | null; before: number; limit: number }], AdviceRow>(
      `SELECT * FROM advice WHERE seq < @before AND (@subject IS NULL OR subject = @subject) AND (@trigger IS NULL OR trigger = @trigger)
       ORDER BY seq DESC LIMIT @limit`,
    ),
  });
  const lazy = (): ReturnType<typeof prepare> => (prepared ??= prepare());
  return {
    insertAdvice(a: Omit<AdviceRecord, 'seq'>): Promise<number> {
      const { id, trigger, createdAt, applied, ...body } = a;
      return ctx
        .write([{
          sql: 'INSERT INTO advice (id, subject, trigger, created_at, body, applied) VALUES (?, ?, ?, ?, ?, ?)',
          params: [id, subjectKey(a.subject), trigger, createdAt, JSON.stringify(body), applied === null ? null : JSON.stringify(applied)],
          want: 'rowid',
        }])
        .then(([seq]) => seq as number);
    },

    getAdvice(id: string): Promise<AdviceRecord | null> {
      return run(() => {
        const row = lazy().get.get(id);
        return row ? toAdvice(row) : null;
      });
    },

    listAdvice(filter: AdviceFilter, limit: number, before?: number): Promise<AdviceRecord[]> {
      return run(() =>
        lazy()
          .list.all({ subject: filter.subject ?? null, trigger: filter.trigger ?? null, before: before ?? Number.MAX_SAFE_INTEGER, limit })
          .map(toAdvice),
      );
    },

    recordAdviceApplied(id: string, applied: AdviceApplied): Promise<boolean> {
      return ctx
        .write([{ sql: 'UPDATE advice SET applied = ? WHERE id = ? AND applied IS NULL', params: [JSON.stringify(applied), id], want: 'changes' }])
        .then(([n]) => n === 1);
    },
  };
}
