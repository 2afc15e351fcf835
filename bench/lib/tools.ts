/** Which external tools are on PATH, and how to install the missing ones. */

const APT: Record<string, string> = {
  wrk: "wrk",
  nginx: "nginx-light (or nginx)",
  haproxy: "haproxy",
  node: "nodejs",
  npm: "npm",
  "redis-server": "redis-server",
  squid: "squid",
  varnishd: "varnish",
  caddy: "caddy",
  curl: "curl",
  h2load: "nghttp2-client",
  nghttp: "nghttp2-client",
  "redis-cli": "redis-tools",
};

/** True when `name` is an executable file in a PATH directory. */
export function hasTool(name: string): boolean {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const st = Deno.statSync(`${dir}/${name}`);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0) return true;
    } catch { /* not here */ }
  }
  return false;
}

/** One line telling how to install a missing tool. */
export function installHint(name: string): string {
  return `${name} not found on PATH: install it with \`apt-get install -y ${APT[name] ?? name}\``;
}

export function detectTools(names = Object.keys(APT)): Record<string, boolean> {
  return Object.fromEntries(names.map((n) => [n, hasTool(n)]));
}

/** First line of `cmd args` (stdout or stderr), or "" when it cannot run. */
export async function toolVersion(cmd: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return text.split("\n").find((l) => l.trim() !== "")?.trim() ?? "";
  } catch {
    return "";
  }
}
