/**
 * Renders `.env.example`: every setting, commented, with its default.
 * `deno run -A scripts/env_example.ts > .env.example`
 *
 * @module
 */
import { SETTINGS } from "../src/config/mod.ts";

export function envExample(): string {
  const lines = [
    "# proxy settings. Copy to .env and uncomment what you change.",
    "# Precedence: flags > environment > .env > defaults. See README.md, Settings.",
    "",
  ];
  let group = "";
  for (const s of SETTINGS) {
    if (s.group !== group) {
      group = s.group;
      lines.push(`# ── ${group} ${"─".repeat(Math.max(4, 60 - group.length))}`, "");
    }
    lines.push(`# ${s.description}`);
    lines.push(`# (${s.kind}${s.flag ? `; flag --${s.flag}` : ""})`);
    lines.push(`#${s.env}=${s.default}`, "");
  }
  return lines.join("\n");
}

if (import.meta.main) console.log(envExample());
