import assert from "node:assert/strict";
import { Pools } from "./pool.ts";

Deno.test("origins beyond the tracking cap fold into 'other' without losing counts", () => {
  const pools = new Pools({ idleTimeoutMs: 1000, maxIdlePerOrigin: 4, shortestDeadlineMs: 1000 });
  try {
    for (let i = 0; i < 600; i++) {
      const o = pools.origin(`http://host${i}.example:80`);
      o.requests += 2;
      o.opened += 1;
    }
    assert.ok(pools.origins.size <= 513, `tracked ${pools.origins.size} origins`);
    let requests = 0, opened = 0;
    for (const o of pools.origins.values()) {
      requests += o.requests;
      opened += o.opened;
    }
    assert.equal(requests, 1200);
    assert.equal(opened, 600);
    assert.ok(pools.origins.has("other"));
  } finally {
    pools.close();
  }
});
