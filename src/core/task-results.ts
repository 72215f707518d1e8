import { OrchestratorError } from '../domain/errors.js';
import type { TaskEngine } from './task-engine.js';
import type { ResultReport } from './task-types.js';

/** What became of a result an agent reported. */
export type ResultVerdict = { status: 'accepted' } | { status: 'refused'; code: string; error: string };

/**
 * Takes an agent's result of an attempt; resolves once it is committed. A result of an attempt that is over
 * (stale: the task went on to another attempt, or ended) or of a task the agent does not hold is refused and
 * changes nothing: that refusal is the answer, not an error. Anything else (the store cannot commit) rejects.
 */
export async function offerResult(tasks: TaskEngine, agentId: string, taskId: string, attempt: number, report: ResultReport): Promise<ResultVerdict> {
  try {
    await tasks.reportResult(agentId, taskId, attempt, report);
    return { status: 'accepted' };
  } catch (err) {
    if (err instanceof OrchestratorError && (err.code === 'ORCH_STALE_ATTEMPT' || err.code === 'ORCH_TASK_NOT_FOUND')) {
      return { status: 'refused', code: err.code, error: err.message };
    }
    throw err;
  }
}
