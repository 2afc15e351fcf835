/**
 * TLS interception (TLS_INTERCEPT=on): a local CA (`proxy ca`), leaf
 * certificates minted per name, TLS termination over the client's CONNECT
 * connection, and the hook the tunnel calls to serve HTTP inside it.
 *
 * @module
 */
import { CaError, defaultCaDir, keyExposure, loadCa } from "./ca.ts";
import { Interceptor } from "./interceptor.ts";

export { CaError, createCa, defaultCaDir, loadCa, spkiSha256 } from "./ca.ts";
export type { LocalCa } from "./ca.ts";
export { CA_HELP, runCa, trustSteps } from "./cli.ts";
export { Interceptor } from "./interceptor.ts";
export type { InterceptedConnInfo, Peer, ServeConnection } from "./interceptor.ts";
export type { ByteConn } from "./byte_conn.ts";
export { LeafMinter } from "./mint.ts";
export { acceptTls, ALPN_PROTOCOLS, HandshakeError } from "./tls_server.ts";

export interface InterceptSettings {
  /** TLS_INTERCEPT_CA_DIR; empty for the per-user default. */
  caDir: string;
  bypass: readonly string[];
  handshakeTimeoutMs: number;
  log?: (message: string) => void;
  /** Told once when the CA key is readable by others. */
  warn?: (message: string) => void;
}

/** Loads the CA and builds the interceptor; throws a one-line `CaError` naming `proxy ca`. */
export async function createInterceptor(settings: InterceptSettings): Promise<Interceptor> {
  let dir = settings.caDir;
  if (dir === "") {
    try {
      dir = defaultCaDir();
    } catch (err) {
      throw new CaError((err as Error).message);
    }
  }
  const ca = await loadCa(dir);
  const exposed = await keyExposure(ca.keyPath).catch(() => undefined);
  if (exposed) settings.warn?.(exposed);
  return new Interceptor({
    ca,
    bypass: settings.bypass,
    handshakeTimeoutMs: settings.handshakeTimeoutMs,
    log: settings.log,
  });
}
