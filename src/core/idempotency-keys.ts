import type { Task } from '../domain/types.js';

/**
 * The idempotency keys of live tasks, and what keeps two submits of one key from both creating a task: a
 * submit decides one key at a time (`lock`), and a task whose insert has not committed yet is answered only
 * once it has (`find`): a second submit must not learn of a task the store may still refuse.
 */
export class IdempotencyKeys {
  private readonly byKey = new Map<string, string>();
  /** Inserts of tasks with a key that have not committed yet, by task id. */
  private readonly inserting = new Map<string, Promise<void>>();
  /** Keys a submit is deciding (looking up, then creating). */
  private readonly locks = new Map<string, Promise<void>>();

  /** Waits for any other submit deciding this key, then holds it; call the returned function to let it go. */
  async lock(key: string): Promise<() => void> {
    for (let lock = this.locks.get(key); lock; lock = this.locks.get(key)) await lock;
    let unlock = (): void => undefined;
    this.locks.set(key, new Promise<void>((resolve) => (unlock = resolve)));
    return () => {
      this.locks.delete(key);
      unlock();
    };
  }

  /**
   * The live task a key created, once its insert has committed (`live` reads it from memory); undefined when
   * no live task has it (the store may still hold an ended one).
   */
  async find(key: string, live: (id: string) => Task | undefined): Promise<Task | undefined> {
    const id = this.byKey.get(key);
    if (id === undefined) return undefined;
    const inserting = this.inserting.get(id);
    if (inserting) await inserting;
    return live(id);
  }

  /** A live task with its key (loaded at start, or taken in: then `committed` is its insert). */
  add(task: Task, committed?: Promise<void>): void {
    if (task.idempotencyKey === null) return;
    this.byKey.set(task.idempotencyKey, task.id);
    if (committed === undefined) return;
    this.inserting.set(task.id, committed);
    const settled = (): void => {
      this.inserting.delete(task.id);
    };
    committed.then(settled, settled);
  }

  /** The task ended: its key is answered from the store from now on. */
  remove(task: Task): void {
    if (task.idempotencyKey !== null) this.byKey.delete(task.idempotencyKey);
  }
}
