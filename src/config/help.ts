/**
 * `proxy serve --help`: every setting with its flag, environment name,
 * default and meaning, grouped as in the schema.
 *
 * @module
 */
import { type Group, SCHEMA, type SettingKey } from "./schema.ts";

export function settingsHelp(): string {
  const groups = new Map<Group, SettingKey[]>();
  for (const key of Object.keys(SCHEMA) as SettingKey[]) {
    const g = SCHEMA[key].group;
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g)!.push(key);
  }
  const lines: string[] = [];
  for (const [group, keys] of groups) {
    lines.push(`${group.toUpperCase()}`);
    for (const key of keys) {
      const s = SCHEMA[key];
      const flag = s.flag ? `--${s.flag} VALUE` : "";
      const def = s.default === "" ? "(empty)" : s.default;
      lines.push(`  ${s.env.padEnd(22)} ${flag.padEnd(34)} default: ${def}`);
      // The accepted form, so the placeholder need not guess it (e.g. "auto | integer 1–256").
      const text = `${s.description} [${s.parser.kind}]`;
      lines.push(`      ${wrap(text, 88).join("\n      ")}`);
    }
    lines.push("");
  }
  return lines.join("\n");
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && line.length + word.length + 1 > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) out.push(line);
  return out;
}
