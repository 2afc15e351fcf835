/**
 * Our own HTTP/1.1 server on `Deno.listen` / `Deno.listenTls`: strict
 * request parsing (smuggling-safe), header/idle/body timeouts, request
 * buffering, connection cap, CONNECT and upgrades handed raw sockets, and
 * `serveConnection` for any byte connection (TLS inside a tunnel too).
 *
 * @module
 */
export {
  type ConnectionSlots,
  createHttp1Server,
  type Http1Server,
  listen,
  listenHttp1,
} from "./server.ts";
export type { ServerConfig } from "./connection.ts";
export { type HeadError, parseHead, type RequestHead } from "./head.ts";
