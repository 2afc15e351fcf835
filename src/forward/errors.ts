/**
 * The one error type the forwarder rejects with before a response head arrived
 * (and with which a response body stream errors when the upstream dies mid-body).
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

const STATUS: Readonly<Record<UpstreamErrorKind, number>> = {
  "connect": 502,
  "connect-timeout": 504,
  "response-timeout": 504,
  "reset": 502,
  "protocol": 502,
  "forbidden-address": 403,
};

/** A failure of the upstream exchange, with the status the proxy should answer with. */
export class UpstreamError extends Error {
  readonly kind: UpstreamErrorKind;
  /** True when bytes of the request may have reached the upstream (so only idempotent retries are safe). */
  readonly requestSent: boolean;
  /** Suggested status for the client: 502 (connect/reset/protocol), 504 (timeouts), 403 (forbidden-address). */
  readonly status: number;

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
    this.status = STATUS[kind];
  }
}
