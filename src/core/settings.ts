import type { HealthScoreConfig } from '../domain/health-score.js';
import type { BackoffPolicy } from '../domain/types.js';

/** A device's metrics history: one point per `intervalMs` at most, kept `retentionMs`. */
export interface MetricsHistorySettings {
  intervalMs: number;
  retentionMs: number;
}

/** The orchestrator's settings, from the configuration (src/config/config.ts). */
export interface OrchestratorSettings {
  heartbeatIntervalMs: number;
  agentTimeoutMs: number;
  taskTimeoutMs: number;
  taskRetryLimit: number;
  rebalanceIntervalMs: number;
  /** Tasks one agent runs at once. @default 1 */
  agentConcurrency?: number;
  /** Waiting this long counts as one priority level. @default 60000 */
  taskAgingMs?: number;
  /** Retry delays of tasks that do not set their own. */
  defaultBackoff?: BackoffPolicy;
  /** Weights and thresholds of the device health score. */
  healthScore?: HealthScoreConfig;
  /** How often a device's metrics are kept in its history, and for how long. @default 5 min, 7 days */
  metricsHistory?: MetricsHistorySettings;
  /** The token network agents enroll with; generated on the first start and kept when not given; 'off' for none. */
  enrollToken?: string;
  /** Every newly enrolled agent waits as `pending` for an admin's approval (ENROLL_APPROVAL). */
  enrollApproval?: boolean;
}
