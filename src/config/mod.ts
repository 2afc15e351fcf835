/**
 * The proxy's configuration: one typed schema, loaded from defaults <
 * `.env` < environment < flags. Nothing else in `src/` reads `Deno.env`
 * or flags.
 *
 * @example
 * ```ts
 * import { loadConfig } from "./src/config/mod.ts";
 * const { config, mode } = loadConfig({ args: ["--port", "9000"] });
 * ```
 * @module
 */
import { SCHEMA, type SettingKey } from "./schema.ts";

export { type Config, type Group, SCHEMA, type Setting, type SettingKey } from "./schema.ts";
export {
  ConfigError,
  loadConfig,
  type LoadedConfig,
  type LoadOptions,
  parseFlags,
  settingKeyOfEnv,
  type Source,
  validateSettings,
} from "./load.ts";
export { formatDotEnv, parseDotEnv, unsafeDotEnvValue, writeFileAtomic } from "./dotenv.ts";
export { settingsHelp } from "./help.ts";
export type { BackendSpec, CidrText, PrivateAllowance, RateLimitKey } from "./parsers.ts";

/** Plain description of a setting, for the dashboard and documentation. */
export interface SettingInfo {
  readonly key: SettingKey;
  readonly env: string;
  readonly flag?: string;
  readonly default: string;
  readonly description: string;
  readonly group: string;
  readonly kind: string;
  readonly allowed?: readonly string[];
}

export const SETTINGS: readonly SettingInfo[] = (Object.keys(SCHEMA) as SettingKey[]).map((key) => {
  const s = SCHEMA[key];
  return {
    key,
    env: s.env,
    flag: s.flag,
    default: s.default,
    description: s.description,
    group: s.group,
    kind: s.parser.kind,
    allowed: s.parser.allowed,
  };
});
