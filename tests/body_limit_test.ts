/**
 * MAX_BODY_SIZE, checked where it matters: at the backend. SECURITY.md promises
 * 413 "at once when Content-Length says so, and for a streamed (chunked) body as
 * soon as it crosses the limit; the upload is not passed on past it". A raw
 * recording origin counts every byte that reaches it, in reverse mode and in
 * forward mode.
 */
import assert from "node:assert/strict";
import { startProxy } from "./helpers/proxy.ts";
import { rawRequest } from "./helpers/rawhttp.ts";
import { type RecordingBackend, startRecordingBackend } from "./helpers/recorder.ts";

const CRLF = "\r\n";
const LIMIT = 128 * 1024;
/** Room for the request head and chunk framing on top of the body bytes. */
const FRAMING = 8 * 1024;

const chunked = (chunks: number, size: number) =>
  `${size.toString(16)}${CRLF}${"x".repeat(size)}${CRLF}`.repeat(chunks) + `0${CRLF}${CRLF}`;

interface Mode {
  readonly name: string;
  /** The request line for the path, as the client sends it in this mode. */
  requestLine(backend: RecordingBackend, path: string): string;
  readonly backendHost: string;
}

const MODES: Mode[] = [
  {
    name: "reverse",
    backendHost: "127.0.0.1",
    requestLine: (_b, path) => `POST ${path} HTTP/1.1${CRLF}Host: app.test`,
  },
  {
    name: "forward",
    // 127.0.0.2 is the one private address the forward proxy may reach (FORWARD_ALLOW_PRIVATE).
    backendHost: "127.0.0.2",
    requestLine: (b, path) => `POST ${b.url}${path} HTTP/1.1${CRLF}Host: 127.0.0.2:${b.port}`,
  },
];

for (const mode of MODES) {
  Deno.test(`MAX_BODY_SIZE (${mode.name}): an over-limit body never reaches the backend past the limit`, async () => {
    const backend = startRecordingBackend(mode.backendHost);
    const proxy = await startProxy({
      env: {
        PROXY_MODE: "both",
        BACKEND_SERVERS: mode.backendHost === "127.0.0.1" ? backend.url : "",
        FORWARD_ALLOW_PRIVATE: "127.0.0.2/32",
        MAX_BODY_SIZE: String(LIMIT),
      },
    });
    const send = (path: string, headers: string, body: string) =>
      rawRequest(
        proxy.port,
        `${mode.requestLine(backend, path)}${CRLF}${headers}${CRLF}${body}`,
        { timeoutMs: 15_000 },
      );
    try {
      // Under the limit, both framings arrive whole: the recorder sees what is passed on.
      const small = await send("/small", `Content-Length: 1000${CRLF}`, "y".repeat(1000));
      assert.equal(small.status, 200, small.raw.slice(0, 200));
      const streamed = await send(
        "/streamed",
        `Transfer-Encoding: chunked${CRLF}`,
        chunked(6, 16384),
      );
      assert.equal(streamed.status, 200, streamed.raw.slice(0, 200));
      assert.deepEqual(
        backend.requests.map((r) => [r.line.split(" ")[1], r.bodyLength]),
        [["/small", 1000], ["/streamed", 6 * 16384]],
      );
      const bytesBefore = backend.bytesReceived();

      // Content-Length over the limit: 413 at once, not a byte to the backend.
      const declared = await send("/declared", `Content-Length: 10000000${CRLF}`, "z".repeat(4096));
      assert.equal(declared.status, 413, declared.raw.slice(0, 200));
      assert.equal(backend.requests.length, 2, "the over-limit request reached the backend");
      assert.equal(backend.bytesReceived(), bytesBefore, "bytes of it reached the backend");

      // Chunked, twice the limit: 413 once it crosses; whatever streamed ahead stays within it.
      const grown = await send("/grown", `Transfer-Encoding: chunked${CRLF}`, chunked(16, 16384));
      assert.equal(grown.status, 413, grown.raw.slice(0, 200));
      assert.equal(backend.requests.length, 2, "a complete over-limit request reached the backend");
      const passed = backend.bytesReceived() - bytesBefore;
      assert.ok(
        passed <= LIMIT + FRAMING,
        `${passed} bytes of a ${LIMIT}-byte-limited body passed on`,
      );
    } finally {
      await proxy.stop();
      await backend.close();
    }
  });
}
