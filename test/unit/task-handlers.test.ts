import { describe, expect, it } from 'vitest';
import { processData, TaskFailure } from '../../src/sim/task-handlers.js';

describe('process_data', () => {
  it('computes statistics over data', () => {
    expect(processData({ data: [3, 1, 4, 1, 5, 9] })).toEqual({ count: 6, sum: 23, mean: 23 / 6, min: 1, max: 9, median: 3.5 });
    expect(processData({ data: [] })).toMatchObject({ count: 0, sum: 0, mean: null });
  });

  it('digests other parameters canonically', () => {
    const a = processData({ x: 1, y: { b: 2, a: [1, 2] } }) as { sha256: string; fields: number };
    const b = processData({ y: { a: [1, 2], b: 2 }, x: 1 }) as { sha256: string };
    expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(a.sha256).toBe(b.sha256);
    expect(a.fields).toBe(2);
    expect((processData({ x: 2 }) as { sha256: string }).sha256).not.toBe((processData({ x: 1 }) as { sha256: string }).sha256);
  });

  it('refuses bad data without retry', () => {
    for (const data of ['1,2', [1, 'x'], [Number.NaN], null]) {
      try {
        processData({ data });
        expect.fail('should have thrown');
      } catch (err) {
        expect(err).toBeInstanceOf(TaskFailure);
        expect((err as TaskFailure).retryable).toBe(false);
      }
    }
  });
});
