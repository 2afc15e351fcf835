/**
 * The worker side of the pool protocol: a worker entry file calls
 * {@linkcode serveTasks} once with its handlers.
 *
 * @module
 */
import type { ResultMessage, TaskHandler, TaskMessage } from "./protocol.ts";

// Inside a Web Worker `self` is the worker's global scope; Deno's lib types it as Window.
interface WorkerScope {
  onmessage: ((e: MessageEvent<TaskMessage>) => void) | null;
  postMessage(message: ResultMessage, transfer?: Transferable[]): void;
}

/** Answers every task message with its handler's result (or the error it threw). */
export function serveTasks(handlers: Record<string, TaskHandler>): void {
  const scope = self as unknown as WorkerScope;
  scope.onmessage = async (e) => {
    const { id, task } = e.data;
    const handler = handlers[task.kind];
    if (!handler) {
      scope.postMessage({ id, ok: false, error: `unknown task kind "${task.kind}"` });
      return;
    }
    try {
      const result = await handler(task);
      scope.postMessage({ id, ok: true, value: result.value }, result.transfer ?? []);
    } catch (err) {
      scope.postMessage({ id, ok: false, error: err instanceof Error ? err.message : String(err) });
    }
  };
}
