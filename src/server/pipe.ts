/**
 * Copies bytes from one connection to another until the source ends,
 * with back-pressure (the next read waits for the write).
 *
 * @module
 */
import type { ByteConn } from "./types.ts";

/** What a pipe reads into at first, and again once the flow turns thin. */
const BASE_BUFFER = 64 * 1024;
/**
 * What a bulk flow grows to: each read and write costs about the same whatever
 * its size, so a 1 GiB transfer takes half the CPU with 1 MiB reads as with 64 KiB.
 */
const BULK_BUFFER = 1024 * 1024;

/** Writes every byte of `p`. */
export async function writeAll(conn: ByteConn, p: Uint8Array): Promise<void> {
  let off = 0;
  while (off < p.length) off += await conn.write(off === 0 ? p : p.subarray(off));
}

/**
 * Pipes `from` into `to` until `from` ends (resolves "end") or either side
 * fails (resolves "error"); `count` learns of every piece.
 *
 * The buffer follows the flow: a read that fills it means more is waiting, so
 * it grows (×4, up to {@linkcode BULK_BUFFER}); a read that uses under a
 * sixteenth of a grown buffer means the burst is over, so it drops back to
 * {@linkcode BASE_BUFFER}. An idle or interactive tunnel holds 64 KiB per
 * direction, a bulk transfer gets big reads.
 */
export async function pipe(
  from: ByteConn,
  to: ByteConn,
  count?: (n: number) => void,
): Promise<"end" | "error"> {
  let buf = new Uint8Array(BASE_BUFFER);
  try {
    while (true) {
      const n = await from.read(buf);
      if (n === null) return "end";
      if (n === 0) continue;
      count?.(n);
      await writeAll(to, buf.subarray(0, n));
      if (n === buf.length) {
        if (n < BULK_BUFFER) buf = new Uint8Array(Math.min(BULK_BUFFER, n * 4));
      } else if (buf.length > BASE_BUFFER && n < buf.length >> 4) {
        buf = new Uint8Array(BASE_BUFFER);
      }
    }
  } catch {
    return "error";
  }
}

/** Closes a connection that may already be closed. */
export function closeQuietly(conn: ByteConn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/**
 * Writes a last answer and closes the way nginx's lingering close does: the
 * write side first, then whatever the client still sends is read and dropped
 * for a moment, so the answer is not lost to a reset.
 */
export async function answerAndClose(conn: ByteConn, answer: Uint8Array): Promise<void> {
  try {
    await writeAll(conn, answer);
    await conn.closeWrite?.();
    const timer = setTimeout(() => closeQuietly(conn), 1000);
    try {
      const sink = new Uint8Array(16 * 1024);
      for (let total = 0; total < 1024 * 1024;) {
        const n = await conn.read(sink);
        if (n === null) break;
        total += n;
      }
    } finally {
      clearTimeout(timer);
    }
  } catch { /* the client is gone */ }
  closeQuietly(conn);
}

/** A connection whose first reads return `prefix` (bytes already read past a head). */
export function prefixed(conn: ByteConn, prefix: Uint8Array): ByteConn {
  if (prefix.length === 0) return conn;
  let rest: Uint8Array | undefined = prefix;
  return {
    read(p) {
      if (rest) {
        const n = Math.min(p.length, rest.length);
        p.set(rest.subarray(0, n));
        rest = n === rest.length ? undefined : rest.subarray(n);
        return Promise.resolve(n);
      }
      return conn.read(p);
    },
    write: (p) => conn.write(p),
    close: () => conn.close(),
    closeWrite: conn.closeWrite ? () => conn.closeWrite!() : undefined,
  };
}
