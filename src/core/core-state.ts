import { OrchestratorError } from '../domain/errors.js';
import type { Fleet } from '../fleet/fleet.js';
import { CommandIds } from './network-channel.js';
import type { RolloutController } from './rollouts.js';
import type { StorageGuard } from './storage-guard.js';
import type { TaskEngine } from './task-engine.js';

/** The parts of the in-memory state that are rebuilt together from the store. */
export interface StateParts {
  tasks: TaskEngine;
  fleet: Fleet;
  deployments: RolloutController;
}

/**
 * What the orchestrator's components share: the in-memory state (the task queue, the fleet, the deployments)
 * and whether the orchestrator runs. The state is replaced as a whole when it is rebuilt from the store after
 * a failed write (StorageGuard), so no component keeps a reference to one of its parts: each reads it here,
 * when it uses it.
 */
export class CoreState {
  /** Set at start from the stored master id. */
  masterId = '';
  /** Set at start from the stored boot number. */
  commandIds = new CommandIds(0);
  /** Between start and stop. */
  isRunning = false;
  private parts: StateParts | null = null;

  constructor(private readonly storage: StorageGuard) {}

  get tasks(): TaskEngine {
    return this.current.tasks;
  }

  get fleet(): Fleet {
    return this.current.fleet;
  }

  get deployments(): RolloutController {
    return this.current.deployments;
  }

  /** Installs the parts (at construction, and after a rebuild); returns the ones they replace. */
  replace(parts: StateParts): StateParts | null {
    const before = this.parts;
    this.parts = parts;
    return before;
  }

  /** The store commits now (false after a failed write, until a probe succeeds). */
  get writable(): boolean {
    return this.storage.writable;
  }

  assertRunning(): void {
    if (!this.isRunning) throw OrchestratorError.of('ORCH_SHUTTING_DOWN');
  }

  /** Before a change that a write backs: running, and the store commits. */
  assertWritable(): void {
    this.assertRunning();
    this.storage.assertWritable();
  }

  private get current(): StateParts {
    if (this.parts === null) throw new Error('the orchestrator state is used before it was built');
    return this.parts;
  }
}
