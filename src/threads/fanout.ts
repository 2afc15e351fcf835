/**
 * An action every serving thread takes when one is asked (a reload, a
 * backend drain): it runs here, then on every other thread, and resolves
 * once all have answered, with the other threads' failures.
 *
 * @module
 */
import type { ThreadGroup } from "./group.ts";

type Message<A> =
  | { kind: "run"; id: number; from: number; arg: A }
  | { kind: "done"; id: number; to: number; thread: number; value?: unknown; error?: string };

/** What the other threads answered: their failures (one line each) and their results. */
export interface FanoutResult {
  errors: string[];
  values: unknown[];
}

export class Fanout<A> {
  readonly #group: ThreadGroup;
  readonly #run: (arg: A) => unknown;
  readonly #timeoutMs: number;
  readonly #channel: BroadcastChannel;
  readonly #waiting = new Map<number, { missing: number; result: FanoutResult; done(): void }>();
  #seq = 0;

  /** `run` is this thread's part; it may throw (the failure is reported to the asker). */
  constructor(group: ThreadGroup, name: string, run: (arg: A) => unknown, timeoutMs = 30_000) {
    this.#group = group;
    this.#run = run;
    this.#timeoutMs = timeoutMs;
    this.#channel = group.channel(`fanout:${name}`);
    this.#channel.onmessage = (e: MessageEvent<Message<A>>) => this.#receive(e.data);
  }

  async #receive(m: Message<A>): Promise<void> {
    if (m.kind === "run") {
      let error: string | undefined;
      let value: unknown;
      try {
        value = await this.#run(m.arg);
      } catch (err) {
        error = (err as Error).message;
      }
      const thread = this.#group.thread;
      this.#channel.postMessage(
        { kind: "done", id: m.id, to: m.from, thread, value, error } satisfies Message<A>,
      );
    } else if (m.to === this.#group.thread) {
      const w = this.#waiting.get(m.id);
      if (w === undefined) return;
      if (m.error !== undefined) w.result.errors.push(`thread ${m.thread}: ${m.error}`);
      else w.result.values.push(m.value);
      if (--w.missing === 0) w.done();
    }
  }

  /**
   * Runs here (a failure here throws, and the others are not asked), then on every other
   * thread; resolves with their failures, one line each (a thread that does not answer within
   * the time limit is one).
   */
  async all(arg: A): Promise<string[]> {
    await this.#run(arg);
    return (await this.others(arg)).errors;
  }

  /** Runs on every other thread only (this one has done its part). */
  async others(arg: A): Promise<FanoutResult> {
    const others = this.#group.threads - 1;
    const result: FanoutResult = { errors: [], values: [] };
    if (others === 0) return result;
    const id = ++this.#seq;
    const { promise, resolve } = Promise.withResolvers<void>();
    const w = { missing: others, result, done: resolve };
    const timer = setTimeout(() => {
      result.errors.push(`${w.missing} thread(s) did not answer within ${this.#timeoutMs} ms`);
      resolve();
    }, this.#timeoutMs);
    this.#waiting.set(id, w);
    this.#channel.postMessage(
      { kind: "run", id, from: this.#group.thread, arg } satisfies Message<A>,
    );
    await promise;
    clearTimeout(timer);
    this.#waiting.delete(id);
    return result;
  }

  close(): void {
    this.#channel.close();
    for (const w of this.#waiting.values()) w.done();
  }
}
