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

/** Read buffer per direction of a quiet socket: 1,000 idle WebSockets hold 8 MiB. */
const SMALL_BUFFER = 4 * 1024;
/**
 * Buffer of a direction in a burst (a read filled the small one): 1 MiB messages cost about
 * a third less proxy CPU than with 64 KiB reads (measured here with bench/scenarios/websocket.ts).
 */
const LARGE_BUFFER = 256 * 1024;
/** Large buffers kept for the next burst, so bursts do not allocate (and collect) 256 KiB each. */
const spareLarge: Uint8Array[] = [];
const MAX_SPARE = 32;

function takeLarge(): Uint8Array {
  return spareLarge.pop() ?? new Uint8Array(LARGE_BUFFER);
}

function giveBack(buf: Uint8Array): void {
  if (buf.length === LARGE_BUFFER && spareLarge.length < MAX_SPARE) spareLarge.push(buf);
}

/**
 * Copies `from` to `to` until EOF or an error; `count` sees each chunk's size once written.
 * A direction holds a large buffer only while bytes keep coming: the wait for the next
 * burst is done on a small one.
 */
async function pump(from: ByteConn, to: ByteConn, count: (n: number) => void): Promise<void> {
  let buf: Uint8Array = new Uint8Array(SMALL_BUFFER);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) return;
      await writeAll(to, buf.subarray(0, n));
      count(n);
      // Written (the runtime is done with the bytes): the buffer may be swapped.
      if (n === buf.length && buf.length === SMALL_BUFFER) {
        buf = takeLarge();
      } else if (n <= SMALL_BUFFER && buf.length === LARGE_BUFFER) {
        giveBack(buf);
        buf = new Uint8Array(SMALL_BUFFER);
      }
    }
  } catch {
    // A reset, or a socket closed by the other direction: the relay ends either way.
  } finally {
    giveBack(buf);
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
