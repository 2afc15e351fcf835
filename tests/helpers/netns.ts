/**
 * Runs a test scenario as a client that is *not* on loopback, without any traffic leaving
 * the machine: a private network namespace (`unshare -n`, root) where `lo` also carries
 * {@linkcode OFF_LOOPBACK} (TEST-NET-1). A connection to that address comes from that
 * address, so the proxy sees a peer outside 127.0.0.0/8 exactly as it would see a remote
 * client, and nothing can reach any other network from inside.
 *
 * The scenario is a module run with `deno run -A` inside the namespace; it prints one JSON
 * line of observations last, which {@linkcode runOffLoopback} returns for the test to assert.
 *
 * @module
 */

/** The non-loopback address the namespace's client and proxy use. */
export const OFF_LOOPBACK = "192.0.2.1";

let usable: boolean | undefined;

/** True when this machine lets us make a network namespace (root with `unshare` and `ip`). */
export function netnsUsable(): boolean {
  if (usable !== undefined) return usable;
  try {
    const r = new Deno.Command("unshare", {
      args: ["-n", "sh", "-c", `ip link set lo up && ip addr add ${OFF_LOOPBACK}/32 dev lo`],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    usable = r.success;
  } catch {
    usable = false;
  }
  return usable;
}

/** Why netns tests are ignored where they cannot run. */
export const NETNS_REASON = "needs root with unshare(1) and ip(8) for a private network namespace";

/** Runs `script` inside a fresh namespace with {@linkcode OFF_LOOPBACK}; returns its last JSON line. */
export async function runOffLoopback<T>(
  script: URL,
  args: string[] = [],
  timeoutMs = 60_000,
): Promise<T> {
  const setup = `ip link set lo up && ip addr add ${OFF_LOOPBACK}/32 dev lo && exec "$0" "$@"`;
  const child = new Deno.Command("unshare", {
    args: ["-n", "sh", "-c", setup, Deno.execPath(), "run", "-A", script.pathname, ...args],
    cwd: new URL("../../", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  const last = stdout.trim().split("\n").at(-1) ?? "";
  if (!out.success || !last.startsWith("{")) {
    throw new Error(`scenario ${script.pathname} failed (${out.code}):\n${stdout}\n${stderr}`);
  }
  return JSON.parse(last) as T;
}
