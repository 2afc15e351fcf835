/**
 * Which setting values are secrets, and how they are shown: tokens and
 * passwords as `****`, a URL's password as `user:****@`. Used wherever
 * settings are printed (`proxy check`, error messages).
 *
 * @module
 */

/** Environment names whose whole value is a secret. */
const SECRET_NAME = /(TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIALS?)$/;

/** True when the value of `env` must never be shown. */
export function isSecretSetting(env: string): boolean {
  return SECRET_NAME.test(env);
}

/** `value` as it may be shown: secrets masked, URL passwords hidden. */
export function maskValue(env: string, value: string): string {
  if (value === "") return value;
  if (isSecretSetting(env)) return "****";
  // scheme://user:password@host → scheme://user:****@host (REDIS_URL and other URLs).
  return value.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*:)[^\s/@]+@/gi, "$1****@");
}
