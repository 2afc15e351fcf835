import assert from "node:assert/strict";
import { buildRules, compileLists, type ListBytes } from "./compile.ts";
import { RuleTable } from "./matcher.ts";
import { parseList, ruleTarget } from "./parse.ts";

/** Lines the byte-level fast path must leave to the parser, or take exactly as it would. */
const TRICKY = [
  "\ufeffExample.COM",
  "||0x7f.0.0.3^",
  "0.0.0.0 a.example.net b.example.net",
  "||x.example.org^$third-party",
  "1.2.3.4",
  "trailing.example.",
  "@@||ok.ads.example.net^",
  "||ads.example.net^",
  "bad..host",
  "-dash.example.com",
  "||cdn.example.org/p^",
  "  spaced.example.com  \r",
  "under_score.example.com",
  "123.example.456",
  "last.example.com",
].join("\n");

async function bothWays(lists: ListBytes[], allow: string[]) {
  const fast = await compileLists(lists, allow);
  const decoder = new TextDecoder();
  const parsed = lists.map((l) => ({
    category: l.category,
    parsed: parseList(decoder.decode(l.bytes), l.source),
  }));
  return { fast, parsed, slow: buildRules(parsed, allow) };
}

Deno.test("compileLists gives the tables, counts and reports the full parser gives", async () => {
  const lists: ListBytes[] = [];
  for (const category of ["ads", "trackers", "malware"]) {
    const bytes = await Deno.readFile(new URL(`./lists/${category}.txt`, import.meta.url));
    lists.push({ category, source: category, bytes });
  }
  lists.push({ category: "custom", source: "tricky", bytes: new TextEncoder().encode(TRICKY) });
  const { fast, parsed, slow } = await bothWays(lists, ["allowed.example.com"]);
  const a = new RuleTable(fast.rules);
  const b = new RuleTable(slow);
  assert.deepEqual(a.rulesPerCategory, b.rulesPerCategory);
  assert.equal(a.allowRules, b.allowRules);
  assert.deepEqual(
    fast.reports,
    parsed.map(({ parsed: p }) => ({
      source: p.source,
      ignored: p.ignored,
      errors: p.errors,
      errorCount: p.errorCount,
    })),
  );
  let checked = 0;
  for (const { parsed: p } of parsed) {
    for (const rule of [...p.block, ...p.allow]) {
      const { host, path } = ruleTarget(rule);
      for (const q of [host, `sub.${host}`, host.slice(host.indexOf(".") + 1), `${host}:443`]) {
        for (const pathname of [undefined, "/", path ?? "/x"]) {
          assert.deepEqual(a.match(q, pathname), b.match(q, pathname), `${q} ${pathname}`);
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 1_500_000, `${checked} lookups`);
  assert.equal(a.match("EXAMPLE.com")?.rule, "example.com");
  assert.equal(a.match("127.0.0.3")?.rule, "||0x7f.0.0.3^");
  assert.equal(a.match("under_score.example.com")?.category, "custom");
});
