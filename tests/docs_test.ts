/** The README and .env.example document every setting of the schema, exactly. */
import assert from "node:assert/strict";
import { SETTINGS } from "../src/config/mod.ts";
import { envExample } from "../scripts/env_example.ts";
import { settingsTable } from "../scripts/settings_table.ts";

const root = new URL("../", import.meta.url);

Deno.test("README's settings table matches the schema (regenerate: deno run -A scripts/update_docs.ts)", () => {
  const readme = Deno.readTextFileSync(new URL("README.md", root));
  // deno fmt pads table cells; compare cell contents only.
  const cells = (t: string) => t.replace(/ *\| */g, "|").replace(/-{3,}/g, "---");
  assert.ok(
    cells(readme).includes(cells(settingsTable())),
    "README.md settings table is out of date",
  );
  for (const s of SETTINGS) assert.ok(readme.includes(`\`${s.env}\``), s.env);
});

Deno.test(".env.example lists every setting (regenerate: deno run -A scripts/update_docs.ts)", () => {
  const text = Deno.readTextFileSync(new URL(".env.example", root));
  assert.equal(text.trimEnd(), envExample().trimEnd());
});
