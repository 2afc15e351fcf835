/**
 * JavaScript peers (run under Node) from bench/peers: pinned in its
 * package.json/package-lock.json, installed with `npm ci` on first use.
 *
 * @module
 */
import { type Proc, startProcess } from "./process.ts";

/** A peer script in bench/peers taking PORT and TARGET from the environment. */
export interface PeerSpec {
  /** Row label, e.g. "http-proxy (node)". */
  label: string;
  /** File in bench/peers, e.g. "http-proxy.mjs". */
  script: string;
}

export const REVERSE_PEERS: PeerSpec[] = [
  { label: "http-proxy (node)", script: "http-proxy.mjs" },
  { label: "fastify-http-proxy (node)", script: "fastify-proxy.mjs" },
];

/** Forward proxies (absolute-form requests); TARGET is ignored by them. */
export const FORWARD_PEERS: PeerSpec[] = [
  { label: "npm:proxy (node)", script: "forward-proxy.mjs" },
];

let installing: Promise<void> | undefined;

/** Runs `npm ci --prefix bench/peers` once when node_modules is missing; throws with npm's tail. */
export function ensurePeersInstalled(root: string, log: (m: string) => void): Promise<void> {
  installing ??= (async () => {
    const dir = `${root}/bench/peers`;
    try {
      await Deno.stat(`${dir}/node_modules`);
      return;
    } catch { /* not installed yet */ }
    log("installing JS peers: npm ci --prefix bench/peers");
    const out = await new Deno.Command("npm", {
      args: ["ci", "--prefix", dir, "--no-audit", "--no-fund"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-5).join("\n");
      throw new Error(`npm ci --prefix bench/peers failed: ${err}`);
    }
  })();
  return installing;
}

export async function startPeer(
  root: string,
  peer: PeerSpec,
  port: number,
  target: string,
): Promise<Proc> {
  return await startProcess({
    name: peer.label,
    cmd: "node",
    args: [`${root}/bench/peers/${peer.script}`],
    env: { PORT: String(port), TARGET: target, NODE_ENV: "production" },
    cwd: `${root}/bench/peers`,
    readyPort: port,
  });
}
