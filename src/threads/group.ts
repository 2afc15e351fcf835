/**
 * The serving threads of one process (SERVE_THREADS) as a group: shared
 * counters in a SharedArrayBuffer (Atomics), broadcast channels private to
 * this process's group, and requests from any thread to thread 0 over a
 * MessagePort each (for state one thread owns, like the rate-limit windows).
 *
 * The main thread creates the group ({@linkcode createThreadGroup}) and hands
 * each serving thread its share ({@linkcode ThreadGroupInit}, posted with the
 * port transferred), which the thread joins with {@linkcode joinThreadGroup}.
 *
 * @module
 */
import type { SharedCounts } from "../admission/mod.ts";
import type { ConnectionSlots } from "../server/http1/mod.ts";

/** Slots of the shared Int32 counters. */
export const COUNTER = {
  /** Requests holding an admission slot, over every thread (MAX_CONCURRENCY). */
  admissionInFlight: 0,
  /** Requests waiting for an admission slot, over every thread (REQUEST_QUEUE_SIZE). */
  admissionQueued: 1,
  /** Bumped and notified when a slot frees while requests wait (wakes the other threads). */
  admissionFreed: 2,
  /** Open client connections, over every thread (MAX_CLIENT_CONNECTIONS). */
  clientConnections: 3,
  /** Bumped by every cache purge: replicas stored before it are not applied after it. */
  purgeEpoch: 4,
  /** Round-robin turns of the balancers (src/balancer), taken by every thread in one sequence. */
  balancerTurn: 5,
} as const;
const COUNTERS = 8;
/** Slots of the fetch-claim table: keys that hash alike share one (a waiter then waits a fetch). */
export const CLAIM_SLOTS = 4096;

/** What a serving thread needs to join its group (plain data plus a transferred port). */
export interface ThreadGroupInit {
  id: string;
  thread: number;
  threads: number;
  counters: SharedArrayBuffer;
  /**
   * By key hash slot (src/threads/cache_replicas.ts): CLAIM_SLOTS claims of keys being fetched
   * from the origin, then CLAIM_SLOTS counts of copies posted.
   */
  claims: SharedArrayBuffer;
  /** The port to thread 0 (absent on thread 0). */
  port?: MessagePort;
  /** A port to every other thread, for messages between any two (cache copies and purges). */
  mesh: { thread: number; port: MessagePort }[];
}

type MeshEnvelope = { topic: string; from: number; payload: unknown };

type Envelope =
  | { kind: "ask"; seq: number; topic: string; arg: unknown }
  | { kind: "answer"; seq: number; value?: unknown; error?: string };

type Handler = (arg: unknown) => unknown;

/** This thread's view of the group. */
export class ThreadGroup {
  readonly thread: number;
  readonly threads: number;
  /** Shared counters, indexed by {@linkcode COUNTER}. */
  readonly counters: Int32Array;
  /** Fetch claims (0 free, else the claiming thread + 1), then copies posted, per slot. */
  readonly claims: Int32Array;
  readonly #id: string;
  /** Thread 0: a port per other thread; another thread: the port to thread 0. */
  readonly #ports: MessagePort[];
  readonly #handlers = new Map<string, Handler>();
  readonly #waiting = new Map<number, PromiseWithResolvers<unknown>>();
  readonly #channels: BroadcastChannel[] = [];
  readonly #mesh = new Map<number, MessagePort>();
  readonly #topics = new Map<string, (payload: unknown, from: number) => void>();
  #seq = 0;

  constructor(init: ThreadGroupInit, ports: MessagePort[]) {
    this.thread = init.thread;
    this.threads = init.threads;
    this.counters = new Int32Array(init.counters);
    this.claims = new Int32Array(init.claims);
    this.#id = init.id;
    this.#ports = ports;
    for (const port of ports) {
      port.onmessage = (e: MessageEvent<Envelope>) => this.#receive(port, e.data);
    }
    for (const { thread, port } of init.mesh) {
      this.#mesh.set(thread, port);
      port.onmessage = (e: MessageEvent<MeshEnvelope>) =>
        this.#topics.get(e.data.topic)?.(e.data.payload, e.data.from);
    }
  }

  /**
   * Posts to every other thread over its own port (a MessagePort costs the sender about a
   * third of a BroadcastChannel's post); messages from one thread arrive in the order sent.
   */
  post(topic: string, payload: unknown): void {
    const m: MeshEnvelope = { topic, from: this.thread, payload };
    for (const port of this.#mesh.values()) port.postMessage(m);
  }

  /** Posts to one other thread. */
  postTo(thread: number, topic: string, payload: unknown): void {
    this.#mesh.get(thread)?.postMessage(
      { topic, from: this.thread, payload } satisfies MeshEnvelope,
    );
  }

  /** Receives what other threads post on `topic` (one listener per topic). */
  listen(topic: string, fn: (payload: unknown, from: number) => void): void {
    this.#topics.set(topic, fn);
  }

  /** A broadcast channel among this group's threads (a message never reaches its sender). */
  channel(name: string): BroadcastChannel {
    const ch = new BroadcastChannel(`proxy-threads:${this.#id}:${name}`);
    this.#channels.push(ch);
    return ch;
  }

