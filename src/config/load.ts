/**
 * Builds the {@linkcode Config}: defaults < `.env` < environment < flags.
 * Any bad value or unknown flag throws a {@linkcode ConfigError} whose
 * message is one line naming the setting, the value given and what is allowed.
 * {@linkcode collectConfig} finds every problem at once instead (`proxy check`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseDotEnv } from "./dotenv.ts";
import { ValueError } from "./parsers.ts";
import { type Config, SCHEMA, type Setting, type SettingKey } from "./schema.ts";
import { maskValue } from "./secrets.ts";
import { closestName } from "./suggest.ts";
import { validateRedisSettings } from "../redis/settings.ts";

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Where a setting's value came from. */
export type Source = "default" | "env-file" | "environment" | "flag";

export interface LoadedConfig {
  config: Config;
  /** Source of each setting's value. */
  sources: Record<SettingKey, Source>;
  /** Path of the `.env` file read, if any. */
  envFile?: string;
  /** The mode actually served ("auto" resolved). */
  mode: "forward" | "reverse" | "both";
  /** Non-fatal remarks for the start-up log. */
  warnings: string[];
}

export interface LoadOptions {
  /** Command-line arguments after the subcommand. */
  args?: string[];
  /** Environment variables (defaults to Deno.env). */
  env?: Record<string, string>;
  /** Reads a file's text; injectable for tests. */
  readTextFile?: (path: string) => string;
}

const KEYS = Object.keys(SCHEMA) as SettingKey[];
const BY_ENV = new Map(KEYS.map((k) => [SCHEMA[k].env, k]));
const BY_FLAG = new Map(
  KEYS.filter((k) => SCHEMA[k].flag).map((k) => [SCHEMA[k].flag as string, k]),
);

/** Looks a setting up by its environment name. */
export function settingKeyOfEnv(env: string): SettingKey | undefined {
  return BY_ENV.get(env);
}

function parseOne(key: SettingKey, raw: string, origin: string): unknown {
  const s = SCHEMA[key] as Setting<unknown>;
  try {
    return s.parser.parse(raw);
  } catch (err) {
    if (err instanceof ValueError) {
      const where = origin === "flag" ? `--${s.flag} (${s.env})` : s.env;
      // A secret is not repeated in a message that ends up in logs and terminals.
      const shown = maskValue(s.env, raw);
      throw new ConfigError(`${where}: invalid value "${shown}": ${err.message}`);
    }
    throw err;
  }
}

/** Parses flags into raw values keyed by setting; `--env-file` comes back separately. */
export function parseFlags(
  args: string[],
): { raw: Partial<Record<SettingKey, string>>; envFile?: string } {
  const options: Record<string, { type: "string" }> = { "env-file": { type: "string" } };
  for (const flag of BY_FLAG.keys()) options[flag] = { type: "string" };
  let parsed;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (err) {
    const msg = (err as Error).message.split("\n")[0];
    throw new ConfigError(`${msg.replace(/\.$/, "")} (see proxy serve --help)`);
  }
  const raw: Partial<Record<SettingKey, string>> = {};
  for (const [flag, value] of Object.entries(parsed.values)) {
    if (flag === "env-file") continue;
    raw[BY_FLAG.get(flag)!] = value as string;
  }
  return { raw, envFile: parsed.values["env-file"] as string | undefined };
}

/** Everything learnt while loading, problems included (what `proxy check` reports). */
export interface CollectedConfig {
  /** Settings that parsed; a setting with a problem keeps its default's value. */
  config: Config;
  /** The text each setting was given (or its default). */
  raw: Record<SettingKey, string>;
  sources: Record<SettingKey, Source>;
  envFile?: string;
  mode: LoadedConfig["mode"];
  /** One line per reason start-up would refuse this configuration. */
  problems: string[];
  /** Non-fatal remarks (unknown `.env` keys with a suggestion, odd combinations). */
  warnings: string[];
}

/** Loads and validates the whole configuration; throws the first problem. */
export function loadConfig(options: LoadOptions = {}): LoadedConfig {
  const c = collectConfig(options);
  if (c.problems.length > 0) throw new ConfigError(c.problems[0]);
  return {
    config: c.config,
    sources: c.sources,
    envFile: c.envFile,
    mode: c.mode,
    warnings: c.warnings,
  };
}

