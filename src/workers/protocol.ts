/**
 * The messages a pool and its workers exchange. A task is a plain object with a
 * `kind` the worker dispatches on; buffers travel as transferables both ways.
 *
 * @module
 */

/** A unit of work sent to a worker. */
export interface PoolTask {
  /** Which handler in the worker runs it. */
  readonly kind: string;
  /**
   * Safe to run twice: when its worker crashes or times out the pool retries it
   * once on a fresh worker instead of failing it.
   */
  readonly idempotent?: boolean;
  readonly [key: string]: unknown;
}

/** Main thread → worker. */
export interface TaskMessage {
  readonly id: number;
  readonly task: PoolTask;
}

/** Worker → main thread. */
export type ResultMessage =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: string };

/** What a task handler returns: a value and the buffers inside it to transfer back. */
export interface HandlerResult<T = unknown> {
  readonly value: T;
  readonly transfer?: Transferable[];
}

export type TaskHandler = (
  task: PoolTask,
) => HandlerResult | Promise<HandlerResult>;
