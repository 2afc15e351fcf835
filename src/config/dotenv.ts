/**
 * `.env` files: read with `node:util` parseEnv, written back atomically
 * keeping comments and order (the dashboard's config editor saves here).
 *
 * @module
 */
import { parseEnv } from "node:util";

/** Parses `.env` text into key/value pairs. */
export function parseDotEnv(text: string): Record<string, string> {
  return { ...parseEnv(text) } as Record<string, string>;
}

/** Why a value cannot be written to a `.env` line, or undefined when it can. */
export function unsafeDotEnvValue(value: string): string | undefined {
  if (/[\r\n\0]/.test(value)) return "must not contain line breaks or NUL characters";
  if (quote(value) === undefined) {
    return "cannot be written to .env so that it reads back the same: it mixes all three " +
      "quote characters (' \" `) with # or a literal \\n; change one of them";
  }
  return undefined;
}

/**
 * The value as it must appear after `KEY=` so that parseEnv reads exactly
 * `value` back, or undefined when no form does. parseEnv turns `\n` inside
 * double quotes into a line break and knows no other escape, so each form is
 * checked by parsing it rather than by rules written here a second time.
 */
function quote(value: string): string | undefined {
  const forms = [`"${value}"`, `'${value}'`, `\`${value}\``];
  if (/^[A-Za-z0-9_./:,@*=+-]*$/.test(value)) forms.unshift(value);
  return forms.find((form) => parseEnv(`K=${form}`).K === value);
}

/**
 * Renders `values` as `.env` text. Lines of `previousText` are kept in
 * place (comments included); a key present there is rewritten on its line,
 * keys not present are appended, keys absent from `values` are dropped.
 * Throws when a value could add a line.
 */
export function formatDotEnv(values: Record<string, string>, previousText = ""): string {
  for (const [key, value] of Object.entries(values)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`invalid .env key "${key}"`);
    const problem = unsafeDotEnvValue(value);
    if (problem) throw new Error(`${key}: value ${problem}`);
  }
  const pending = new Map(Object.entries(values));
  const out: string[] = [];
  for (const line of previousText.split(/\r?\n/)) {
    const m = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=/.exec(line);
    if (!m) {
      out.push(line);
      continue;
    }
    const key = m[1];
    if (pending.has(key)) {
      out.push(`${key}=${quote(pending.get(key)!)!}`);
      pending.delete(key);
    }
  }
  while (out.length > 0 && out[out.length - 1] === "") out.pop();
  for (const [key, value] of pending) out.push(`${key}=${quote(value)!}`);
  return out.join("\n") + "\n";
}

/** Writes `text` to `path` atomically (temp file in the same directory, then rename). */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await Deno.writeTextFile(tmp, text, { mode: 0o600 });
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}
