/**
 * HTTP/2 on the TLS port (ALPN h2, setting HTTP2): sessions served by
 * node:http2 with the HTTP/1.1 server's app, limits and stats, and the
 * listener that sends each TLS connection to the protocol it negotiated.
 *
 * @module
 */
export { createH2Server, type H2Server } from "./server.ts";
export { ALPN_H2_FIRST, type AlpnListenOptions, listenAlpn } from "./listener.ts";