/** Loads the configuration and collects every problem instead of stopping at the first. */
export function collectConfig(options: LoadOptions = {}): CollectedConfig {
  const env = options.env ?? Deno.env.toObject();
  const read = options.readTextFile ?? Deno.readTextFileSync;
  const problems: string[] = [];
  const warnings: string[] = [];
  let flagValues: Partial<Record<SettingKey, string>> = {};
  let envFileFlag: string | undefined;
  try {
    ({ raw: flagValues, envFile: envFileFlag } = parseFlags(options.args ?? []));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    problems.push(err.message);
  }

  let envFile: string | undefined;
  let fileValues: Record<string, string> = {};
  const candidate = envFileFlag ?? "./.env";
  try {
    fileValues = parseDotEnv(read(candidate));
    envFile = candidate;
  } catch (err) {
    if (envFileFlag !== undefined || !(err instanceof Deno.errors.NotFound)) {
      problems.push(`--env-file: cannot read "${candidate}": ${(err as Error).message}`);
    }
  }
  for (const name of Object.keys(fileValues)) {
    if (BY_ENV.has(name)) continue;
    const near = closestName(name, [...BY_ENV.keys()]);
    warnings.push(
      `${envFile}: unknown setting ${name}, ignored` + (near ? ` (did you mean ${near}?)` : ""),
    );
  }

  const config = {} as Record<SettingKey, unknown>;
  const failed = new Set<SettingKey>();
  const raws = {} as Record<SettingKey, string>;
  const sources = {} as Record<SettingKey, Source>;
  for (const key of KEYS) {
    const s = SCHEMA[key];
    let raw = s.default;
    let source: Source = "default";
    if (fileValues[s.env] !== undefined) [raw, source] = [fileValues[s.env], "env-file"];
    if (env[s.env] !== undefined) [raw, source] = [env[s.env], "environment"];
    if (flagValues[key] !== undefined) [raw, source] = [flagValues[key]!, "flag"];
    raws[key] = raw;
    sources[key] = source;
    try {
      config[key] = parseOne(key, raw, source);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err.message);
      failed.add(key);
      config[key] = parseOne(key, s.default, "default");
    }
  }
  const typed = config as Config;
  const mode = validateTogether(typed, failed, problems, warnings);
  return { config: typed, raw: raws, sources, envFile, mode, problems, warnings };
}

/** Rules that involve more than one setting. Returns the resolved mode. */
function validateTogether(
  c: Config,
  /** Settings that did not parse: rules about them would only repeat the problem. */
  failed: Set<SettingKey>,
  problems: string[],
  warnings: string[],
): LoadedConfig["mode"] {
  if ((c.tlsCert === "") !== (c.tlsKey === "")) {
    problems.push("TLS_CERT and TLS_KEY: set both (PEM files) or neither");
  }
  if (c.mode === "reverse" && c.backends.length === 0 && !failed.has("backends")) {
    problems.push(
      "PROXY_MODE: reverse mode needs BACKEND_SERVERS (e.g. --backend http://127.0.0.1:8000)",
    );
  }
  const seen = new Set<string>();
  for (const b of c.backends) {
    if (seen.has(b.url.origin)) {
      problems.push(`BACKEND_SERVERS: "${b.url.origin}" is listed twice`);
    }
    seen.add(b.url.origin);
  }
  if (c.cacheMaxObjectSize > c.cacheMemorySize && c.cacheBackend !== "off") {
    warnings.push(
      "CACHE_MAX_OBJECT_SIZE is larger than CACHE_MEMORY_SIZE: large objects will not fit the memory cache",
    );
  }
  try {
    validateRedisSettings(c);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const cpus = navigator.hardwareConcurrency || 1;
  if (c.threadPoolSize > cpus) {
    warnings.push(`THREAD_POOL_SIZE=${c.threadPoolSize} exceeds the ${cpus} CPUs of this machine`);
  }
  const mode = c.mode === "auto" ? (c.backends.length > 0 ? "reverse" : "forward") : c.mode;
  if (c.serveThreads > 1 && Deno.build.os !== "linux") {
    problems.push(
      `SERVE_THREADS: ${c.serveThreads} threads need Linux (SO_REUSEPORT spreads connections ` +
        `over the threads); this is ${Deno.build.os}`,
    );
  }
  if (!c.logStdout && c.logFile === "") {
    warnings.push("LOG_STDOUT=false without LOG_FILE: nothing will be logged anywhere");
  }
  return mode;
}

/**
 * Validates raw values as a whole configuration (the dashboard's editor):
 * returns field errors keyed by environment name.
 */
export function validateSettings(
  values: Record<string, string>,
): { ok: true } | { ok: false; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    const key = BY_ENV.get(name);
    if (!key) {
      errors[name] = "unknown setting";
      continue;
    }
    if (/[\r\n\0]/.test(value)) {
      errors[name] = "must not contain line breaks or NUL characters";
      continue;
    }
    try {
      parseOne(key, value, "environment");
    } catch (err) {
      errors[name] = (err as Error).message.replace(`${name}: `, "");
    }
  }
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  try {
    loadConfig({ env: values, readTextFile: () => "" });
  } catch (err) {
    const msg = (err as Error).message;
    const name = /^([A-Z_]+)/.exec(msg)?.[1] ?? "_";
    return { ok: false, errors: { [name]: msg } };
  }
  return { ok: true };
}
