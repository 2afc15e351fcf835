import assert from "node:assert/strict";
import { parseList, ruleTarget } from "./parse.ts";
import { buildRules } from "./compile.ts";
import { RuleTable } from "./matcher.ts";

const LIST = [
  "! Title: sample", // 1 comment
  "# hosts comment", // 2
  "0.0.0.0 hosts.example.com second.example.com # trailing comment", // 3
  "127.0.0.1 localhost", // 4 ignored name
  ":: v6.example.com", // 5
  "plain.example.com", // 6
  "||ads.example.net^", // 7
  "||tp.example.net^$third-party", // 8 option ignored: blocks the host
  "||cdn.example.org/malware/payload.exe^", // 9 path rule
  "@@||good.ads.example.net^", // 10 exception
  "example.com##.banner", // 11 cosmetic: ignored
  "||narrow.example.net^$domain=foo.com", // 12 context-narrowed: ignored
  "/banner/*/img^", // 13 URL pattern: ignored
  "this is not a rule", // 14 error
  "bad_domain!", // 15 error
  "||bad..host^", // 16 error
  "", // 17
].join("\n");

Deno.test("parseList reads hosts, plain and Adblock lines; reports bad lines by number", () => {
  const p = parseList(LIST, "sample.txt");
  assert.deepEqual(p.block, [
    "hosts.example.com",
    "second.example.com",
    "v6.example.com",
    "plain.example.com",
    "||ads.example.net^",
    "||tp.example.net^",
    "||cdn.example.org/malware/payload.exe^",
  ]);
  assert.deepEqual(p.allow, ["||good.ads.example.net^"]);
  assert.equal(p.ignored, 3);
  assert.deepEqual(p.errors.map((e) => [e.source, e.line]), [
    ["sample.txt", 14],
    ["sample.txt", 15],
    ["sample.txt", 16],
  ]);
  assert.equal(p.errorCount, 3);
  assert.match(p.errors[0].reason, /IP address/);
});

Deno.test("ruleTarget splits host and path prefix", () => {
  assert.deepEqual(ruleTarget("example.com"), { host: "example.com" });
  assert.deepEqual(ruleTarget("||example.com^"), { host: "example.com" });
  assert.deepEqual(ruleTarget("||h.com/a/b^"), { host: "h.com", path: "/a/b", separator: true });
  assert.deepEqual(ruleTarget("||h.com/a"), { host: "h.com", path: "/a", separator: false });
});

Deno.test("the table walks parent domains, honours exceptions and path prefixes", async () => {
  const table = new RuleTable(
    await buildRules([{ category: "ads", parsed: parseList(LIST, "s.txt") }], [
      "allowed.plain.example.com",
    ]),
  );
  assert.deepEqual(table.match("ads.example.net"), { category: "ads", rule: "||ads.example.net^" });
  assert.equal(table.match("a.b.ADS.example.net.")?.rule, "||ads.example.net^");
  assert.equal(table.match("ads.example.net:8443")?.rule, "||ads.example.net^");
  assert.equal(table.match("x.plain.example.com")?.rule, "plain.example.com");
  assert.equal(table.match("example.net"), undefined, "parents of a rule are not blocked");
  assert.equal(table.match("good.ads.example.net"), undefined, "@@ exception");
  assert.equal(table.match("allowed.plain.example.com"), undefined, "allowlist");
  assert.equal(table.match("sub.allowed.plain.example.com"), undefined, "allowlist subdomain");
  assert.equal(table.match("cdn.example.org", "/"), undefined);
  assert.equal(table.match("cdn.example.org"), undefined, "path rules need a path");
  assert.equal(
    table.match("cdn.example.org", "/malware/payload.exe?x=1")?.rule,
    "||cdn.example.org/malware/payload.exe^",
  );
  assert.equal(table.match("cdn.example.org", "/malware/payload.exe2"), undefined, "^ separator");
  assert.equal(table.match("narrow.example.net"), undefined);
  assert.deepEqual(table.rulesPerCategory, { ads: 7 });
});
