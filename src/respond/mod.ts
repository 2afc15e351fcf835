/**
 * The proxy's own answers (refusals, errors, "not in cache"): one status, a
 * short plain-text body naming the reason, and any extra headers. Every
 * module that answers for the proxy rather than relaying an origin uses this,
 * so the body format and content type are the same everywhere.
 *
 * ```ts
 * return plainText(429, "429 Too Many Requests: retry in 3 s", { "retry-after": "3" });
 * ```
 *
 * @module
 */

/** Header name → value; names lower-case by convention. */
export type ExtraHeaders = Readonly<Record<string, string>>;

const CONTENT_TYPE = "text/plain; charset=utf-8";

/** A `status` response whose body is `reason` plus a newline. */
export function plainText(status: number, reason: string, headers?: ExtraHeaders): Response {
  const h: Record<string, string> = { "content-type": CONTENT_TYPE };
  if (headers !== undefined) { for (const k in headers) h[k] = headers[k]; }
  return new Response(reason.endsWith("\n") ? reason : `${reason}\n`, { status, headers: h });
}

/** The reason line of a {@linkcode plainText} answer (for callers that write raw HTTP, e.g. a CONNECT refusal). */
export async function reasonOf(res: Response): Promise<string> {
  return (await res.text()).trimEnd();
}
