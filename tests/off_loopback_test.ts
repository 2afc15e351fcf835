/**
 * Promises that only hold for clients *off* loopback, checked with a real outside address:
 * each scenario (tests/helpers/off_loopback_scenarios.ts) runs in a private network namespace
 * where the client is 192.0.2.1, talking to real proxies and a real backend.
 */
import assert from "node:assert/strict";
import { ignoreUnless } from "./helpers/ignore.ts";
import { NETNS_REASON, netnsUsable, runOffLoopback } from "./helpers/netns.ts";

const SCENARIOS = new URL("./helpers/off_loopback_scenarios.ts", import.meta.url);
const ignore = (name: string) => ignoreUnless(name, netnsUsable(), NETNS_REASON);

Deno.test({
  name:
    "admin guard off loopback: 403 without ADMIN_TOKEN (PURGE /healthz too), 401 for a wrong one",
  ignore: ignore("admin guard off loopback"),
  async fn() {
    // deno-lint-ignore no-explicit-any
    const o = await runOffLoopback<Record<string, any>>(SCENARIOS, ["admin"]);
    assert.equal(o.healthz, 200, "GET /healthz stays open for load balancers");
    for (const k of ["statsNoToken", "metricsNoToken", "purgeNoToken", "reloadNoToken"]) {
      assert.equal(o[k], 403, k);
    }
    assert.equal(
      o.purgeHealthzNoToken,
      403,
      "PURGE /healthz is an admin request, not a health check",
    );
    assert.equal(o.jsonPurgeNoToken, 403, "POST /proxy-cache/purge");
    assert.equal(o.statsFromLoopback, 200, "the same request from loopback is let in");
    assert.equal(o.statsMissingToken, 401);
    assert.equal(o.statsWrongToken, 401);
    assert.equal(o.statsRightToken, 200);
    assert.equal(o.statsXAdminToken, 200);
    assert.equal(o.cachedBefore, "HIT");
    assert.equal(o.purgeWrongToken, 401);
    assert.equal(o.cachedAfterWrongPurge, "HIT", "a refused PURGE removes nothing");
    assert.equal(o.purgeRightToken, 200);
    assert.equal(o.purgeRightTokenBody, '{"purged":1}');
    assert.equal(o.cachedAfterPurge, "MISS");
  },
});

Deno.test({
  name: "forward mode: PURGE of an absolute URL purges from loopback and is refused from outside",
  ignore: ignore("forward PURGE off loopback"),
  async fn() {
    // deno-lint-ignore no-explicit-any
    const o = await runOffLoopback<Record<string, any>>(SCENARIOS, ["forward-purge"]);
    assert.equal(o.outsideGet, 200, "the outside client may use the proxy (ALLOWED_CLIENTS)");
    assert.equal(o.cachedBefore, "HIT");
    assert.equal(o.outsidePurge, 403);
    assert.match(o.outsidePurgeBody, /loopback only/);
    assert.equal(o.cachedAfterOutsidePurge, "HIT", "the refused PURGE removed nothing");
    assert.equal(o.loopbackPurge, 200);
    assert.equal(o.loopbackPurgeBody, '{"purged":1}');
    assert.equal(o.cachedAfterPurge, "MISS");
    assert.equal(o.originRequests, 2, "origin asked once before and once after the purge");
  },
});

Deno.test({
  name: "X-Forwarded-For: forged by an untrusted client it reaches neither backend, ACL, " +
    "rate limiter nor admin guard; from a trusted proxy it names the client",
  ignore: ignore("X-Forwarded-For off loopback"),
  async fn() {
    // deno-lint-ignore no-explicit-any
    const o = await runOffLoopback<Record<string, any>>(SCENARIOS, ["xff"]);
    assert.equal(o.untrustedBackendSees, "192.0.2.1", "replaced, not appended to");
    assert.deepEqual(o.untrustedStatuses, [200, 200, 429], "a forged loopback XFF is not exempt");
    assert.equal(o.untrustedAdmin, 403);
    assert.equal(o.aclForgedLoopback, 403, "ALLOWED_CLIENTS judges the socket's peer");
    assert.equal(o.aclFromLoopback, 200, "and lets the real loopback client in");
    assert.equal(o.trustedBackendSees, "198.51.100.7, 192.0.2.1");
    assert.deepEqual(o.trustedStatuses, [200, 200, 429], "limited per forwarded client");
    assert.equal(o.trustedOtherClient, 200, "another forwarded client has its own budget");
    assert.equal(
      o.trustedAdminForgedLoopback,
      403,
      "admin access never derives from a forwarded address",
    );
  },
});
