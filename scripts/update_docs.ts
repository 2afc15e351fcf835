/**
 * Regenerates the generated parts of the docs from the schema: the settings
 * table in README.md and `.env.example`. `deno run -A scripts/update_docs.ts`
 *
 * @module
 */
import { envExample } from "./env_example.ts";
import { settingsTable } from "./settings_table.ts";

const root = new URL("../", import.meta.url);
const readmeUrl = new URL("README.md", root);
const readme = Deno.readTextFileSync(readmeUrl);
const start = readme.indexOf("| setting | flag | default | meaning |");
const startFormatted = start >= 0
  ? start
  : readme.search(/\| setting +\| flag +\| default +\| meaning +\|/);
if (startFormatted < 0) throw new Error("README.md: settings table not found");
let end = readme.indexOf("\n\n", startFormatted);
if (end < 0) end = readme.length;
Deno.writeTextFileSync(
  readmeUrl,
  readme.slice(0, startFormatted) + settingsTable() + readme.slice(end),
);
Deno.writeTextFileSync(new URL(".env.example", root), envExample() + "\n");
console.log("README.md settings table and .env.example regenerated");
