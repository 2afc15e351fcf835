/**
 * Admission control: a concurrency limit with a bounded FIFO queue; beyond
 * it, 503 with Retry-After.
 *
 * ```ts
 * const admission = createAdmission({ maxConcurrency: 1024, queueSize: 100, queueTimeoutMs: 10_000 });
 * const handler = compose(route, admissionPhase(admission)); // src/pipeline
 * const release = await admission.acquire();                  // anything else; throws AdmissionRejected
 * try { ... } finally { release(); }
 * ```
 *
 * @module
 */

export {
  type Admission,
  type AdmissionOptions,
  AdmissionRejected,
  type AdmissionSnapshot,
  createAdmission,
  type RejectReason,
  type SharedCounts,
} from "./admission.ts";
export { admissionPhase } from "./phase.ts";
