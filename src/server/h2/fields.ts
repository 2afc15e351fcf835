/**
 * Response fields for HTTP/2: the app's `Headers` without the
 * connection-specific fields RFC 9113 §8.2.2 forbids (a response carrying
 * one is malformed, and node:http2 refuses to send it), nor those the
 * `Connection` field names.
 *
 * @module
 */
import type http2 from "node:http2";

/** Fields that only mean something on one HTTP/1.1 connection. */
const CONNECTION_SPECIFIC = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
]);

export function responseHeaders(response: Response): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ":status": response.status };
  const h = response.headers;
  const named = h.get("connection");
  const dropped = named
    ? new Set(named.split(",").map((t) => t.trim().toLowerCase()).filter((t) => t !== ""))
    : undefined;
  h.forEach((value, name) => {
    if (CONNECTION_SPECIFIC.has(name) || dropped?.has(name)) return;
    if (name === "set-cookie") return; // below: one field per cookie
    out[name] = value;
  });
  const cookies = h.getSetCookie();
  if (cookies.length > 0) out["set-cookie"] = cookies;
  return out;
}
