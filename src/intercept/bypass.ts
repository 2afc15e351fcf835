/**
 * TLS_INTERCEPT_BYPASS: domains (their subdomains included) whose CONNECT
 * tunnels are never intercepted, for clients that pin certificates and for
 * sites the operator must not see into.
 *
 * @module
 */

/** A matcher over the listed domains; `*.example.com` is read as `example.com`. */
export function bypassMatcher(domains: readonly string[]): (host: string) => boolean {
  const set = new Set(
    domains
      .map((d) => d.trim().toLowerCase().replace(/^\*\./, "").replace(/^\./, "").replace(/\.$/, ""))
      .filter((d) => d !== ""),
  );
  if (set.size === 0) return () => false;
  return (host) => {
    let name = host.toLowerCase();
    if (name.endsWith(".")) name = name.slice(0, -1);
    // Walk up the labels: a.b.example.com, b.example.com, example.com, com.
    for (;;) {
      if (set.has(name)) return true;
      const dot = name.indexOf(".");
      if (dot < 0) return false;
      name = name.slice(dot + 1);
    }
  };
}
