/**
 * Adapters between the listener's `ByteConn` (a Deno.Conn-like reader and
 * writer) and node streams, so node:tls can run a TLS server session over
 * the client's connection and the decrypted side can be served again as a
 * `ByteConn`.
 *
 * @module
 */
import { Duplex } from "node:stream";

/** The byte connection the HTTP/1.1 server serves (structurally src/server's `ByteConn`). */
export interface ByteConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  closeWrite?(): Promise<void>;
}

const READ_SIZE = 16 * 1024;

/** A node Duplex over a ByteConn: reads when the reader wants more, writes everything. */
export function duplexFromByteConn(conn: ByteConn): Duplex {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const duplex = new Duplex({
    read() {
      const buf = new Uint8Array(READ_SIZE);
      conn.read(buf).then(
        (n) => this.push(n === null ? null : buf.subarray(0, n)),
        (err) => this.destroy(err),
      );
    },
    write(chunk: Uint8Array, _encoding, callback) {
      writeAll(conn, chunk).then(() => callback(), callback);
    },
    final(callback) {
      if (!conn.closeWrite) return callback();
      conn.closeWrite().then(() => callback(), () => callback());
    },
    destroy(err, callback) {
      close();
      callback(err);
    },
  });
  // Failures reach the TLS session above through its own events; never an uncaught error here.
  duplex.on("error", () => {});
  return duplex;
}

/**
 * A ByteConn over a node Duplex (the decrypted side of a TLS session): data
 * events are queued and the stream paused while nobody reads, so a slow
 * reader holds the client back instead of buffering without bound.
 */
export function byteConnFromDuplex(stream: Duplex): ByteConn {
  const chunks: Uint8Array[] = [];
  let ended = false;
  let failure: Error | undefined;
  let waiter: (() => void) | undefined;
  const wake = () => {
    const w = waiter;
    waiter = undefined;
    w?.();
  };
  stream.on("data", (chunk: Uint8Array) => {
    chunks.push(chunk);
    stream.pause();
    wake();
  });
  stream.on("end", () => {
    ended = true;
    wake();
  });
  stream.on("close", () => {
    ended = true;
    wake();
  });
  stream.on("error", (err) => {
    failure = err;
    wake();
  });
  stream.pause();
  return {
    async read(p) {
      while (chunks.length === 0) {
        if (failure) throw failure;
        if (ended) return null;
        const wait = new Promise<void>((resolve) => waiter = resolve);
        stream.resume();
        await wait;
      }
      const head = chunks[0];
      const n = Math.min(p.length, head.length);
      p.set(head.subarray(0, n));
      if (n === head.length) chunks.shift();
      else chunks[0] = head.subarray(n);
      return n;
    },
    write(p) {
      if (failure) return Promise.reject(failure);
      if (stream.destroyed || stream.writableEnded) {
        return Promise.reject(new Deno.errors.BrokenPipe("the TLS session is closed"));
      }
      // node keeps a reference to the chunk until it is written: hand it a copy. Below the
      // stream's high-water mark the write is accepted at once (one event-loop turn saved
      // per response); above it the writer waits for 'drain', so a slow client holds it back.
      const copy = p.slice();
      if (stream.write(copy)) return Promise.resolve(copy.length);
      return new Promise((resolve, reject) => {
        const done = (err?: Error) => {
          stream.off("drain", onDrain);
          stream.off("close", onClose);
          err ? reject(err) : resolve(copy.length);
        };
        const onDrain = () => done();
        const onClose = () => done(failure ?? new Deno.errors.BrokenPipe("the TLS session closed"));
        stream.on("drain", onDrain);
        stream.on("close", onClose);
      });
    },
    close() {
      stream.destroy();
    },
    closeWrite() {
      return new Promise((resolve) => stream.end(resolve));
    },
  };
}

async function writeAll(conn: ByteConn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(off === 0 ? data : data.subarray(off));
}
