import type { DeploymentRecord, Execution, GateEvaluation } from '../domain/deployment.js';

/**
 * Deployments, their executions (one per device) and their gate evaluations. Every verb is atomic, and a write's promise resolves once it is durably committed, after every write
 * made before it (see Store).
 */
export interface DeploymentStore {
  /** Stores a new deployment; resolves with its `seq`. */
  insertDeployment(deployment: Omit<DeploymentRecord, 'seq'>): Promise<number>;
  /**
   * Saves the deployment's record and, in the same commit, `also` executions
   * and gate evaluations of it: a deployment's transition (e.g. an abort and
   * the executions it cancels) is all on disk or not at all.
   */
  saveDeployment(deployment: DeploymentRecord, also?: { executions?: readonly Execution[]; evaluations?: readonly GateEvaluation[] }): Promise<void>;
  /** Inserts or replaces executions of one deployment, in one commit. */
  saveExecutions(deploymentSeq: number, executions: readonly Execution[]): Promise<void>;
  insertGateEvaluation(deploymentSeq: number, evaluation: GateEvaluation): Promise<void>;
  getDeployment(id: string): Promise<DeploymentRecord | null>;
  /** Newest first; `before` is the `seq` of the last deployment of the previous page. */
  listDeployments(limit: number, before?: number): Promise<DeploymentRecord[]>;
  /** Deployments not yet ended (scheduled, in progress, paused or halted). */
  loadActiveDeployments(): Promise<DeploymentRecord[]>;
  getExecutions(deploymentSeq: number): Promise<Execution[]>;
  /** One device's executions in every deployment, newest deployment first, with the deployment's id. */
  deviceExecutions(deviceId: string, limit: number): Promise<{ deploymentId: string; execution: Execution }[]>;
  getGateEvaluations(deploymentSeq: number): Promise<GateEvaluation[]>;
}
