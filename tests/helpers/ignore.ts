/**
 * Tests that need something absent (a tool, an interface, a runtime) are reported as
 * ignored with their reason, never skipped silently: `ignoreUnless` returns the value for
 * `Deno.test`'s `ignore`, prints the reason once, and appends "name — reason" to the file
 * named by `PROXY_TEST_IGNORED_FILE` (set by .ci/run, which prints the list at the end).
 *
 * ```ts
 * Deno.test({ name, ignore: ignoreUnless(name, hasTool("nginx"), "nginx is not installed"), fn });
 * ```
 *
 * @module
 */

/** True (ignore the test) when `present` is false; records why. */
export function ignoreUnless(name: string, present: boolean, reason: string): boolean {
  if (present) return false;
  console.warn(`ignored: ${name} — ${reason}`);
  const file = Deno.env.get("PROXY_TEST_IGNORED_FILE");
  if (file) {
    try {
      Deno.writeTextFileSync(file, `${name} — ${reason}\n`, { append: true });
    } catch { /* the list is a courtesy; the test runner still reports the test as ignored */ }
  }
  return true;
}

/** True when `path` is an executable file (a tool installed at a fixed place). */
export function fileExists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
