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
  /** The UI masks it (tokens, URLs that may carry a password). */
  secret: boolean;
}

export type SaveResult =
  | { ok: true; values: Record<string, string> }
  | { ok: false; errors: Record<string, string> };

const SECRET = /TOKEN|PASSWORD|SECRET|REDIS_URL/;
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
      value: values[s.env] ?? null,
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
      const unsafe = unsafeDotEnvValue(raw);
      if (unsafe) {
        errors[env] = unsafe;
        continue;
      }
      merged[env] = raw;
    }
    if (Object.keys(errors).length > 0) return { ok: false, errors };
    const schemaValues = Object.fromEntries(
      Object.entries(merged).filter(([k]) => KNOWN.has(k)),
    );
    const verdict = validateSettings(schemaValues);
    if (!verdict.ok) return { ok: false, errors: verdict.errors };
    const text = formatDotEnv(merged, previous);
    await writeFileAtomic(this.envFile, text);
    return { ok: true, values: schemaValues };
  }
}
