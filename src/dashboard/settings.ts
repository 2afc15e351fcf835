/**
 * The configuration editor's store: the schema's settings with the values
 * of the `.env` file, validated by the same schema the proxy loads with,
 * saved atomically (temp file + rename) keeping comments and unknown keys.
 *
 * @module
 */
import {
  formatDotEnv,
  parseDotEnv,
  SETTINGS,
  unsafeDotEnvValue,
  validateSettings,
  writeFileAtomic,
} from "../config/mod.ts";

/** One setting as the editor shows it. */
export interface SettingView {
  env: string;
  flag: string | null;
  default: string;
  description: string;
  group: string;
  kind: string;
  allowed: readonly string[] | null;
  /** Value in the .env file, or null when the default applies. */
  value: string | null;
  /**
   * A token: its value is never sent, only MASK when one is set. Passwords
   * inside URLs (REDIS_URL, BACKEND_SERVERS) are replaced by MASK in any
   * value. Saving MASK (or a URL whose password is MASK) keeps the secret.
   */
  secret: boolean;
}

/** What the editor shows instead of a secret; saved unchanged, it keeps the secret. */
export const MASK = "********";

export type SaveResult =
  | { ok: true; values: Record<string, string> }
  | { ok: false; errors: Record<string, string> };

/** Settings whose whole value is a secret. */
const SECRET = /TOKEN|PASSWORD|SECRET/;
/** `scheme://user:password@` inside a value (a URL or a list of them). */
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^\s/@:,]*:)([^\s/@,]*)@/gi;

/** The value as the API may show it: tokens as MASK, passwords in URLs as MASK. */
export function maskValue(env: string, value: string): string {
  if (SECRET.test(env)) return value === "" ? "" : MASK;
  return value.replace(URL_PASSWORD, (_m, head) => `${head}${MASK}@`);
}

/**
 * The value to save for `submitted`, given the saved one: MASK where a secret
 * was left as shown is replaced by the saved secret. Undefined when a masked
 * URL password has no saved counterpart (the URL's user or host changed).
 */
export function unmaskValue(env: string, submitted: string, saved: string): string | undefined {
  if (SECRET.test(env)) return submitted === MASK ? saved : submitted;
  if (!submitted.includes(`:${MASK}@`)) return submitted;
  if (submitted === maskValue(env, saved)) return saved;
  const savedPasswords = new Map<string, string>();
  for (const m of saved.matchAll(URL_PASSWORD)) savedPasswords.set(m[1], m[2]);
  let missing = false;
  const out = submitted.replace(URL_PASSWORD, (whole, head, password) => {
    if (password !== MASK) return whole;
    const kept = savedPasswords.get(head);
    if (kept === undefined) missing = true;
    return `${head}${kept ?? ""}@`;
  });
  return missing ? undefined : out;
}
const KNOWN = new Set(SETTINGS.map((s) => s.env));

export class SettingsStore {
  readonly envFile: string;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(envFile: string) {
    this.envFile = envFile;
  }

  /** The .env text ("" when the file does not exist yet). */
  async text(): Promise<string> {
    try {
      return await Deno.readTextFile(this.envFile);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return "";
      throw err;
    }
  }

  /** Values in the .env file. */
  async values(): Promise<Record<string, string>> {
    return parseDotEnv(await this.text());
  }

  async list(): Promise<SettingView[]> {
    const values = await this.values();
    return SETTINGS.map((s) => ({
      env: s.env,
      flag: s.flag ?? null,
      default: s.default,
      description: s.description,
      group: s.group,
      kind: s.kind,
      allowed: s.allowed ?? null,
      value: values[s.env] === undefined ? null : maskValue(s.env, values[s.env]),
      secret: SECRET.test(s.env),
    }));
  }

  /**
   * Validates and saves. `submitted` maps environment names to values; an
   * empty string or null removes the setting from the file (its default
   * applies). Settings not submitted keep their saved value; keys the schema
   * does not know are kept as they are. Nothing is written when any value is
   * refused.
   */
  save(submitted: Record<string, unknown>): Promise<SaveResult> {
    const run = this.#queue.then(() => this.#save(submitted));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #save(submitted: Record<string, unknown>): Promise<SaveResult> {
    const errors: Record<string, string> = {};
    const previous = await this.text();
    const merged: Record<string, string> = { ...parseDotEnv(previous) };
    for (const [env, raw] of Object.entries(submitted)) {
      if (!KNOWN.has(env)) {
        errors[env] = "unknown setting";
        continue;
      }
      if (raw === null || raw === "") {
        delete merged[env];
        continue;
      }
      if (typeof raw !== "string") {
        errors[env] = "must be a string";
        continue;
      }
      const value = unmaskValue(env, raw, merged[env] ?? "");
      if (value === undefined) {
        errors[env] = "a password shown as ******** belongs to another URL: type it again";
        continue;
      }
      const unsafe = unsafeDotEnvValue(value);
      if (unsafe) {
        errors[env] = unsafe;
        continue;
      }
      merged[env] = value;
    }
    if (Object.keys(errors).length > 0) return { ok: false, errors };
    const schemaValues = Object.fromEntries(
      Object.entries(merged).filter(([k]) => KNOWN.has(k)),
    );
    const verdict = validateSettings(schemaValues);
    if (!verdict.ok) return { ok: false, errors: verdict.errors };
    const text = formatDotEnv(merged, previous);
    // What the proxy will read must be what was typed, byte for byte.
    const reread = parseDotEnv(text);
    for (const env of Object.keys(submitted)) {
      if (merged[env] !== undefined && reread[env] !== merged[env]) {
        errors[env] = "cannot be written to .env so that it reads back the same";
      }
    }
    if (Object.keys(errors).length > 0) return { ok: false, errors };
    await writeFileAtomic(this.envFile, text);
    return { ok: true, values: schemaValues };
  }
}
