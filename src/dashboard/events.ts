/**
 * A tiny publish/subscribe hub and its server-sent-events rendering: the
 * supervisor, the stats poller and the load test runner publish; every open
 * `/api/events` stream subscribes.
 *
 * @module
 */

/** One event for the browser: a name and a JSON-serialisable payload. */
export interface DashboardEvent {
  event: string;
  data: unknown;
}

export type Listener = (e: DashboardEvent) => void;

/** Fan-out of events to subscribers; a failing subscriber never stops the others. */
export class EventHub {
  #listeners = new Map<Listener, () => void>();

  /** Adds a subscriber; `onClose` runs when the hub closes (to end its stream). */
  subscribe(fn: Listener, onClose: () => void = () => {}): () => void {
    this.#listeners.set(fn, onClose);
    return () => this.#listeners.delete(fn);
  }

  publish(event: string, data: unknown): void {
    for (const fn of [...this.#listeners.keys()]) {
      try {
        fn({ event, data });
      } catch {
        // a closed stream unsubscribes itself; nothing to do here
      }
    }
  }

  get size(): number {
    return this.#listeners.size;
  }

  /** Ends every subscription (open event streams are closed). */
  close(): void {
    const closers = [...this.#listeners.values()];
    this.#listeners.clear();
    for (const c of closers) c();
  }
}

const encoder = new TextEncoder();

/** Encodes one SSE frame; JSON never contains a raw newline, so one data line suffices. */
export function sseFrame(e: DashboardEvent): Uint8Array {
  return encoder.encode(`event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`);
}

/**
 * A `text/event-stream` response: `initial` events first, then everything the
 * hub publishes, with a comment line every `heartbeatMs` so proxies and
 * browsers keep the stream open. Unsubscribes when the client goes away.
 */
export function sseResponse(
  hub: EventHub,
  initial: DashboardEvent[],
  heartbeatMs = 15_000,
): Response {
  let unsubscribe = () => {};
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const stop = () => {
    unsubscribe();
    clearInterval(heartbeat);
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (e: DashboardEvent) => {
        try {
          controller.enqueue(sseFrame(e));
        } catch {
          stop();
        }
      };
      controller.enqueue(encoder.encode("retry: 2000\n\n"));
      for (const e of initial) send(e);
      unsubscribe = hub.subscribe(send, () => {
        clearInterval(heartbeat);
        try {
          controller.close();
        } catch { /* already closed */ }
      });
      heartbeat = setInterval(() => {
        try {
          controller.enqueue(encoder.encode(": keep-alive\n\n"));
        } catch {
          stop();
        }
      }, heartbeatMs);
    },
    cancel: stop,
  });
  return new Response(body, {
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}