  /** Thread 0 answers `topic` with `fn`; returns a function that stops it (if still its own). */
  handle(topic: string, fn: Handler): () => void {
    this.#handlers.set(topic, fn);
    return () => {
      if (this.#handlers.get(topic) === fn) this.#handlers.delete(topic);
    };
  }

  /** Asks thread 0 (from another thread); rejects after `timeoutMs` or on thread 0's error. */
  ask<T>(topic: string, arg: unknown, timeoutMs: number): Promise<T> {
    const port = this.#ports[0];
    if (this.thread === 0 || port === undefined) {
      return Promise.reject(new Error("thread 0 asks nobody: it answers itself"));
    }
    const seq = ++this.#seq;
    const waiter = Promise.withResolvers<unknown>();
    this.#waiting.set(seq, waiter);
    const timer = setTimeout(
      () => waiter.reject(new Error(`thread 0 did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    port.postMessage({ kind: "ask", seq, topic, arg } satisfies Envelope);
    return (waiter.promise as Promise<T>).finally(() => {
      clearTimeout(timer);
      this.#waiting.delete(seq);
    });
  }

  async #receive(port: MessagePort, m: Envelope): Promise<void> {
    if (m.kind === "answer") {
      const waiter = this.#waiting.get(m.seq);
      if (m.error !== undefined) waiter?.reject(new Error(m.error));
      else waiter?.resolve(m.value);
      return;
    }
    const fn = this.#handlers.get(m.topic);
    try {
      if (fn === undefined) throw new Error(`thread 0 does not answer "${m.topic}" now`);
      const value = await fn(m.arg);
      port.postMessage({ kind: "answer", seq: m.seq, value } satisfies Envelope);
    } catch (err) {
      port.postMessage({ kind: "answer", seq: m.seq, error: (err as Error).message });
    }
  }

  close(): void {
    for (const ch of this.#channels) ch.close();
    for (const port of this.#ports) port.close();
    for (const port of this.#mesh.values()) port.close();
    for (const w of this.#waiting.values()) w.reject(new Error("serving thread closed"));
  }
}

/** The main thread's group (it is thread 0) and each other thread's share of it. */
export interface CreatedGroup {
  group: ThreadGroup;
  /** The init message for serving thread `thread` (1 … threads-1) and what to transfer. */
  initFor(thread: number): { init: ThreadGroupInit; transfer: Transferable[] };
}

export function createThreadGroup(threads: number): CreatedGroup {
  const id = crypto.randomUUID();
  const counters = new SharedArrayBuffer(COUNTERS * Int32Array.BYTES_PER_ELEMENT);
  const claims = new SharedArrayBuffer(2 * CLAIM_SLOTS * Int32Array.BYTES_PER_ELEMENT);
  const mine: MessagePort[] = [];
  const theirs: MessagePort[] = [];
  for (let t = 1; t < threads; t++) {
    const ch = new MessageChannel();
    mine[t] = ch.port1;
    theirs[t] = ch.port2;
  }
  const mesh: { thread: number; port: MessagePort }[][] = Array.from({ length: threads }, () => []);
  for (let a = 0; a < threads; a++) {
    for (let b = a + 1; b < threads; b++) {
      const ch = new MessageChannel();
      mesh[a].push({ thread: b, port: ch.port1 });
      mesh[b].push({ thread: a, port: ch.port2 });
    }
  }
  const group = new ThreadGroup(
    { id, thread: 0, threads, counters, claims, mesh: mesh[0] },
    mine.filter(Boolean),
  );
  return {
    group,
    initFor(thread) {
      const port = theirs[thread];
      return {
        init: { id, thread, threads, counters, claims, port, mesh: mesh[thread] },
        transfer: [port, ...mesh[thread].map((m) => m.port)],
      };
    },
  };
}

export function joinThreadGroup(init: ThreadGroupInit): ThreadGroup {
  return new ThreadGroup(init, init.port ? [init.port] : []);
}

/** The admission counts of the group's shared counters (src/admission). */
export function sharedAdmission(group: ThreadGroup): SharedCounts {
  return {
    cells: group.counters,
    inFlight: COUNTER.admissionInFlight,
    queued: COUNTER.admissionQueued,
    freed: COUNTER.admissionFreed,
  };
}

/** MAX_CLIENT_CONNECTIONS over every thread's listener (src/server/http1). */
export function sharedConnectionSlots(group: ThreadGroup, max: number): ConnectionSlots {
  const cells = group.counters;
  const i = COUNTER.clientConnections;
  return {
    tryOpen() {
      if (Atomics.add(cells, i, 1) < max) return true;
      Atomics.sub(cells, i, 1);
      return false;
    },
    close: () => void Atomics.sub(cells, i, 1),
  };
}

/** The balancers' shared turn counter: each call takes the next turn (never negative). */
export function sharedTurns(group: ThreadGroup): () => number {
  const cells = group.counters;
  return () => Atomics.add(cells, COUNTER.balancerTurn, 1) & 0x7fffffff;
}
