/**
 * Prints every setting as a Markdown table (README "Settings" section):
 * `deno run scripts/settings_table.ts`.
 *
 * @module
 */
import { SETTINGS } from "../src/config/mod.ts";

export function settingsTable(): string {
  const rows = ["| setting | flag | default | meaning |", "| --- | --- | --- | --- |"];
  let group = "";
  for (const s of SETTINGS) {
    if (s.group !== group) {
      group = s.group;
      rows.push(`| **${group}** | | | |`);
    }
    const def = s.default === "" ? "(empty)" : `\`${s.default}\``;
    const flag = s.flag ? `\`--${s.flag}\`` : "";
    rows.push(`| \`${s.env}\` | ${flag} | ${def} | ${s.description.replaceAll("|", "\\|")} |`);
  }
  return rows.join("\n");
}

if (import.meta.main) console.log(settingsTable());
