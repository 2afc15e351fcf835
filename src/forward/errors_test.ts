import assert from "node:assert/strict";
import { UpstreamError } from "./errors.ts";

Deno.test("UpstreamError: each kind's status, retryability and backend fault, in one place", () => {
  const e = (kind: ConstructorParameters<typeof UpstreamError>[0], sent = false) =>
    new UpstreamError(kind, kind, sent);
  assert.deepEqual(
    [
      e("connect"),
      e("connect-timeout"),
      e("response-timeout"),
      e("reset"),
      e("protocol"),
      e("forbidden-address"),
    ]
      .map((x) => [x.status, x.retryable, x.backendFault]),
    [
      [502, true, true],
      [504, true, true],
      [504, true, true],
      [502, true, true],
      [502, false, true],
      [
        403,
        false,
        false,
      ],
    ],
  );
  // Nothing sent: any method may go elsewhere; sent: only idempotent ones.
  assert.equal(e("reset", false).mayRetry(false), true);
  assert.equal(e("reset", true).mayRetry(false), false);
  assert.equal(e("reset", true).mayRetry(true), true);
  assert.equal(e("protocol", false).mayRetry(true), false);
});

Deno.test("UpstreamError.from: itself, or a reset that may have sent the request, with the cause kept", () => {
  const own = new UpstreamError("connect", "refused", false);
  assert.equal(UpstreamError.from(own), own);
  const cause = new Error("websocket refused");
  const wrapped = UpstreamError.from(cause);
  assert.equal(wrapped.kind, "reset");
  assert.equal(wrapped.requestSent, true);
  assert.equal(wrapped.cause, cause);
  assert.equal(wrapped.status, 502);
});
