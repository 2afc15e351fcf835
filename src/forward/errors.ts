/**
 * The one error type that crosses module borders for a failed upstream
 * exchange. The forwarder rejects with it before a response head arrived (and
 * a response body stream errors with it when the upstream dies mid-body); the
 * balancer reads `retryable` and `backendFault` to decide on another attempt
 * and on passive ejection, the cache reads `status` to decide on
 * stale-if-error, and the app answers the client with `status`. Nobody maps
 * kinds to statuses but this file.
 *
 * @module
 */

/** What went wrong talking to the upstream. */
export type UpstreamErrorKind =
  | "connect"
  | "connect-timeout"
  | "response-timeout"
  | "reset"
  | "protocol"
  | "forbidden-address";

interface KindFacts {
  /** What the proxy answers the client. */
  readonly status: number;
  /** Whether another backend may be tried when nothing of the request went out. */
  readonly retryable: boolean;
  /** Whether the failure says something about the backend's health. */
  readonly backendFault: boolean;
}

const FACTS: Readonly<Record<UpstreamErrorKind, KindFacts>> = {
  "connect": { status: 502, retryable: true, backendFault: true },
  "connect-timeout": { status: 504, retryable: true, backendFault: true },
  "response-timeout": { status: 504, retryable: true, backendFault: true },
  "reset": { status: 502, retryable: true, backendFault: true },
  // A backend that speaks broken HTTP answers the same way to the next attempt.
  "protocol": { status: 502, retryable: false, backendFault: true },
  // Our own address policy refused the destination: not the backend's fault, nor retryable.
  "forbidden-address": { status: 403, retryable: false, backendFault: false },
};

/** A failure of the upstream exchange: kind, the status to answer with, retryability, cause. */
export class UpstreamError extends Error {
  readonly kind: UpstreamErrorKind;
  /** True when bytes of the request may have reached the upstream (so only idempotent retries are safe). */
  readonly requestSent: boolean;
  /** Status for the client: 502 (connect/reset/protocol), 504 (timeouts), 403 (forbidden-address). */
  readonly status: number;
  /** Another attempt (elsewhere) may succeed; see {@linkcode UpstreamError.mayRetry}. */
  readonly retryable: boolean;
  /** The failure counts against the backend's health (passive checks). */
  readonly backendFault: boolean;

  constructor(
    kind: UpstreamErrorKind,
    message: string,
    requestSent: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "UpstreamError";
    this.kind = kind;
    this.requestSent = requestSent;
    const facts = FACTS[kind];
    this.status = facts.status;
    this.retryable = facts.retryable;
    this.backendFault = facts.backendFault;
  }

  /**
   * Whether resending is safe: a retryable kind, and either nothing of the
   * request went out or the method is idempotent.
   */
  mayRetry(idempotent: boolean): boolean {
    return this.retryable && (!this.requestSent || idempotent);
  }

  /**
   * Any thrown value as an UpstreamError: itself, or a "reset" (request
   * possibly sent) wrapping it, for failures that did not come from the
   * forwarder (a WebSocket relay, a test's fetch).
   */
  static from(err: unknown): UpstreamError {
    if (err instanceof UpstreamError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new UpstreamError("reset", message, true, { cause: err });
  }
}
