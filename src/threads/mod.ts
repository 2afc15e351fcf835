/**
 * The serving threads (SERVE_THREADS) as one proxy: a thread group with
 * shared counters, channels and requests to thread 0 (`group.ts`), the
 * memory caches replicated with purges that reach every thread
 * (`cache_replicas.ts`), and actions run on every thread (`fanout.ts`:
 * reloads, backend drains).
 *
 * @module
 */
export {
  COUNTER,
  type CreatedGroup,
  createThreadGroup,
  joinThreadGroup,
  sharedAdmission,
  sharedConnectionSlots,
  sharedTurns,
  ThreadGroup,
  type ThreadGroupInit,
} from "./group.ts";
export {
  CacheReplicas,
  type CacheReplicasOptions,
  type ReplicaCounters,
} from "./cache_replicas.ts";
export { Fanout, type FanoutResult } from "./fanout.ts";
