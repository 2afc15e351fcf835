import assert from "node:assert/strict";
import { pipe } from "./pipe.ts";
import type { ByteConn } from "./types.ts";

/** A source serving `data` in reads of at most `sizes[i]` bytes (then the buffer's size). */
function source(data: Uint8Array, sizes: number[], seen: number[]): ByteConn {
  let at = 0;
  let i = 0;
  return {
    read(p) {
      seen.push(p.length);
      if (at === data.length) return Promise.resolve(null);
      const n = Math.min(p.length, sizes[i++] ?? p.length, data.length - at);
      p.set(data.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
    write: () => Promise.reject(new Error("read-only")),
    close() {},
  };
}

/** A sink that takes at most 5000 bytes per write, copying what it gets. */
function sink(out: number[]): ByteConn {
  return {
    read: () => Promise.resolve(null),
    write(p) {
      const n = Math.min(p.length, 5000);
      for (let i = 0; i < n; i++) out.push(p[i]);
      return Promise.resolve(n);
    },
    close() {},
  };
}

Deno.test("pipe copies every byte in order, growing its reads for bulk and shrinking for thin flows", async () => {
  const data = new Uint8Array(5 * 1024 * 1024 + 77);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 11)) & 0xff;
  // Bulk (full reads) first, then a thin stretch of small reads, then bulk to the end.
  const sizes = [...Array(4).fill(Infinity), ...Array(4).fill(100)];
  const seen: number[] = [];
  const out: number[] = [];
  let counted = 0;
  const how = await pipe(source(data, sizes, seen), sink(out), (n) => counted += n);
  assert.deepEqual(how, "end");
  assert.deepEqual(counted, data.length);
  assert.deepEqual(out.length, data.length);
  assert.deepEqual(new Uint8Array(out), data);
  const K = 1024;
  // Reads 0–3 come back full: 64 KiB → 256 KiB → 1 MiB, never more. Read 4 takes 100 bytes
  // of a 1 MiB buffer: the next reads are 64 KiB again, until full reads grow it once more.
  assert.deepEqual(seen.slice(0, 11), [
    64 * K,
    256 * K,
    K * K,
    K * K,
    K * K,
    64 * K,
    64 * K,
    64 * K,
    64 * K,
    256 * K,
    K * K,
  ]);
  assert.deepEqual(Math.max(...seen), K * K);
});
