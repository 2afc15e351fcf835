/**
 * The verdict of a rate-limit check and the response headers it produces
 * (draft-ietf-httpapi-ratelimit-headers: RateLimit-Limit / -Remaining / -Reset).
 * @module
 */

/** Which store decided. */
export type DecisionStore = "redis" | "local" | "exempt" | "off";

export interface Decision {
  readonly allowed: boolean;
  /** Requests allowed per window. */
  readonly limit: number;
  /** Requests left in the current window after this one. */
  readonly remaining: number;
  /** Milliseconds until the oldest counted request leaves the window (a slot frees). */
  readonly resetMs: number;
  readonly store: DecisionStore;
}

/** Whole seconds, rounded up, never below 1 while something is pending. */
export const ceilSeconds = (ms: number) => Math.max(ms > 0 ? 1 : 0, Math.ceil(ms / 1000));

/** RateLimit-* headers for a decision; adds Retry-After when it was refused. */
export function rateLimitHeaders(d: Decision): Record<string, string> {
  const h: Record<string, string> = {
    "RateLimit-Limit": String(d.limit),
    "RateLimit-Remaining": String(d.remaining),
    "RateLimit-Reset": String(ceilSeconds(d.resetMs)),
  };
  if (!d.allowed) h["Retry-After"] = String(ceilSeconds(d.resetMs));
  return h;
}
