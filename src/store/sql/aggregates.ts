import type { AdviceStore } from '../advice-store.js';
import type { AgentStore } from '../agent-store.js';
import type { DeploymentStore } from '../deployment-store.js';
import type { FleetStore } from '../fleet-store.js';
import type { SecurityStore } from '../security-store.js';
import type { TaskStore } from '../task-store.js';
import { sqlAdviceStore } from './advice-store.js';
import { sqlAgentStore } from './agent-store.js';
import type { SqlContext } from './context.js';
import { sqlDeploymentStore } from './deployment-store.js';
import { sqlFleetStore } from './fleet-store.js';
import { sqlSecurityStore } from './security-store.js';
import { sqlTaskStore } from './task-store.js';

/** Every aggregate's verbs of the port: what an SQL adapter adds to its connection's own verbs. */
export type SqlAggregates = TaskStore & FleetStore & DeploymentStore & SecurityStore & AgentStore & AdviceStore;

/** The verbs of every aggregate over one SQL context. */
export function sqlAggregates(ctx: SqlContext): SqlAggregates {
  return { ...sqlTaskStore(ctx), ...sqlFleetStore(ctx), ...sqlDeploymentStore(ctx), ...sqlSecurityStore(ctx), ...sqlAgentStore(ctx), ...sqlAdviceStore(ctx) };
}
