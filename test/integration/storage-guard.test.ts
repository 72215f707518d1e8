import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { TASK_TYPES } from '../../src/domain/types.js';
import type { Task } from '../../src/domain/types.js';
import type { TaskHandler } from '../../src/sim/task-handlers.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { READ_VERBS, WRITE_VERBS } from '../../src/store/store.js';
import type { Harness } from '../support/harness.js';
import { advanceUntil, harnessPerTest, taskOf, waitForStatus } from '../support/harness.js';
import { mountTmpfs } from '../support/tmpfs.js';

const mounts: ReturnType<typeof mountTmpfs>[] = [];
const harness = harnessPerTest({ capabilities: [...TASK_TYPES] });
afterEach(() => {
  for (const m of mounts.splice(0)) m.unmount();
});

/** A handler that runs until released. */
function gate() {
  const waiting: (() => void)[] = [];
  const handler: TaskHandler = async () => {
    await new Promise<void>((resolve) => waiting.push(resolve));
    return 'done';
  };
  return { handler, release: () => waiting.splice(0).forEach((r) => r()), waiting: () => waiting.length };
}

/** What memory says about the queue equals what the store holds. */
async function expectMemoryEqualsStore(h: Harness): Promise<void> {
  const stored = await h.store.countTasksByStatus();
  expect(h.orchestrator.tasks.countsByStatus()).toEqual(stored);
  for (const t of await h.store.loadLiveTasks()) {
    const shown = await taskOf(h, t.id);
    expect({ id: shown.id, status: shown.status, attempts: shown.attempts, assignedTo: shown.assignedTo }).toEqual({ id: t.id, status: t.status, attempts: t.attempts, assignedTo: t.assignedTo });
  }
}

const submit = async (h: Harness, key: string): Promise<Task> =>
  ((await h.orchestrator.tasks.submit([{ type: 'process_data', parameters: { data: [1, 2] }, idempotencyKey: key }]))[0] as { task: Task }).task;

describe('storage failures', () => {
  it('every verb in the read and write lists exists on the SQLite adapter (the port\'s own lists are checked at compile time)', () => {
    const store = new SqliteStore(':memory:');
    expect([...WRITE_VERBS, ...READ_VERBS].filter((verb) => typeof store[verb] !== 'function')).toEqual([]);
    expect(new Set([...WRITE_VERBS, ...READ_VERBS]).size).toBe(WRITE_VERBS.length + READ_VERBS.length);
    void store.close();
  });

  it('a write that fails leaves nothing of its change in memory; the state is rebuilt from the store, and writes resume once the disk has room', async () => {
    const fs = mountTmpfs(32);
    mounts.push(fs);
    const g = gate();
    const h = await harness({ dbPath: join(fs.dir, 'orchestrator.db'), handlers: { process_data: g.handler } });
    for (let i = 0; i < 3; i++) await h.orchestrator.agents.spawn();
    await h.advance(50);
    const running = await submit(h, 'running');
    await advanceUntil(h, () => g.waiting() === 1);
    for (let i = 0; i < 5; i++) await submit(h, `queued-${i}`);
    await h.advance(50);
    await expectMemoryEqualsStore(h);
    const before = h.orchestrator.tasks.countsByStatus();

    fs.fill();
    // The agent's result cannot be committed: not acknowledged, the task stays in progress (it is sent again).
    g.release();
    await h.advance(10);
    expect(h.orchestrator.storage.writable).toBe(false);
    // A submission fails with 503 and leaves no trace: not in the counts, its key unknown.
    await expect(submit(h, 'refused')).rejects.toMatchObject({ code: 'ORCH_STORAGE_UNAVAILABLE', status: 503 });
    await expect(h.orchestrator.agents.spawn()).rejects.toMatchObject({ code: 'ORCH_STORAGE_UNAVAILABLE', status: 503 });
    await h.advance(500);
    await expectMemoryEqualsStore(h);
    expect(h.orchestrator.tasks.countsByStatus()).toEqual(before);
    expect((await taskOf(h, running.id)).status).toBe('in_progress');
    expect(await h.store.findTaskByIdempotencyKey('refused')).toBeNull();
    // Time goes on while the disk is full: no loop changes anything, nobody is marked offline for it.
    await h.advance(60_000);
    await expectMemoryEqualsStore(h);
    expect(h.orchestrator.storage.status()).toMatchObject({ writable: false, outages: 1 });

    fs.free();
    await advanceUntil(h, () => h.orchestrator.storage.writable, 30_000);
    expect(h.orchestrator.storage.status()).toMatchObject({ writable: true, outages: 1, recoveries: 1 });
    // The result comes again and is taken once; the refused key creates its task now.
    const done = await waitForStatus(h, running.id, 'completed', 60_000);
    expect(done.attempts).toBe(1);
    expect((await h.orchestrator.tasks.get(running.id)).attempts.map((a) => a.outcome)).toEqual(['succeeded']);
    const out = await h.orchestrator.tasks.submit([{ type: 'process_data', parameters: { data: [3] }, idempotencyKey: 'refused' }]);
    expect(out[0]?.created).toBe(true);
    await advanceUntil(h, () => {
      g.release();
      return Object.values(h.orchestrator.tasks.countsByStatus()).reduce((a, b) => a + b, 0) === h.orchestrator.tasks.countsByStatus().completed;
    }, 120_000);
    await expectMemoryEqualsStore(h);
  });

  it('a second submit with the same idempotency key is answered only after the first one committed, and refused when it did not', async () => {
    const fs = mountTmpfs(32);
    mounts.push(fs);
    const h = await harness({ dbPath: join(fs.dir, 'orchestrator.db') });
    await h.advance(10);
    fs.fill();
    const first = submit(h, 'same');
    const second = submit(h, 'same');
    await expect(first).rejects.toMatchObject({ code: 'ORCH_STORAGE_UNAVAILABLE' });
    await expect(second).rejects.toMatchObject({ code: 'ORCH_STORAGE_UNAVAILABLE' });
    fs.free();
    await advanceUntil(h, () => h.orchestrator.storage.writable, 30_000);
    const [a, b] = await Promise.all([submit(h, 'same'), submit(h, 'same')]);
    expect(a.id).toBe(b.id);
    expect(await h.store.findTaskByIdempotencyKey('same')).toMatchObject({ id: a.id });
  });
});
