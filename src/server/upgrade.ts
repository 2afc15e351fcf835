/**
 * The byte relay after an upgrade's 101: the client connection and the
 * upstream one become one pipe, both ways, until either side ends; then
 * both close at once (an upgrade never leaves a half-open socket behind).
 *
 * @module
 */
import type { ProxyStats } from "../stats/mod.ts";
import { closeQuietly, pipe, writeAll } from "./pipe.ts";
import type { ByteConn, RawUpgrade } from "./types.ts";

/**
 * Relays bytes between `client` and `up.conn` (the 101 head has been
 * written to the client already); `leftover` are client bytes read past
 * the upgrade request's head. Resolves once both sides are closed.
 */
export async function relayUpgrade(
  client: ByteConn,
  leftover: Uint8Array,
  up: RawUpgrade,
  _stats: ProxyStats,
): Promise<void> {
  const upstream = up.conn;
  try {
    if (leftover.length > 0) await writeAll(upstream, leftover);
  } catch {
    closeQuietly(upstream);
    closeQuietly(client);
    return;
  }
  let closed = false;
  const closeBoth = () => {
    if (closed) return;
    closed = true;
    closeQuietly(upstream);
    closeQuietly(client);
  };
  await Promise.all([
    pipe(client, upstream).finally(closeBoth),
    pipe(upstream, client).finally(closeBoth),
  ]);
}
