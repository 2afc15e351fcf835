/**
 * The byte relay after an upstream's `101 Switching Protocols`: bytes pass
 * unchanged in both directions — WebSocket frames, fragments, pings, close
 * codes and negotiated extensions are the two ends' business, never
 * re-framed here.
 *
 * Like nginx's upgraded connections, the relay ends at the first end of
 * either side: once one side's EOF (or error) has been flushed to the other,
 * both connections are closed at once, so a dead peer never pins the other
 * side's socket.
 *
 * @module
 */
import type { ProxyStats } from "../stats/mod.ts";
import { closeQuietly, writeAll } from "./pipe.ts";
import type { ByteConn, RawUpgrade } from "./types.ts";

/** First read buffer per direction: an idle socket costs little (1,000 sockets ≈ 8 MiB). */
const FIRST_BUFFER = 4 * 1024;
/** Reads that fill the buffer grow it up to this, for bulk transfers. */
const MAX_BUFFER = 64 * 1024;

/** Copies `from` to `to` until EOF or an error; `count` sees each chunk's size once written. */
async function pump(from: ByteConn, to: ByteConn, count: (n: number) => void): Promise<void> {
  let buf = new Uint8Array(FIRST_BUFFER);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) return;
      await writeAll(to, buf.subarray(0, n));
      count(n);
      // The chunk was written (copied by the runtime): the buffer may be replaced.
      if (n === buf.length && buf.length < MAX_BUFFER) buf = new Uint8Array(buf.length * 4);
    }
  } catch {
    // A reset, or a socket closed by the other direction: the relay ends either way.
  }
}

/**
 * Relays an upgraded connection until either side ends; resolves once both are closed.
 *
 * The listener has written the 101 head and `up.head` (the upstream's first bytes) to
 * the client; `leftover` holds client bytes read past the request head, sent upstream
 * first. Counts the connection and its bytes each way in `stats` as they pass.
 */
export async function relayUpgrade(
  client: ByteConn,
  leftover: Uint8Array,
  up: RawUpgrade,
  stats: ProxyStats,
): Promise<void> {
  const upstream: ByteConn = up.conn;
  // Frames are small and interactive (pings, chat): no Nagle delay on the upstream hop.
  try {
    (up.conn as Deno.TcpConn).setNoDelay?.(true);
  } catch {
    // a TLS connection, or already closed
  }
  stats.webSocketOpened();
  stats.webSocketBytes(0, up.head.length);
  let closed = false;
  const closeBoth = () => {
    if (closed) return;
    closed = true;
    closeQuietly(client);
    closeQuietly(upstream);
  };
  try {
    if (leftover.length > 0) {
      await writeAll(upstream, leftover);
      stats.webSocketBytes(leftover.length, 0);
    }
    await Promise.all([
      pump(client, upstream, (n) => stats.webSocketBytes(n, 0)).finally(closeBoth),
      pump(upstream, client, (n) => stats.webSocketBytes(0, n)).finally(closeBoth),
    ]);
  } catch {
    // The upstream went away before the client's first bytes reached it.
  } finally {
    closeBoth();
    stats.webSocketClosed();
  }
}
