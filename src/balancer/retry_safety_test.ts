/**
 * Retry safety on the real send path: the balancer over the real forwarder
 * (`src/forward/`, wired as the app wires it) in front of origins that fail in
 * each class a backend can fail in. What must hold (README, RETRY_ATTEMPTS):
 * another backend is tried when a request fails before any response byte, and
 * only if the method is idempotent or nothing of the request went out; a body
 * that is resent arrives whole. The asserts read what the origins received.
 */
import assert from "node:assert/strict";
import { createBalancer } from "./mod.ts";
import {
  type FailureClass,
  forwarderSend,
  type Origin,
  type ReceivedRequest,
  startFailingOrigin,
  startOrigin,
  testContext,
} from "./testdata/support.ts";

/** A short response timeout so the "timeout" class costs a second, not twenty. */
const RESPONSE_TIMEOUT_MS = 1_000;

type Class = FailureClass | "connection-refused";

/** The first backend fails in `how`; the second answers. Round robin starts at the first. */
async function scenario(
  how: Class,
  fn: (
    send: (method: string, body?: string) => Promise<{ status: number; text: string }>,
    failing: { received: ReceivedRequest[] },
    live: Origin,
  ) => Promise<void>,
) {
  const live = startOrigin("live");
  const failing = how === "connection-refused" ? undefined : startFailingOrigin(how);
  let refusedUrl: URL | undefined;
  if (failing === undefined) {
    const closed = startOrigin("closed");
    await closed.close();
    refusedUrl = closed.url;
  }
  const real = forwarderSend({ responseTimeoutMs: RESPONSE_TIMEOUT_MS });
  const backends = [failing?.url ?? refusedUrl!, live.url].map((url) => ({ url, weight: 1 }));
  // A new balancer per request: round robin starts at the failing backend every time.
  const send = async (method: string, body?: string) => {
    const balancer = createBalancer({ backends, strategy: "round-robin", send: real.send });
    try {
      const res = await balancer.handler(
        new Request("http://gw.test/item", { method, body }),
        testContext(),
      );
      return { status: res.status, text: await res.text() };
    } finally {
      await balancer.close();
    }
  };
  try {
    await fn(send, failing ?? { received: [] }, live);
  } finally {
    real.close();
    await failing?.close();
    await live.close();
  }
}

Deno.test("connection refused: nothing went out, so GET and POST alike go to the next backend", async () => {
  await scenario("connection-refused", async (send, _failing, live) => {
    assert.deepEqual(await send("GET"), { status: 200, text: "live" });
    assert.deepEqual(await send("POST", "order-1"), { status: 200, text: "live" });
    assert.deepEqual(live.bodies, ["order-1"], "the POST arrived once, whole");
  });
});

const SENT_THEN_FAILED: { how: FailureClass; status: number }[] = [
  { how: "reset-before-response", status: 502 },
  { how: "reset-after-partial-response", status: 502 },
  { how: "timeout", status: 504 },
];

for (const { how, status } of SENT_THEN_FAILED) {
  Deno.test(`${how}: GET and PUT are retried with the whole body; POST is never resent`, async () => {
    await scenario(how, async (send, failing, live) => {
      // Idempotent: the first backend got it, the second answers.
      assert.deepEqual(await send("GET"), { status: 200, text: "live" });
      assert.deepEqual(failing.received.map((r) => r.line), ["GET /item HTTP/1.1"]);

      assert.deepEqual(await send("PUT", "document v2"), { status: 200, text: "live" });
      assert.deepEqual(failing.received.at(-1), {
        line: "PUT /item HTTP/1.1",
        body: "document v2",
      });
      assert.deepEqual(live.bodies, ["document v2"], "the retried PUT carried the whole body");

      // Not idempotent and it went out: resending could charge twice. The client gets the error.
      const post = await send("POST", "charge card");
      assert.equal(post.status, status, post.text);
      assert.deepEqual(failing.received.at(-1), {
        line: "POST /item HTTP/1.1",
        body: "charge card",
      });
      assert.deepEqual(live.bodies, ["document v2"], "the POST never reached another backend");
      assert.equal(
        failing.received.filter((r) => r.line.startsWith("POST")).length,
        1,
        "nor the same one twice",
      );
    });
  });
}
