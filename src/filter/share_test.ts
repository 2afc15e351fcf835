import assert from "node:assert/strict";
import { compileLists } from "./compile.ts";
import { RuleTable } from "./matcher.ts";
import { shareRules } from "./share.ts";

const LIST = [
  "ads.example.com",
  "||tracker.example.net^",
  "||cdn.example.org/pixel^",
  "1.2.3.4",
  "@@||ok.ads.example.com^",
].join("\n");

Deno.test("shareRules: the tables in shared memory give every verdict the private ones give", async () => {
  const { rules } = await compileLists(
    [{ category: "ads", source: "t", bytes: new TextEncoder().encode(LIST) }],
    ["allowed.example"],
  );
  const shared = shareRules(rules);
  for (const a of [shared.hosts, shared.pathHosts, shared.allowHosts, shared.allowPathHosts]) {
    for (const arr of [a.text, a.starts, a.hashes, a.slots]) {
      assert.ok(arr.buffer instanceof SharedArrayBuffer);
    }
  }
  assert.ok(shared.hostMeta.buffer instanceof SharedArrayBuffer);
  const mine = new RuleTable(rules);
  // As another thread gets them: a structured clone keeps the memory shared.
  const theirs = new RuleTable(structuredClone(shared));
  const hosts = [
    "ads.example.com",
    "x.ads.example.com",
    "ok.ads.example.com",
    "tracker.example.net:443",
    "1.2.3.4",
    "0x01020304",
    "cdn.example.org",
    "allowed.example",
    "nothing.example",
  ];
  for (const host of hosts) {
    for (const path of [undefined, "/pixel", "/pixel/x", "/other"]) {
      assert.deepEqual(theirs.match(host, path), mine.match(host, path), `${host} ${path}`);
    }
  }
  assert.ok(theirs.match("x.ads.example.com"));
  assert.equal(theirs.match("ok.ads.example.com"), undefined);
});
